/**
 * Offline training and scoring on in-memory images: used by the `train`/`score` commands and
 * the accuracy benchmark. The streaming trainer does the same steps online.
 *
 * @module
 */
import type { Detector, TrainStepReport } from "./detector.ts";
import type { TrainingEngine } from "./training_engine.ts";
import { batchesOf, toBatch } from "./batches.ts";
import { SeededRandom } from "../util/prng.ts";

/** Options of {@link trainOffline}. */
export interface OfflineTrainingOptions {
  /** Optimiser steps. */
  steps: number;
  /** Seed of batch sampling. */
  seed: number;
  /** Images used for teacher statistics and map quantiles (a seeded sample; all if fewer). */
  statsImages?: number;
  /** Called after every step. */
  onStep?: (report: TrainStepReport) => void;
}

/**
 * Fits teacher statistics, trains `steps` steps on random batches (sampling without
 * replacement within each epoch) and fits map normalisation on training images.
 */
export function trainOffline(
  detector: Detector,
  images: readonly Float32Array[],
  options: OfflineTrainingOptions,
): void {
  const size = detector.model.imageSize;
  const plan = offlinePlan(detector, images, options);
  for (const picked of plan.batches()) {
    const batch = toBatch(picked, size);
    try {
      const report = detector.trainStep(batch);
      options.onStep?.(report);
    } finally {
      batch.dispose();
    }
  }
  detector.fitMapNormalisation(batchesOf(plan.statsSample, size, 16));
}

/**
 * {@link trainOffline} with the steps computed by `engine` (`src/model/training_engine.ts`,
 * e.g. ONNX Runtime): the same statistics, the same batches in the same order.
 */
export async function trainOfflineWith(
  detector: Detector,
  engine: TrainingEngine,
  images: readonly Float32Array[],
  options: OfflineTrainingOptions,
): Promise<void> {
  const plan = offlinePlan(detector, images, options);
  for (const picked of plan.batches()) options.onStep?.(await engine.step(picked));
  detector.fitMapNormalisation(batchesOf(plan.statsSample, detector.model.imageSize, 16));
}

/**
 * Fits teacher statistics on a seeded sample (unless fitted) and returns that sample and the
 * step batches: random batches sampling without replacement within each epoch.
 */
function offlinePlan(
  detector: Detector,
  images: readonly Float32Array[],
  options: OfflineTrainingOptions,
): { statsSample: Float32Array[]; batches: () => Generator<Float32Array[]> } {
  const { batchSize } = detector.training;
  const size = detector.model.imageSize;
  if (images.length < batchSize) {
    throw new Error(`need at least ${batchSize} training images (one batch), got ${images.length}`);
  }
  const random = new SeededRandom(options.seed);
  const statsSample = sample(images, options.statsImages ?? 256, random);
  if (!detector.teacherStats) detector.fitTeacherStats(batchesOf(statsSample, size, 16));
  function* batches(): Generator<Float32Array[]> {
    let order: number[] = [];
    for (let i = 0; i < options.steps; i++) {
      if (order.length < batchSize) order = permutation(images.length, random);
      yield order.splice(0, batchSize).map((index) => images[index]);
    }
  }
  return { statsSample, batches };
}

/** Scores every image, in batches; returns one score per image, in order. */
export function scoreAll(
  detector: Detector,
  images: readonly Float32Array[],
  batchSize = 16,
): number[] {
  const scores: number[] = [];
  for (const batch of batchesOf(images, detector.model.imageSize, batchSize)) {
    for (const report of detector.score(batch)) scores.push(report.score);
  }
  return scores;
}

function permutation(n: number, random: SeededRandom): number[] {
  return random.shuffled(Array.from({ length: n }, (_, i) => i));
}

function sample<T>(items: readonly T[], count: number, random: SeededRandom): T[] {
  return items.length <= count ? items.slice() : random.sample(items, count);
}
