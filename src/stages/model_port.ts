/**
 * The stages' only door to the model code: creating, serialising, restoring and saving a
 * detector, and the tfjs backend. Keeps `src/model` API details out of the stage logic.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendName, ModelConfig, TrainingConfig } from "../config/schema.ts";
import { Detector } from "../model/detector.ts";
import { decodeCheckpoint, encodeCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { batchesOf, toBatch } from "../model/batches.ts";
import { initBackend } from "../model/backend.ts";

export type { Detector };
export { prepareScoringEngines, type ScoringEngine, type ScoringEngines } from "../model/engine.ts";
export {
  featureTensor,
  type TeacherFeatureSource,
  teacherFeatureSource,
} from "../model/teacher_engine.ts";
export {
  prepareTrainingEngine,
  TfjsTrainingEngine,
  type TrainingEngine,
} from "../model/training_engine.ts";

/** Activates the configured tfjs backend in this thread (each Worker has its own). */
export async function useBackend(name: BackendName): Promise<string> {
  return await initBackend(name);
}

/** A fresh detector for the configuration. */
export async function createDetector(
  model: ModelConfig,
  training: TrainingConfig,
): Promise<Detector> {
  return await Detector.create(model, training);
}

/** The whole detector state as one blob (for the object store). */
export function detectorToBlob(detector: Detector, label: string): Uint8Array {
  return encodeCheckpoint(detector, label);
}

/** Restores a detector from {@link detectorToBlob}'s output. */
export async function detectorFromBlob(blob: Uint8Array, source: string): Promise<Detector> {
  return await decodeCheckpoint(blob, source);
}

/** Writes a checkpoint directory usable by the offline `score` command. */
export async function saveDetector(detector: Detector, dir: string, label: string): Promise<void> {
  await saveCheckpoint(detector, dir, label);
}

/** NHWC batch of `size × size × 3` pixel arrays; the caller disposes it. */
export function imagesToBatch(images: readonly Float32Array[], size: number): tf.Tensor4D {
  return toBatch(images, size);
}

/** Consecutive batch tensors, each disposed after use. */
export function imageBatches(
  images: readonly Float32Array[],
  size: number,
  batchSize: number,
): Generator<tf.Tensor4D> {
  return batchesOf(images, size, batchSize);
}

/** Tensors alive in this thread's tfjs engine (flat over a long run, or something leaks). */
export function liveTensors(): number {
  return tf.memory().numTensors;
}

/**
 * Restores a detector from an untrusted blob: strict header, the line's own architecture
 * (the detector and its teacher are built from `model`/`training`, never from the blob),
 * finite weights and statistics. Throws a `CheckpointError` naming the problem.
 */
export async function detectorFromUntrustedBlob(
  blob: Uint8Array,
  source: string,
  model: ModelConfig,
  training: TrainingConfig,
): Promise<Detector> {
  return await decodeCheckpoint(blob, source, { model, training });
}

export { CheckpointError } from "../model/checkpoint.ts";
export { referenceScoreProblem } from "../model/reference_scores.ts";
