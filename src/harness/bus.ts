/**
 * Talking to a running line from outside, for tests and benchmarks: publishing images as a
 * camera does, control requests, and reading back what the pipeline stored in its JetStream
 * streams.
 *
 * @module
 */
import { headers, type JetStreamManager, type NatsConnection } from "nats";
import {
  CAPTURED_AT_HEADER,
  controlSubject,
  IMAGE_ID_HEADER,
  imageSubject,
  TRAIN_HEADER,
  TRAIN_HEADER_NO,
} from "../bus/subjects.ts";

/**
 * Publishes one image with plain core NATS, as cameras do; `heldOut` sends `Image-Train: no`
 * (a verdict, but never training on it).
 */
export function publishImage(
  nc: NatsConnection,
  line: string,
  imageId: string | null,
  payload: Uint8Array,
  capturedAt?: string,
  heldOut = false,
): void {
  const h = headers();
  if (imageId !== null) h.set(IMAGE_ID_HEADER, imageId);
  if (capturedAt) h.set(CAPTURED_AT_HEADER, capturedAt);
  if (heldOut) h.set(TRAIN_HEADER, TRAIN_HEADER_NO);
  nc.publish(imageSubject(line), payload, { headers: h });
}

/** Waits until `stream` holds at least `count` messages; throws after `timeoutMs`. */
export async function waitForStreamCount(
  jsm: JetStreamManager,
  stream: string,
  count: number,
  timeoutMs: number,
): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 0;
  while (Date.now() < deadline) {
    try {
      last = (await jsm.streams.info(stream)).state.messages;
    } catch {
      last = 0; // not created yet
    }
    if (last >= count) return last;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`${stream} holds ${last} messages after ${timeoutMs} ms, expected ${count}`);
}

/** Waits until `predicate` holds (polled every 100 ms); throws with `what` after `timeoutMs`. */
export async function waitUntil(
  predicate: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await predicate()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Waits until `line`'s scorer holds a model version; throws after `timeoutMs`. */
export async function waitForScorerModel(
  nc: NatsConnection,
  line: string,
  timeoutMs = 120_000,
): Promise<void> {
  await waitUntil(
    async () =>
      (await control<{ modelVersion: number | null }>(nc, line, "scorer", "status"))
        .modelVersion !== null,
    timeoutMs,
    `line ${line}'s scorer to load a model version`,
  );
}

/** Every message stored in `stream`, in order (payload and headers). */
export async function readStreamMessages(
  jsm: JetStreamManager,
  stream: string,
): Promise<{ seq: number; data: Uint8Array; headers?: Map<string, string> }[]> {
  const info = await jsm.streams.info(stream);
  const out: { seq: number; data: Uint8Array; headers?: Map<string, string> }[] = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages; seq++) {
    const stored = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (!stored) continue;
    const hdrs = stored.header
      ? new Map([...stored.header.keys()].map((k) => [k, stored.header.get(k)]))
      : undefined;
    out.push({ seq, data: stored.data, headers: hdrs });
  }
  return out;
}

/** Sends a control request and parses the JSON answer. */
export async function control<T>(
  nc: NatsConnection,
  line: string,
  stage: string,
  action: string,
): Promise<T> {
  const reply = await nc.request(controlSubject(line, stage, action), undefined, {
    timeout: 30_000,
  });
  return JSON.parse(new TextDecoder().decode(reply.data)) as T;
}
