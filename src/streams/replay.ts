/**
 * Replays a fixture stream onto NATS, with its recorded timing (optionally sped up) or at a
 * fixed rate, optionally moved to another line and with every Image-Id suffixed (so a stream
 * can be replayed again onto a line that has seen its ids). Only messages are published: the manifest
 * is never read here, so ground truth cannot leak onto the bus.
 *
 * @module
 */
import { headers as natsHeaders, type NatsConnection } from "nats";
import { assertLineName, IMAGE_ID_HEADER, imageSubject, lineOfImageSubject } from "./contract.ts";
import { type MessageHeaders, readStream } from "./format.ts";

/** How fast to publish. */
export type ReplayPacing =
  /** Keep the recorded gaps divided by `speed` (`Infinity`: no waiting). */
  | { kind: "recorded"; speed: number }
  /** One message every `1000 / hz` ms, ignoring the recorded timing. */
  | { kind: "rate"; hz: number };

/** Progress of a replay. */
export interface ReplayProgress {
  /** Messages published so far. */
  published: number;
  /** Messages not published (non-image subjects without `allSubjects`). */
  skipped: number;
  /** Payload bytes published so far. */
  bytes: number;
}

/** Options of {@link replayStream}. */
export interface ReplayOptions {
  /** Open connection to publish on. */
  connection: NatsConnection;
  /** Stream directory. */
  dir: string;
  /** Publish image messages on `inspect.<line>.image` instead of their recorded line. */
  line?: string;
  /**
   * Appended to every `Image-Id` header value (e.g. `-p2`), so a second replay onto the same
   * line is not rejected as duplicates; messages without an Image-Id stay without one.
   */
  idSuffix?: string;
  /** Timing (default: recorded timing at speed 1). */
  pacing?: ReplayPacing;
  /**
   * Also publish recorded messages whose subject is not an image subject (verdicts, …).
   * Off by default: replaying stale verdicts onto a live bus would mislead consumers.
   */
  allSubjects?: boolean;
  /** Stops the replay between messages. */
  signal?: AbortSignal;
  /** Called after each message. */
  onProgress?: (progress: ReplayProgress) => void;
}

/** Outcome of a replay. */
export interface ReplayResult extends ReplayProgress {
  /** True when the signal stopped it before the end. */
  aborted: boolean;
}

// Flush every so many messages: bounds what nats.js buffers when replaying flat out.
const FLUSH_EVERY = 64;

/** Publishes the stream in `dir` and resolves once the server has received everything. */
export async function replayStream(options: ReplayOptions): Promise<ReplayResult> {
  const { connection, dir, line, signal } = options;
  const pacing = options.pacing ?? { kind: "recorded", speed: 1 };
  if (pacing.kind === "recorded" && !(pacing.speed > 0)) {
    throw new RangeError(`speed must be > 0: ${pacing.speed}`);
  }
  if (pacing.kind === "rate" && !(pacing.hz > 0 && Number.isFinite(pacing.hz))) {
    throw new RangeError(`rate must be a positive number of messages per second: ${pacing.hz}`);
  }
  if (line !== undefined) assertLineName(line);
  if (/[\r\n]/.test(options.idSuffix ?? "")) {
    throw new RangeError("idSuffix cannot contain line breaks (it goes into a NATS header)");
  }
  const progress: ReplayProgress = { published: 0, skipped: 0, bytes: 0 };
  const start = performance.now();
  let aborted = false;
  for await (const message of readStream(dir)) {
    if (signal?.aborted) {
      aborted = true;
      break;
    }
    const recordedLine = lineOfImageSubject(message.subject);
    if (recordedLine === undefined && !options.allSubjects) {
      progress.skipped++;
      options.onProgress?.({ ...progress });
      continue;
    }
    const dueMs = pacing.kind === "rate"
      ? (progress.published * 1000) / pacing.hz
      : message.offsetMs / pacing.speed;
    const waitMs = dueMs - (performance.now() - start);
    if (waitMs > 0 && Number.isFinite(waitMs)) {
      if (!(await sleep(waitMs, signal))) {
        aborted = true;
        break;
      }
    }
    const subject = recordedLine !== undefined && line !== undefined
      ? imageSubject(line)
      : message.subject;
    const headers = toNatsHeaders(message.headers, options.idSuffix ?? "");
    connection.publish(subject, message.payload, headers ? { headers } : {});
    progress.published++;
    progress.bytes += message.payload.length;
    if (progress.published % FLUSH_EVERY === 0) await connection.flush();
    options.onProgress?.({ ...progress });
  }
  await connection.flush();
  return { ...progress, aborted };
}

function toNatsHeaders(recorded: MessageHeaders, idSuffix: string) {
  const entries = Object.entries(recorded);
  if (entries.length === 0) return undefined;
  const headers = natsHeaders();
  for (const [key, values] of entries) {
    const suffix = key.toLowerCase() === IMAGE_ID_HEADER.toLowerCase() ? idSuffix : "";
    for (const value of values) headers.append(key, value + suffix);
  }
  return headers;
}

/** Waits `ms`; resolves false early if `signal` aborts. */
function sleep(ms: number, signal?: AbortSignal): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
