/**
 * Checkpoints: the whole detector state (student, autoencoder, teacher statistics, map
 * quantiles, configuration, step) as a directory (`detector.json` + `weights.bin`) or as one
 * byte blob for the NATS object store. Both hold the same header and weights.
 *
 * The teacher is not stored: it is frozen and rebuilt from `model.teacher` (nsfwjs package or
 * the user's model path), which keeps checkpoints small.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { z } from "zod";
import {
  type ModelConfig,
  ModelSchema,
  type TrainingConfig,
  TrainingSchema,
} from "../config/schema.ts";
import { Detector } from "./detector.ts";

/** Bumped whenever the checkpoint layout changes incompatibly. */
export const CHECKPOINT_FORMAT_VERSION = 1;

const HeaderSchema = z.object({
  formatVersion: z.literal(CHECKPOINT_FORMAT_VERSION),
  model: ModelSchema,
  training: TrainingSchema,
  step: z.number().int().min(0),
  /** Free-form label of this state (the pipeline's model version), if any. */
  label: z.string().optional(),
  createdAt: z.string(),
  teacherStats: z.object({ mean: z.array(z.number()), std: z.array(z.number()) }).strict()
    .optional(),
  mapQuantiles: z.object({
    stA: z.number(),
    stB: z.number(),
    aeA: z.number(),
    aeB: z.number(),
    aeExplained: z.number().optional(),
  }).strict().optional(),
  variables: z.array(
    z.object({ name: z.string(), shape: z.array(z.number().int().min(0)) }).strict(),
  ),
}).strict();

/** Why a checkpoint was refused (see {@link CheckpointError}). */
export type CheckpointProblem =
  /** Not a checkpoint, truncated, or a header outside the strict schema. */
  | "malformed"
  /** Another architecture than the configuration it must match (teacher included). */
  | "architecture"
  /** A weight or statistic is NaN or infinite. */
  | "not_finite";

/** A checkpoint that cannot be used; {@link problem} says why. */
export class CheckpointError extends Error {
  /** The kind of problem. */
  readonly problem: CheckpointProblem;
  /** Creates the error. */
  constructor(problem: CheckpointProblem, message: string) {
    super(message);
    this.name = "CheckpointError";
    this.problem = problem;
  }
}

/** The configuration a checkpoint must have been made with, and builds its detector from. */
export interface ExpectedArchitecture {
  /** The line's own model configuration (teacher included; `backend` is this host's choice). */
  model: ModelConfig;
  /** The line's own training configuration. */
  training: TrainingConfig;
}

/** The JSON part of a checkpoint. */
export type CheckpointHeader = z.infer<typeof HeaderSchema>;

const MAGIC = new TextEncoder().encode("AD2C");
const HEADER_FILE = "detector.json";
const WEIGHTS_FILE = "weights.bin";

/** Header and weights of a detector, read synchronously from its tensors. */
function snapshot(
  detector: Detector,
  label?: string,
): { header: CheckpointHeader; weights: Float32Array } {
  const named = detector.namedVariables();
  const total = named.reduce((sum, { variable }) => sum + variable.size, 0);
  const weights = new Float32Array(total);
  let offset = 0;
  for (const { variable } of named) {
    weights.set(variable.dataSync() as Float32Array, offset);
    offset += variable.size;
  }
  const stats = detector.teacherStats;
  const header: CheckpointHeader = {
    formatVersion: CHECKPOINT_FORMAT_VERSION,
    model: detector.model,
    training: detector.training,
    step: detector.step,
    label,
    createdAt: new Date().toISOString(),
    teacherStats: stats
      ? { mean: Array.from(stats.mean.dataSync()), std: Array.from(stats.std.dataSync()) }
      : undefined,
    mapQuantiles: detector.mapQuantiles,
    variables: named.map(({ name, variable }) => ({ name, shape: variable.shape })),
  };
  return { header, weights };
}

/** Rebuilds a detector from a header and its weights; shapes must match the configuration. */
async function restore(
  headerJson: unknown,
  weights: Float32Array,
  source: string,
  expected?: ExpectedArchitecture,
): Promise<Detector> {
  const parsed = HeaderSchema.safeParse(headerJson);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new CheckpointError(
      "malformed",
      `${source}: not a usable checkpoint (${issue.path.join(".") || "header"}: ${issue.message})`,
    );
  }
  const header = parsed.data;
  if (expected) checkArchitecture(header.model, expected.model, source);
  checkFinite(header, weights, source);
  // With an expected architecture the detector (and so the teacher) comes from the local
  // configuration, never from the blob.
  const detector = expected
    ? await Detector.create(expected.model, expected.training)
    : await Detector.create(header.model, header.training);
  try {
    const named = detector.namedVariables();
    if (named.length !== header.variables.length) {
      throw new CheckpointError(
        "architecture",
        `${source}: ${header.variables.length} variables stored, the configuration makes ${named.length}`,
      );
    }
    let offset = 0;
    named.forEach(({ name, variable }, i) => {
      const stored = header.variables[i];
      if (stored.name !== name || stored.shape.join("x") !== variable.shape.join("x")) {
        throw new CheckpointError(
          "architecture",
          `${source}: variable ${i} is ${stored.name} [${stored.shape}], expected ${name} [${variable.shape}]`,
        );
      }
      const size = variable.size;
      if (offset + size > weights.length) {
        throw new CheckpointError("malformed", `${source}: weights are truncated`);
      }
      tf.tidy(() =>
        variable.assign(tf.tensor(weights.subarray(offset, offset + size), variable.shape))
      );
      offset += size;
    });
    if (offset !== weights.length) {
      throw new CheckpointError(
        "malformed",
        `${source}: ${weights.length - offset} unexpected trailing weights`,
      );
    }
    if (header.teacherStats) {
      detector.setTeacherStats({
        mean: tf.tensor1d(header.teacherStats.mean),
        std: tf.tensor1d(header.teacherStats.std),
      });
    }
    if (header.mapQuantiles) detector.setMapQuantiles(header.mapQuantiles);
    detector.step = header.step;
    return detector;
  } catch (error) {
    detector.dispose();
    throw error;
  }
}

/**
 * Refuses a header whose model differs from `expected` in anything but the backend: the
 * network shapes, the seed and above all the teacher (a blob must not choose which model
 * directory is loaded).
 */
function checkArchitecture(stored: ModelConfig, expected: ModelConfig, source: string): void {
  const differing = (Object.keys({ ...stored, ...expected }) as (keyof ModelConfig)[])
    .filter((key) => key !== "backend")
    .filter((key) => JSON.stringify(stored[key]) !== JSON.stringify(expected[key]));
  if (differing.length === 0) return;
  const key = differing[0];
  throw new CheckpointError(
    "architecture",
    `${source}: model.${key} is ${JSON.stringify(stored[key])}, this line's configuration has ` +
      `${JSON.stringify(expected[key])}` +
      (differing.length > 1 ? ` (also ${differing.slice(1).join(", ")})` : ""),
  );
}

/** Every weight, teacher statistic and map quantile must be a finite number. */
function checkFinite(header: CheckpointHeader, weights: Float32Array, source: string): void {
  const bad = weights.findIndex((w) => !Number.isFinite(w));
  if (bad >= 0) {
    throw new CheckpointError(
      "not_finite",
      `${source}: weight ${bad} of ${weights.length} is ${weights[bad]}`,
    );
  }
  const stats = header.teacherStats;
  const numbers: [string, number[]][] = [
    ["teacherStats.mean", stats?.mean ?? []],
    ["teacherStats.std", stats?.std ?? []],
    ["mapQuantiles", Object.values(header.mapQuantiles ?? {})],
  ];
  for (const [field, values] of numbers) {
    // JSON has no NaN: a non-finite statistic arrives as null and fails the schema already;
    // a huge exponent parses as Infinity and is caught here.
    if (values.some((v) => !Number.isFinite(v))) {
      throw new CheckpointError("not_finite", `${source}: ${field} holds a non-finite value`);
    }
  }
}

/** Writes `detector.json` and `weights.bin` into `dir` (created if missing). */
export async function saveCheckpoint(
  detector: Detector,
  dir: string,
  label?: string,
): Promise<void> {
  const { header, weights } = snapshot(detector, label);
  await Deno.mkdir(dir, { recursive: true });
  // Weights first, header last: a directory with a header always has complete weights.
  await Deno.writeFile(`${dir}/${WEIGHTS_FILE}`, new Uint8Array(weights.buffer));
  await Deno.writeTextFile(`${dir}/${HEADER_FILE}`, JSON.stringify(header, null, 2) + "\n");
}

/** Loads a checkpoint directory written by {@link saveCheckpoint}. */
export async function loadCheckpoint(dir: string): Promise<Detector> {
  let headerText: string;
  let bytes: Uint8Array;
  try {
    headerText = await Deno.readTextFile(`${dir}/${HEADER_FILE}`);
    bytes = await Deno.readFile(`${dir}/${WEIGHTS_FILE}`);
  } catch (error) {
    throw new Error(`${dir}: no checkpoint here (${(error as Error).message})`);
  }
  if (bytes.length % 4 !== 0) {
    throw new Error(`${dir}/${WEIGHTS_FILE}: size is not a multiple of 4`);
  }
  const weights = new Float32Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length),
  );
  return await restore(JSON.parse(headerText), weights, dir);
}

/** Reads only a checkpoint directory's header (cheap: no weights, no model). */
export async function readCheckpointHeader(dir: string): Promise<CheckpointHeader> {
  return HeaderSchema.parse(JSON.parse(await Deno.readTextFile(`${dir}/${HEADER_FILE}`)));
}

/**
 * One blob: "AD2C", header length (uint32 LE), header JSON padded to 4 bytes, float32 weights.
 */
export function encodeCheckpoint(detector: Detector, label?: string): Uint8Array {
  const { header, weights } = snapshot(detector, label);
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 4) * 4;
  const out = new Uint8Array(8 + padded + weights.byteLength);
  out.set(MAGIC, 0);
  new DataView(out.buffer).setUint32(4, padded, true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + padded);
  out.set(new Uint8Array(weights.buffer), 8 + padded);
  return out;
}

/**
 * Decodes a blob made by {@link encodeCheckpoint}. With `expected`, the blob is untrusted
 * input: its header must match the line's own architecture and the detector is built from
 * `expected`, not from the blob. Throws a {@link CheckpointError} naming the problem.
 */
export async function decodeCheckpoint(
  bytes: Uint8Array,
  source = "checkpoint blob",
  expected?: ExpectedArchitecture,
): Promise<Detector> {
  if (bytes.length < 8 || !MAGIC.every((b, i) => bytes[i] === b)) {
    throw new CheckpointError("malformed", `${source}: not a detector checkpoint (bad magic)`);
  }
  const headerLength = new DataView(bytes.buffer, bytes.byteOffset).getUint32(4, true);
  const weightsStart = 8 + headerLength;
  if (weightsStart > bytes.length || (bytes.length - weightsStart) % 4 !== 0) {
    throw new CheckpointError("malformed", `${source}: truncated checkpoint`);
  }
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, weightsStart)));
  } catch (error) {
    throw new CheckpointError(
      "malformed",
      `${source}: header is not JSON (${(error as Error).message})`,
    );
  }
  const weights = new Float32Array(bytes.slice(weightsStart).buffer);
  return await restore(header, weights, source, expected);
}
