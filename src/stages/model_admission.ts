/**
 * The gate every model version passes before a stage uses it (the scorer on each new version,
 * a restarting trainer on the current one). Model objects are untrusted input: anyone who could
 * write the object store or the version KV could otherwise make the line score with any
 * weights or load any teacher directory. A version is accepted only if, in this order:
 *
 * 1. its record names this line and this line's image size;
 * 2. its object is at most `models.maxBytes` (checked before it is read);
 * 3. with a signing key in the environment, it carries a valid signature over line, version
 *    and the blob's SHA-256;
 * 4. its header parses with the strict checkpoint schema and its model configuration is the
 *    line's own (backend aside); the detector, teacher included, is built from the local
 *    configuration;
 * 5. every weight and statistic is finite, the map normalisation is present, and a few
 *    reference images score to finite values.
 *
 * A refused version is logged once, reported on `inspect.<line>.model.refused`, kept in the
 * stage's status, and leaves whatever the stage had in use.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import type { PipelineConfig } from "../config/schema.ts";
import type { ModelStore, ModelVersionRecord } from "../bus/model_store.ts";
import { ModelTooLargeError } from "../bus/model_store.ts";
import {
  type ModelRefusal,
  type ModelRefusalCode,
  publishModelRefusal,
} from "../bus/model_refusal.ts";
import { type ModelSigning, modelSigningFromEnv, sha256Hex } from "../bus/model_signing.ts";
import {
  CheckpointError,
  type Detector,
  detectorFromUntrustedBlob,
  referenceScoreProblem,
} from "./model_port.ts";
import type { StageLog } from "./stage.ts";

/** A version that failed a check (not a transient NATS error). */
export class ModelRefused extends Error {
  /** Which check. */
  readonly code: ModelRefusalCode;
  /** Creates the error. */
  constructor(code: ModelRefusalCode, message: string) {
    super(message);
    this.name = "ModelRefused";
    this.code = code;
  }
}

/** Options of {@link ModelGate.open}. */
export interface ModelGateOptions {
  /** The stage's connection (refusal reports go out on it). */
  connection: NatsConnection;
  /** The line's configuration. */
  config: PipelineConfig;
  /** The line's model store. */
  models: ModelStore;
  /** Which stage admits versions. */
  stage: "scorer" | "trainer";
  /** The stage's log. */
  log: StageLog;
  /** Signing key; default: from the environment (`src/bus/model_signing.ts`). */
  signing?: ModelSigning | null;
}

/** Refused version numbers remembered (so none is fetched or logged twice); oldest dropped. */
const REMEMBERED_REFUSALS = 1000;

/** Admits or refuses model versions for one stage. */
export class ModelGate {
  /** The signing key in force, or null (versions are then accepted unsigned). */
  readonly signing: ModelSigning | null;
  readonly #options: ModelGateOptions;
  readonly #refused = new Set<number>();
  #refusedCount = 0;
  #lastRefusal: ModelRefusal | null = null;

  private constructor(options: ModelGateOptions, signing: ModelSigning | null) {
    this.#options = options;
    this.signing = signing;
  }

  /**
   * Reads the signing key and opens the gate; fails at start when `models.requireSignature`
   * is set and no key is configured, or when the key is malformed.
   */
  static async open(options: ModelGateOptions): Promise<ModelGate> {
    const signing = options.signing !== undefined ? options.signing : await modelSigningFromEnv();
    if (!signing && options.config.models.requireSignature) {
      throw new Error(
        "models.requireSignature is set but no model signing key is configured " +
          "(INSPECT_MODEL_HMAC_SECRET, INSPECT_MODEL_NKEY_SEED or INSPECT_MODEL_NKEY_PUBLIC)",
      );
    }
    if (signing && options.stage === "trainer" && !signing.canSign) {
      throw new Error("the trainer needs a key that can sign: a public NKey only verifies");
    }
    const gate = new ModelGate(options, signing);
    options.log.info(
      signing
        ? `model versions must be signed (${signing.description})`
        : "model versions are checked but not signed (no signing key configured)",
    );
    return gate;
  }

  /** Status fields: how many versions were refused and the latest one, in words. */
  statusDetails(): { refusedVersions: number; lastRefusal: string | null } {
    const last = this.#lastRefusal;
    return {
      refusedVersions: this.#refusedCount,
      lastRefusal: last ? `v${last.version} (${last.code}): ${last.reason}` : null,
    };
  }

  /**
   * The detector of `record` when it passes every check; null when it is refused (then it is
   * logged once and reported). `servingVersion` is what the stage keeps using meanwhile.
   * Transient errors (NATS) are thrown, so the caller may try again.
   */
  async admit(record: ModelVersionRecord, servingVersion: number | null): Promise<Detector | null> {
    if (this.#refused.has(record.version)) return null;
    try {
      return await this.#check(record);
    } catch (error) {
      if (!(error instanceof ModelRefused)) throw error;
      this.#refuse(record, error, servingVersion);
      return null;
    }
  }

  async #check(record: ModelVersionRecord): Promise<Detector> {
    const { config, models } = this.#options;
    if (record.line !== config.line) {
      throw new ModelRefused("foreign_line", `its record names line ${record.line}`);
    }
    if (record.imageSize !== config.model.imageSize) {
      throw new ModelRefused(
        "architecture",
        `it scores ${record.imageSize}px images, this line decodes ${config.model.imageSize}px`,
      );
    }
    const cap = config.models.maxBytes;
    if (record.bytes > cap) {
      throw new ModelRefused(
        "too_large",
        `its record announces ${record.bytes} bytes, above the cap of ${cap} (models.maxBytes)`,
      );
    }
    let blob: Uint8Array | null;
    try {
      blob = await models.fetch(record, cap);
    } catch (error) {
      if (error instanceof ModelTooLargeError) throw new ModelRefused("too_large", error.message);
      throw error;
    }
    if (!blob) throw new ModelRefused("missing", "its object is no longer stored");
    const sha256 = await sha256Hex(blob);
    if (this.signing) {
      const problem = await this.signing.verify(
        config.line,
        record.version,
        sha256,
        record.signature,
      );
      if (problem) {
        throw new ModelRefused(record.signature ? "bad_signature" : "unsigned", problem);
      }
    }
    if (record.sha256 !== undefined && record.sha256 !== sha256) {
      throw new ModelRefused("malformed", "its object does not match the SHA-256 of its record");
    }
    let detector: Detector;
    try {
      detector = await detectorFromUntrustedBlob(
        blob,
        "the blob",
        config.model,
        config.training,
      );
    } catch (error) {
      if (error instanceof CheckpointError) throw new ModelRefused(error.problem, error.message);
      throw new ModelRefused("malformed", (error as Error).message);
    }
    try {
      if (!detector.warm) throw new ModelRefused("not_warm", "it has no map normalisation");
      const problem = referenceScoreProblem(detector);
      if (problem) throw new ModelRefused("reference_scores", problem);
      return detector;
    } catch (error) {
      detector.dispose();
      throw error;
    }
  }

  #refuse(record: ModelVersionRecord, error: ModelRefused, servingVersion: number | null): void {
    const { config, stage, log, connection } = this.#options;
    const refusal: ModelRefusal = {
      line: config.line,
      version: record.version,
      stage,
      code: error.code,
      reason: error.message,
      servingVersion,
      at: new Date().toISOString(),
    };
    this.#refused.add(record.version);
    if (this.#refused.size > REMEMBERED_REFUSALS) {
      this.#refused.delete(this.#refused.values().next().value!);
    }
    this.#refusedCount++;
    this.#lastRefusal = refusal;
    log.warn(
      `refused model v${record.version} (${error.code}): ${error.message}; ` +
        (servingVersion === null ? "not using it" : `still using v${servingVersion}`),
    );
    try {
      publishModelRefusal(connection, refusal);
    } catch (failure) {
      log.warn(`could not report the refusal of v${record.version}: ${failure}`);
    }
  }
}
