/**
 * Records live core-NATS messages (subject, headers, payload, timing) into a fixture stream.
 * A recording has an empty manifest: labels never travel with the images.
 *
 * @module
 */
import type { Msg, NatsConnection } from "nats";
import {
  assertStreamDirWritable,
  type MessageHeaders,
  openStreamWriter,
  type StreamInfo,
} from "./format.ts";

/** Progress of a recording. */
export interface RecordProgress {
  /** Messages written so far. */
  recorded: number;
  /** Payload bytes written so far. */
  bytes: number;
}

/** Options of {@link recordStream}. */
export interface RecordOptions {
  /** Open connection to record from. */
  connection: NatsConnection;
  /** Subject (wildcards allowed) to subscribe to, e.g. `inspect.>`. */
  subject: string;
  /** Stream directory to create. */
  out: string;
  /** Replace an existing stream in `out`. */
  force?: boolean;
  /** Stop after this many ms from the start of the subscription. */
  durationMs?: number;
  /** Stop after this many messages. */
  count?: number;
  /** Stops the recording (e.g. on Ctrl-C); what was recorded is kept. */
  signal?: AbortSignal;
  /** Command line recorded in `stream.json`. */
  createdBy: string;
  /** Called after each message is written. */
  onProgress?: (progress: RecordProgress) => void;
}

/** Outcome of a recording. */
export interface RecordResult extends RecordProgress {
  /** The final `stream.json`. */
  info: StreamInfo;
}

/**
 * Subscribes to `subject` and writes every message to a new stream in `out` until `count`
 * messages, `durationMs`, the abort signal or the connection's end. Offsets are measured
 * from the first message. `stream.json` appears once the subscription is live on the
 * server, so a watcher can tell when publishing is safe.
 *
 * @throws {StreamExistsError} before subscribing when `out` is taken and `force` is unset.
 */
export async function recordStream(options: RecordOptions): Promise<RecordResult> {
  const { connection, subject, out, count, durationMs, signal } = options;
  if (count !== undefined && !(Number.isInteger(count) && count > 0)) {
    throw new RangeError(`count must be a positive integer: ${count}`);
  }
  if (durationMs !== undefined && !(durationMs > 0)) {
    throw new RangeError(`duration must be positive: ${durationMs} ms`);
  }
  await assertStreamDirWritable(out, options.force ?? false);
  const subscription = connection.subscribe(subject, count ? { max: count } : {});
  const stop = () => subscription.unsubscribe();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await connection.flush(); // the server now routes matching messages to us
    const writer = await openStreamWriter(out, {
      force: options.force,
      description: {
        name: subject,
        generator: "record",
        seed: null,
        createdBy: options.createdBy,
        params: { subject, server: connection.getServer(), startedAt: new Date().toISOString() },
      },
    });
    if (signal?.aborted) stop();
    signal?.addEventListener("abort", stop, { once: true });
    if (durationMs !== undefined) timer = setTimeout(stop, durationMs);
    let first: number | undefined;
    let bytes = 0;
    for await (const message of subscription) {
      const now = performance.now();
      first ??= now;
      await writer.append({
        subject: message.subject,
        headers: headersOf(message),
        payload: message.data,
        offsetMs: Math.round((now - first) * 1000) / 1000,
      });
      bytes += message.data.length;
      options.onProgress?.({ recorded: writer.count, bytes });
    }
    const info = await writer.close();
    return { info, recorded: info.count, bytes };
  } finally {
    clearTimeout(timer);
    signal?.removeEventListener("abort", stop);
    if (!subscription.isClosed()) subscription.unsubscribe();
  }
}

/** Headers of a NATS message as a plain record (empty when it has none). */
export function headersOf(message: Msg): MessageHeaders {
  const headers: MessageHeaders = {};
  if (!message.headers) return headers;
  for (const key of message.headers.keys()) headers[key] = message.headers.values(key);
  return headers;
}
