/**
 * Exactly one verdict per image message for any outage length. JetStream's duplicate window
 * (`streams.duplicateWindowSeconds`) drops a verdict re-published with the same `Nats-Msg-Id`
 * only within that window; the ledger records the verdict's progress in the image's reservation
 * entry of the Image-Id KV bucket, with revision-checked writes:
 *
 * 1. entry says `published` → the verdict exists: nothing is published again;
 * 2. otherwise the entry is marked `pending` (its KV time says since when), the verdict is
 *    published with its `Nats-Msg-Id`, and the entry is marked `published` with the verdict's
 *    stream sequence;
 * 3. a `pending` mark older than the duplicate window (a process died between publishing and
 *    marking, and the retry comes later than the window) is settled by reading the verdict
 *    stream's headers from the mark's time on: a stored verdict with the id is adopted, none
 *    means it was never stored and it is published now.
 *
 * Images without an own Image-Id (missing, invalid or duplicate ids) are keyed by their stream
 * sequence (`seq_<n>`) in the same bucket. Entries expire with the image stream's max age,
 * after which the image message itself is gone too.
 *
 * @module
 */
import type { JetStreamClient, KV, KvEntry, PubAck } from "nats";
import type { StreamLimits } from "../config/schema.ts";
import {
  encodeImageRecord,
  type ImageRecord,
  isWrongLastSequence,
  openImageIdBucket,
  parseImageRecord,
} from "./image_ids.ts";
import { msgIdOfVerdict, publishVerdict } from "./publishers.ts";
import { imageIdKey, MSG_ID_HEADER, streamNames, verdictSubject } from "./subjects.ts";
import type { Verdict } from "./verdict.ts";

/** What {@link VerdictLedger.publishOnce} did. */
export type PublishOnceOutcome =
  /** The verdict was stored now. */
  | { kind: "published"; seq: number }
  /** A verdict of this image message already existed (recorded, or dropped as a duplicate). */
  | { kind: "already"; seq: number | null };

/** The Image-Id's reservation belongs to another image message: its verdict is not this one's. */
export class ForeignImageIdError extends Error {
  /** Creates the error. */
  constructor(imageId: string | null, owner: number, imageSeq: number) {
    super(
      `Image-Id ${JSON.stringify(imageId)} belongs to image message ${owner}, not ${imageSeq}`,
    );
    this.name = "ForeignImageIdError";
  }
}

/** Safety margin under the duplicate window before a `pending` mark is checked on the stream. */
const WINDOW_MARGIN_MS = 10_000;

/** The ledger key of a verdict: its Image-Id's reservation, or `seq_<image seq>`. */
export function ledgerKey(verdict: Verdict): string {
  const msgId = msgIdOfVerdict(verdict);
  return msgId.startsWith("seq:") ? `seq_${verdict.imageSeq}` : imageIdKey(verdict.imageId!);
}

/** Publishes verdicts so that each image message gets exactly one. */
export class VerdictLedger {
  readonly #js: JetStreamClient;
  readonly #kv: KV;
  readonly #line: string;
  readonly #windowMs: number;

  private constructor(js: JetStreamClient, kv: KV, line: string, windowMs: number) {
    this.#js = js;
    this.#kv = kv;
    this.#line = line;
    this.#windowMs = windowMs;
  }

  /** Opens the line's Image-Id bucket (creating it if needed). */
  static async open(
    js: JetStreamClient,
    line: string,
    limits: StreamLimits,
  ): Promise<VerdictLedger> {
    const kv = await openImageIdBucket(js, line, limits);
    return new VerdictLedger(js, kv, line, limits.duplicateWindowSeconds * 1000);
  }

  /** True when the image message's verdict is recorded as published. */
  async answered(verdict: Verdict): Promise<boolean> {
    const entry = await this.#kv.get(ledgerKey(verdict));
    return recordOf(entry, verdict.imageSeq)?.verdict?.state === "published";
  }

  /** Publishes `verdict` unless its image message already has one (see the module doc). */
  async publishOnce(verdict: Verdict): Promise<PublishOnceOutcome> {
    const key = ledgerKey(verdict);
    for (let attempt = 0; attempt < 5; attempt++) {
      const entry = await this.#kv.get(key);
      const owner = entry?.operation === "PUT" ? parseImageRecord(entry.value).seq : null;
      if (owner !== null && owner !== verdict.imageSeq) {
        throw new ForeignImageIdError(verdict.imageId, owner, verdict.imageSeq);
      }
      const record = recordOf(entry, verdict.imageSeq) ?? { seq: verdict.imageSeq };
      const state = record.verdict;
      if (state?.state === "published") return { kind: "already", seq: state.seq };
      let revision: number;
      if (state?.state === "pending" && entry) {
        if (Date.now() - entry.created.getTime() > this.#windowMs - WINDOW_MARGIN_MS) {
          const found = await this.#findStored(msgIdOfVerdict(verdict), entry.created);
          if (found !== null) {
            await this.#mark(key, record, found, entry.revision);
            return { kind: "already", seq: found };
          }
        }
        // A recent mark: a re-publication falls inside the duplicate window.
        revision = entry.revision;
      } else {
        try {
          revision = await this.#write(key, { ...record, verdict: { state: "pending" } }, entry);
        } catch (error) {
          if (isWrongLastSequence(error)) continue; // another process wrote it: read again
          throw error;
        }
      }
      const ack: PubAck = await publishVerdict(this.#js, verdict);
      await this.#mark(key, record, ack.seq, revision);
      return ack.duplicate
        ? { kind: "already", seq: ack.seq }
        : { kind: "published", seq: ack.seq };
    }
    throw new Error(`the ledger entry of image message ${verdict.imageSeq} keeps changing`);
  }

  /** Records `published` at `seq`; a concurrent writer that recorded it already is fine. */
  async #mark(key: string, record: ImageRecord, seq: number, revision: number): Promise<void> {
    const value = encodeImageRecord({ seq: record.seq, verdict: { state: "published", seq } });
    try {
      await this.#kv.update(key, value, revision);
    } catch (error) {
      if (!isWrongLastSequence(error)) throw error;
      const now = recordOf(await this.#kv.get(key), record.seq);
      if (now?.verdict?.state === "published") return;
      await this.#kv.put(key, value);
    }
  }

  async #write(key: string, record: ImageRecord, entry: KvEntry | null): Promise<number> {
    const value = encodeImageRecord(record);
    if (entry && entry.operation === "PUT") {
      return await this.#kv.update(key, value, entry.revision);
    }
    if (entry) return await this.#kv.put(key, value, { previousSeq: entry.revision });
    return await this.#kv.create(key, value);
  }

  /** Stream sequence of a stored verdict with `msgId` published since `since`, else null. */
  async #findStored(msgId: string, since: Date): Promise<number | null> {
    const stream = streamNames(this.#line).verdicts;
    const consumer = await this.#js.consumers.get(stream, {
      filterSubjects: verdictSubject(this.#line),
      opt_start_time: new Date(since.getTime() - WINDOW_MARGIN_MS).toISOString(),
      headers_only: true,
    });
    try {
      while (true) {
        const batch = await consumer.fetch({ max_messages: 1000, expires: 2_000 });
        let last = 0;
        let seen = 0;
        for await (const message of batch) {
          seen++;
          last = message.info.pending;
          if (message.headers?.get(MSG_ID_HEADER) === msgId) return message.seq;
        }
        if (seen === 0 || last === 0) return null;
      }
    } finally {
      await consumer.delete().catch(() => undefined);
    }
  }
}

/** The entry's record when it belongs to image message `imageSeq`, else null. */
function recordOf(entry: KvEntry | null, imageSeq: number): ImageRecord | null {
  if (!entry || entry.operation !== "PUT") return null;
  const record = parseImageRecord(entry.value);
  return record.seq === imageSeq ? record : null;
}
