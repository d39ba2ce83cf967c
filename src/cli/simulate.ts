/**
 * `main.ts simulate --line demo [--rate HZ]`: a camera. Publishes the images of a fixture
 * stream (default `fixtures/synthetic-line`) on `inspect.<line>.image` with plain core NATS,
 * an `Image-Id` and the current time as `Captured-At`. Ground truth is never published.
 *
 * Image-Ids are unique on a line for as long as the line keeps them reserved, so every pass
 * over the stream gets its own ids: pass 1 publishes the recorded ids, pass K the recorded
 * ids suffixed `-pK`. A new run starts at the first pass the line has not seen, so running
 * simulate again (or looping with `--repeat`) never produces `duplicate_image_id`
 * rejections.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { headers, type NatsConnection } from "nats";
import {
  CAPTURED_AT_HEADER,
  IMAGE_ID_HEADER,
  imageIdBucket,
  imageIdKey,
  imageSubject,
} from "../bus/subjects.ts";
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
import { NATS_CLI_OPTIONS, NATS_OPTIONS_HELP } from "../bus/connection.ts";
import { LineIdSchema } from "../config/schema.ts";

/** Default stream directory. */
export const DEFAULT_SIMULATE_STREAM = "fixtures/synthetic-line";

/** Help text of `simulate`. */
export const SIMULATE_HELP =
  `usage: main.ts simulate [--line LINE] [--rate HZ] [--repeat N] [--first-pass K] [--count N]
                        [--stream DIR] [--server URL] [connection options] [--allow-no-stream]

Acts as a camera: publishes the images of a fixture stream on inspect.LINE.image with plain
core NATS, each with its Image-Id and Captured-At set to the time of publication. Labels
(manifest.ndjson) are never published. Pass 1 over the stream publishes the recorded Image-Ids,
pass K (K >= 2) the recorded ids suffixed "-pK"; a run starts at the first pass whose ids the
line has not reserved yet, so running simulate again never yields duplicate_image_id.

options:
  --line LINE        line to publish on (default demo)
  --rate HZ          images per second (default: the stream's recorded timing)
  --repeat N         publish the stream N times (default 1)
  --first-pass K     number of the first pass (default: the first one the line has not seen)
  --count N          stop after N images
  --stream DIR       fixture stream directory (default ${DEFAULT_SIMULATE_STREAM})
${NATS_OPTIONS_HELP}
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
  /** Pass number of the first pass, see {@link passImageId} (default 1). */
  firstPass?: number;
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
  const firstPass = options.firstPass ?? 1;
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
        h.set(IMAGE_ID_HEADER, passImageId(imageId, firstPass + round));
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

/** The Image-Id a recorded id gets in pass `pass` (1-based): pass 1 keeps it, pass K adds `-pK`. */
export function passImageId(recordedId: string, pass: number): string {
  if (!Number.isInteger(pass) || pass < 1) throw new RangeError(`pass must be >= 1: ${pass}`);
  return pass === 1 ? recordedId : `${recordedId}-p${pass}`;
}

/** The recorded Image-Id of the stream's first image message that has one. */
export async function firstRecordedImageId(dir: string): Promise<string | undefined> {
  for await (const message of readStream(dir)) {
    if (lineOfImageSubject(message.subject) === undefined) continue;
    const imageId = firstHeader(message.headers, IMAGE_ID_HEADER);
    if (imageId !== undefined) return imageId;
  }
  return undefined;
}

/**
 * The first pass whose ids `line` has not reserved: probes the line's Image-Id reservations
 * (the KV bucket ingest claims ids in) for the stream's first id in pass 1, 2, ... Images still
 * waiting for ingest are not reserved yet, so two runs while ingest is down can overlap.
 */
export async function firstUnusedPass(
  connection: NatsConnection,
  line: string,
  firstImageId: string | undefined,
): Promise<number> {
  if (firstImageId === undefined) return 1;
  let kv;
  try {
    kv = await connection.jetstream().views.kv(imageIdBucket(line), { bindOnly: true });
    await kv.status();
  } catch (error) {
    if (isPermissionError(error)) {
      throw new Error(
        "these credentials may not read the line's Image-Id reservations (a camera role only " +
          "publishes images): choose the pass with --first-pass K",
      );
    }
    return 1; // no ingest ever ran on this line: nothing is reserved
  }
  let pass = 1;
  while ((await kv.get(imageIdKey(passImageId(firstImageId, pass))))?.operation === "PUT") pass++;
  return pass;
}

/** True when NATS refused a request for lack of permission (e.g. on a camera role). */
function isPermissionError(error: unknown): boolean {
  const e = error as { code?: string; message?: string };
  return e?.code === "PERMISSIONS_VIOLATION" || /permissions violation/i.test(e?.message ?? "");
}

/** Whether a stream captures `subject`; "unknown" when the credentials may not ask. */
async function imageStreamExists(
  connection: NatsConnection,
  subject: string,
): Promise<boolean | "unknown"> {
  try {
    const jsm = await connection.jetstreamManager();
    return await jsm.streams.find(subject).then(() => true, (error) => {
      if (isPermissionError(error)) throw error;
      return false;
    });
  } catch (error) {
    if (isPermissionError(error)) return "unknown";
    throw error;
  }
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
        "first-pass": { type: "string" },
        count: { type: "string" },
        stream: { type: "string", default: DEFAULT_SIMULATE_STREAM },
        ...NATS_CLI_OPTIONS,
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
    const chosenPass = values["first-pass"] === undefined
      ? undefined
      : positiveInteger("first-pass", values["first-pass"]);
    const limit = values.count === undefined ? undefined : positiveInteger("count", values.count);
    const url = natsUrl(values.server);
    const connection = await connectNats(values, `inspect-${values.line}-camera`);
    try {
      const subject = imageSubject(values.line);
      if (!values["allow-no-stream"]) {
        const captured = await imageStreamExists(connection, subject);
        if (captured === "unknown") {
          console.log(
            "simulate: these credentials may not look up JetStream streams (a camera role only " +
              `publishes images); publishing on ${subject} without checking that a stream captures it`,
          );
        } else if (!captured) {
          throw new Error(
            `no JetStream stream captures ${subject} on ${url}: start the pipeline first ` +
              `(deno task run, or main.ts run --line ${values.line}), or pass --allow-no-stream`,
          );
        }
      }
      const firstPass = chosenPass ??
        await firstUnusedPass(connection, values.line, await firstRecordedImageId(values.stream));
      if (firstPass > 1) {
        console.log(
          `simulate: line ${values.line} has seen ${firstPass - 1} pass(es) of ${values.stream}; ` +
            `publishing pass ${firstPass}, Image-Ids suffixed -p${firstPass}`,
        );
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
          firstPass,
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
