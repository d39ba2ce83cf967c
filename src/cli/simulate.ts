/**
 * `main.ts simulate --line demo [--rate HZ]`: a camera. Publishes the images of a fixture
 * stream (default `fixtures/synthetic-line`) on `inspect.<line>.image` with plain core NATS,
 * an `Image-Id` and the current time as `Captured-At`. Ground truth is never published.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { headers, type NatsConnection } from "nats";
import { CAPTURED_AT_HEADER, IMAGE_ID_HEADER, imageSubject } from "../bus/subjects.ts";
import { firstHeader, readStream } from "../streams/format.ts";
import { lineOfImageSubject } from "../streams/contract.ts";
import {
  connectNats,
  natsUrl,
  positiveInteger,
  positiveNumber,
  runCommand,
  UsageError,
} from "../streams/cli_support.ts";
import { LineIdSchema } from "../config/schema.ts";

/** Default stream directory. */
export const DEFAULT_SIMULATE_STREAM = "fixtures/synthetic-line";

/** Help text of `simulate`. */
export const SIMULATE_HELP =
  `usage: main.ts simulate [--line LINE] [--rate HZ] [--repeat N] [--count N] [--stream DIR]
                        [--server URL] [--allow-no-stream]

Acts as a camera: publishes the images of a fixture stream on inspect.LINE.image with plain
core NATS, each with its Image-Id and Captured-At set to the time of publication. Labels
(manifest.ndjson) are never published.

options:
  --line LINE        line to publish on (default demo)
  --rate HZ          images per second (default: the stream's recorded timing)
  --repeat N         publish the stream N times; repeats get Image-Ids suffixed "-rK" so they
                     stay unique on the line (default 1)
  --count N          stop after N images
  --stream DIR       fixture stream directory (default ${DEFAULT_SIMULATE_STREAM})
  --server URL       NATS server (default: $NATS_URL or nats://127.0.0.1:4222)
  --allow-no-stream  publish even when no JetStream stream captures the subject yet (images
                     published before the pipeline starts are then lost)
  --help             this text`;

/** Options of {@link simulateCamera}. */
export interface SimulateOptions {
  /** Connection to publish on. */
  connection: NatsConnection;
  /** Fixture stream directory. */
  dir: string;
  /** Target line. */
  line: string;
  /** Images per second, or undefined for the recorded timing. */
  rateHz?: number;
  /** Times the stream is published (default 1). */
  repeat?: number;
  /** Stop after this many images (default: all). */
  limit?: number;
  /** Stops between images. */
  signal?: AbortSignal;
  /** Called after each image. */
  onImage?: (published: number) => void;
}

/** Publishes the stream's images as a camera; resolves with the number published. */
export async function simulateCamera(options: SimulateOptions): Promise<number> {
  const { connection, dir, line, rateHz, signal } = options;
  const subject = imageSubject(line);
  const start = performance.now();
  let published = 0;
  let recordedBase = 0;
  for (let round = 0; round < (options.repeat ?? 1); round++) {
    let lastOffset = 0;
    for await (const message of readStream(dir)) {
      if (signal?.aborted || published >= (options.limit ?? Infinity)) break;
      if (lineOfImageSubject(message.subject) === undefined) continue;
      lastOffset = message.offsetMs;
      const dueMs = rateHz ? (published * 1000) / rateHz : recordedBase + message.offsetMs;
      const waitMs = dueMs - (performance.now() - start);
      if (waitMs > 0) await new Promise((resolve) => setTimeout(resolve, waitMs));
      const h = headers();
      const imageId = firstHeader(message.headers, IMAGE_ID_HEADER);
      // Recorded bad inputs may lack an Image-Id: publish them as recorded.
      if (imageId !== undefined) {
        h.set(IMAGE_ID_HEADER, round === 0 ? imageId : `${imageId}-r${round}`);
      }
      h.set(CAPTURED_AT_HEADER, new Date().toISOString());
      connection.publish(subject, message.payload, { headers: h });
      published++;
      if (published % 64 === 0) await connection.flush();
      options.onImage?.(published);
    }
    recordedBase += lastOffset + 1;
    if (signal?.aborted || published >= (options.limit ?? Infinity)) break;
  }
  await connection.flush();
  return published;
}

/** Entry point of `main.ts simulate`; returns the exit code (0 ok, 1 failure, 2 usage). */
export function simulateCommand(args: string[]): Promise<number> {
  return runCommand("simulate", async () => {
    const { values } = parseArgs({
      args,
      options: {
        line: { type: "string", default: "demo" },
        rate: { type: "string" },
        repeat: { type: "string", default: "1" },
        count: { type: "string" },
        stream: { type: "string", default: DEFAULT_SIMULATE_STREAM },
        server: { type: "string" },
        "allow-no-stream": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(SIMULATE_HELP);
      return 0;
    }
    if (!LineIdSchema.safeParse(values.line).success) {
      throw new UsageError(`--line ${JSON.stringify(values.line)} is not a line id`);
    }
    const rateHz = values.rate === undefined ? undefined : positiveNumber("rate", values.rate);
    const repeat = positiveInteger("repeat", values.repeat);
    const limit = values.count === undefined ? undefined : positiveInteger("count", values.count);
    const url = natsUrl(values.server);
    const connection = await connectNats(url, `inspect-${values.line}-camera`);
    try {
      const subject = imageSubject(values.line);
      if (!values["allow-no-stream"]) {
        const jsm = await connection.jetstreamManager();
        const captured = await jsm.streams.find(subject).then(() => true, () => false);
        if (!captured) {
          throw new Error(
            `no JetStream stream captures ${subject} on ${url}: start the pipeline first ` +
              `(deno task run, or main.ts run --line ${values.line}), or pass --allow-no-stream`,
          );
        }
      }
      const abort = new AbortController();
      const onSignal = () => abort.abort();
      Deno.addSignalListener("SIGINT", onSignal);
      let last = performance.now();
      try {
        const published = await simulateCamera({
          connection,
          dir: values.stream,
          line: values.line,
          rateHz,
          repeat,
          limit,
          signal: abort.signal,
          onImage: (n) => {
            if (performance.now() - last >= 5_000) {
              last = performance.now();
              console.log(`simulate: ${n} images published on ${subject}`);
            }
          },
        });
        console.log(`simulate: ${published} images published on ${subject}`);
      } finally {
        Deno.removeSignalListener("SIGINT", onSignal);
      }
      return 0;
    } finally {
      await connection.drain();
    }
  });
}
