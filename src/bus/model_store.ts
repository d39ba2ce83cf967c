/**
 * Model versions of a line: each version's state blob lives in the line's JetStream object
 * store; one KV key per line names the current version. The trainer publishes, scorers watch
 * the key and hot-swap, a restarted trainer resumes from the current version.
 *
 * @module
 */
import { type JetStreamClient, type KV, type KvEntry, type ObjectStore } from "nats";
import { z } from "zod/v4";
import { ModelSignatureSchema, type ModelSigning, sha256Hex } from "./model_signing.ts";
import {
  MODEL_VERSIONS_BUCKET,
  modelObjectBucket,
  modelObjectName,
  modelVersionKey,
} from "./subjects.ts";

/** The KV value naming a line's current model version (JSON). */
export const ModelVersionRecordSchema = z.object({
  line: z.string(),
  /** 1, 2, 3, ... per line. */
  version: z.number().int().min(1),
  /** Training steps the model had taken. */
  step: z.number().int().min(0),
  /** Object name in the line's object store. */
  object: z.string(),
  /** Size of the state blob in bytes. */
  bytes: z.number().int().min(0),
  /** Square input size the model scores. */
  imageSize: z.number().int().min(1),
  publishedAt: z.iso.datetime({ offset: true }),
  /** SHA-256 of the state blob (hex). */
  sha256: z.string().regex(/^[0-9a-f]{64}$/).optional(),
  /** The trainer's signature over line, version and `sha256` (when a signing key is set). */
  signature: ModelSignatureSchema.optional(),
});
/** A model version record. */
export type ModelVersionRecord = z.infer<typeof ModelVersionRecordSchema>;

/** Publishes, finds and fetches one line's model versions. */
export class ModelStore {
  /** The line. */
  readonly line: string;
  readonly #kv: KV;
  readonly #objects: ObjectStore;

  private constructor(line: string, kv: KV, objects: ObjectStore) {
    this.line = line;
    this.#kv = kv;
    this.#objects = objects;
  }

  /**
   * Opens (creating if needed) the version KV bucket and the line's object store, with
   * `replicas` copies when they are created (`streams.replicas`).
   */
  static async open(js: JetStreamClient, line: string, replicas = 1): Promise<ModelStore> {
    const kv = await js.views.kv(MODEL_VERSIONS_BUCKET, {
      history: 5,
      description: "current model version per line",
      replicas,
    });
    const objects = await js.views.os(modelObjectBucket(line), {
      description: `model versions of line ${line}`,
      replicas,
    });
    return new ModelStore(line, kv, objects);
  }

  /** The current version, or null before the first publication. */
  async current(): Promise<ModelVersionRecord | null> {
    const entry = await this.#kv.get(modelVersionKey(this.line));
    return entry ? recordOf(entry) : null;
  }

  /** The versions the KV bucket still remembers (its last 5 writes), oldest first. */
  async history(): Promise<ModelVersionRecord[]> {
    const records: ModelVersionRecord[] = [];
    for await (const entry of await this.#kv.history({ key: modelVersionKey(this.line) })) {
      if (entry.operation !== "PUT") continue;
      try {
        records.push(recordOf(entry));
      } catch {
        // an unreadable record is skipped here as in watch()
      }
    }
    return records;
  }

  /**
   * Stores `state` as the next version and makes it current. The KV write is conditional on
   * the revision read first, so two trainers racing on one line cannot both publish the same
   * version number; each stores its blob under its own object name (`model-v<N>-<nonce>`), so
   * the loser never overwrites the winner's blob, and deletes its own when it loses.
   */
  async publish(
    state: Uint8Array,
    info: { step: number; imageSize: number },
    signing?: ModelSigning | null,
  ): Promise<ModelVersionRecord> {
    const key = modelVersionKey(this.line);
    const previous = await this.#kv.get(key);
    const previousRecord = previous ? recordOf(previous) : null;
    const version = (previousRecord?.version ?? 0) + 1;
    const object = `${modelObjectName(version)}-${crypto.randomUUID().slice(0, 8)}`;
    await this.#objects.putBlob({
      name: object,
      description: `line ${this.line} model version ${version} (step ${info.step})`,
      metadata: { version: String(version), step: String(info.step) },
    }, state);
    const record: ModelVersionRecord = {
      line: this.line,
      version,
      step: info.step,
      object,
      bytes: state.length,
      imageSize: info.imageSize,
      publishedAt: new Date().toISOString(),
      sha256: await sha256Hex(state),
    };
    if (signing?.canSign) {
      record.signature = await signing.sign(this.line, version, record.sha256!);
    }
    const value = new TextEncoder().encode(JSON.stringify(record));
    try {
      if (previous && previous.operation === "PUT") {
        await this.#kv.update(key, value, previous.revision);
      } else if (previous) {
        await this.#kv.put(key, value, { previousSeq: previous.revision });
      } else {
        await this.#kv.create(key, value);
      }
    } catch (error) {
      await this.#objects.delete(object).catch(() => undefined);
      throw new Error(
        `model v${version} of line ${this.line} was not published: another trainer changed ` +
          `the current version first (${(error as Error).message})`,
      );
    }
    return record;
  }

  /**
   * The state blob of a version, or null when it was pruned. With `maxBytes`, an object
   * larger than that is refused before it is read (throws {@link ModelTooLargeError}).
   */
  async fetch(record: ModelVersionRecord, maxBytes?: number): Promise<Uint8Array | null> {
    if (maxBytes !== undefined) {
      const info = await this.#objects.info(record.object);
      if (!info || info.deleted) return null;
      if (info.size > maxBytes) throw new ModelTooLargeError(info.size, maxBytes);
    }
    const blob = await this.#objects.getBlob(record.object);
    if (blob && maxBytes !== undefined && blob.length > maxBytes) {
      throw new ModelTooLargeError(blob.length, maxBytes);
    }
    return blob;
  }

  /** Deletes stored versions older than the newest `keep`. */
  async prune(keep: number): Promise<number> {
    const current = await this.current();
    if (!current) return 0;
    let deleted = 0;
    for (const info of await this.#objects.list()) {
      const version = Number(info.metadata?.version ?? NaN);
      if (!info.deleted && Number.isInteger(version) && version <= current.version - keep) {
        await this.#objects.delete(info.name);
        deleted++;
      }
    }
    return deleted;
  }

  /**
   * Current version first (when one exists), then every new one as it is published, until
   * `signal` aborts. Unreadable records are skipped with a warning.
   */
  async *watch(signal: AbortSignal): AsyncGenerator<ModelVersionRecord> {
    const iterator = await this.#kv.watch({ key: modelVersionKey(this.line) });
    const stop = () => iterator.stop();
    signal.addEventListener("abort", stop, { once: true });
    try {
      for await (const entry of iterator) {
        if (entry.operation !== "PUT") continue;
        let record: ModelVersionRecord;
        try {
          record = recordOf(entry);
        } catch (error) {
          console.warn(`[${this.line}] ignoring unreadable model version record: ${error}`);
          continue;
        }
        yield record;
      }
    } finally {
      signal.removeEventListener("abort", stop);
      iterator.stop();
    }
  }
}

/** A model object above the configured size cap. */
export class ModelTooLargeError extends Error {
  /** Creates the error. */
  constructor(readonly bytes: number, readonly maxBytes: number) {
    super(`it holds ${bytes} bytes, above the cap of ${maxBytes} (models.maxBytes)`);
    this.name = "ModelTooLargeError";
  }
}

function recordOf(entry: KvEntry): ModelVersionRecord {
  return ModelVersionRecordSchema.parse(entry.json());
}
