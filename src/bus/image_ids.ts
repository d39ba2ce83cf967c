/**
 * Line-wide Image-Id reservation in a JetStream KV bucket: the first message with an id claims
 * it atomically (KV create), so duplicates are caught across ingest processes and restarts.
 * The claim stores the image's stream sequence, which tells a redelivery of the same message
 * (the same sequence) from a real duplicate (another message). The same entry later records
 * that the image's verdict was published (see `verdict_ledger.ts`).
 *
 * @module
 */
import type { JetStreamClient, KV } from "nats";
import type { StreamLimits } from "../config/schema.ts";
import { imageIdBucket, imageIdKey } from "./subjects.ts";

/** What the line knows about one image: the entry of its Image-Id (or stream sequence). */
export interface ImageRecord {
  /** Stream sequence of the image message that owns the entry. */
  seq: number;
  /** Verdict progress: being published (since the entry's time), or stored at `seq`. */
  verdict?: { state: "pending" } | { state: "published"; seq: number };
}

/** Reads an entry's value: JSON {@link ImageRecord}, or the bare sequence older versions wrote. */
export function parseImageRecord(bytes: Uint8Array): ImageRecord {
  const text = new TextDecoder().decode(bytes).trim();
  if (/^\d+$/.test(text)) return { seq: Number(text) };
  const value = JSON.parse(text) as ImageRecord;
  if (!Number.isInteger(value?.seq)) throw new Error(`not an image record: ${text}`);
  return value;
}

/** Encodes an {@link ImageRecord}. */
export function encodeImageRecord(record: ImageRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record));
}

/** Opens (creating if needed) the line's Image-Id bucket; entries expire with the image stream. */
export async function openImageIdBucket(
  js: JetStreamClient,
  line: string,
  limits: StreamLimits,
): Promise<KV> {
  return await js.views.kv(imageIdBucket(line), {
    history: 1,
    ttl: limits.maxAgeSeconds * 1000,
    replicas: limits.replicas,
    description: `Image-Ids seen on line ${line}`,
  });
}

/** Outcome of a claim. */
export type ImageIdClaim =
  /** First time this id is seen on the line. */
  | { kind: "claimed" }
  /** The same message again (a redelivery): process it as before. */
  | { kind: "redelivery" }
  /** Another message already holds the id. */
  | { kind: "duplicate"; firstSeq: number };

/** Longest Image-Id accepted, in UTF-8 bytes (KV keys and headers stay reasonable). */
export const MAX_IMAGE_ID_BYTES = 256;

/** Reserves Image-Ids of one line. */
export class ImageIdRegistry {
  readonly #kv: KV;

  private constructor(kv: KV) {
    this.#kv = kv;
  }

  /** Opens (creating if needed) the line's bucket; ids expire with the image stream's max age. */
  static async open(
    js: JetStreamClient,
    line: string,
    limits: StreamLimits,
  ): Promise<ImageIdRegistry> {
    return new ImageIdRegistry(await openImageIdBucket(js, line, limits));
  }

  /** Claims `imageId` for the image message with stream sequence `imageSeq`. */
  async claim(imageId: string, imageSeq: number): Promise<ImageIdClaim> {
    const key = imageIdKey(imageId);
    // Two rounds: a claim that expires between `create` and `get` is simply claimed again.
    for (let attempt = 0; attempt < 2; attempt++) {
      try {
        await this.#kv.create(key, encodeImageRecord({ seq: imageSeq }));
        return { kind: "claimed" };
      } catch (error) {
        if (!isWrongLastSequence(error)) throw error;
      }
      const entry = await this.#kv.get(key);
      if (entry && entry.operation === "PUT") {
        const firstSeq = parseImageRecord(entry.value).seq;
        return firstSeq === imageSeq ? { kind: "redelivery" } : { kind: "duplicate", firstSeq };
      }
    }
    throw new Error(
      `cannot claim Image-Id ${JSON.stringify(imageId)}: its KV entry keeps changing`,
    );
  }
}

/** KV `create` on an existing key fails with JetStream's "wrong last sequence" (10071). */
export function isWrongLastSequence(error: unknown): boolean {
  const e = error as { api_error?: { err_code?: number }; message?: string };
  return e?.api_error?.err_code === 10071 || /wrong last sequence/.test(e?.message ?? "");
}
