/**
 * One job of the accuracy benchmark: for one (normal class, noise ratio, variant), build the
 * polluted Fashion-MNIST split, train a detector from scratch, score the test set and return
 * the image AUROC plus how well ATDR's outlier picks matched the injected anomalies.
 *
 * Every job with the same class and ratio sees the same images, batches and initial weights
 * (all seeded), so the variants differ only in their training configuration.
 *
 * @module
 */
import {
  type HygieneConfigInput,
  HygieneSchema,
  ModelSchema,
  type PdnWidth,
  TrainingSchema,
} from "../src/config/schema.ts";
import { RejectionPolicy, type RejectionQuality, rejectionQuality } from "../src/stages/hygiene.ts";
import { Detector } from "../src/model/detector.ts";
import { batchesOf, toBatch } from "../src/model/batches.ts";
import { scoreAll } from "../src/model/offline.ts";
import { type FashionMnistSplit, loadFashionMnist } from "../src/data/fashion_mnist.ts";
import { pollutedSplitFrom, type SplitSample } from "../src/data/polluted_split.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { auroc } from "../src/metrics/auroc.ts";
import { type BatchPicks, countOutlierPicks, type OutlierCounts } from "../src/metrics/outliers.ts";
import { ACCURACY_VARIANTS, usesAtdr, type VariantName } from "./accuracy_variants.ts";
import { greyToRgbImages } from "./fashion_images.ts";
import { median } from "./timing.ts";

/** Settings shared by every job of a run (recorded with the results). */
export interface AccuracyConfig {
  /** Detector input side (Fashion-MNIST's 28 px are upscaled to it). */
  imageSize: number;
  /** Student PDN width preset. */
  studentWidth: PdnWidth;
  /** Autoencoder bottleneck channels. */
  aeLatent: number;
  /** Training steps per job (batch size 8). */
  steps: number;
  /** Adam learning rate (paper: 1e-4). */
  learningRate: number;
  /**
   * Further TrainingSchema fields for every variant (e.g. `{ "pHard": 0.99 }`); the variant's
   * own fields win over them, and `learningRate` comes from the field above.
   */
  training: Record<string, unknown>;
  /** Clean normal training images per class (before injection). */
  trainCount: number;
  /** Test images per class, half normal, half anomalous. */
  testCount: number;
  /** Training images the teacher statistics and map quantiles are fitted on. */
  statsImages: number;
  /** Base seed: data split, weights and batch order derive from it. */
  seed: number;
}

/** What a job trains and evaluates. */
export interface AccuracyJob {
  /** Fashion-MNIST class id treated as normal. */
  normalClass: number;
  /** Noise ratio r: round(r × trainCount) anomalous test images are injected. */
  ratio: number;
  /** Training variant (a set of TrainingSchema overrides). */
  variant: VariantName;
}

/** The outcome of one job. */
export interface AccuracyJobResult extends AccuracyJob {
  /** Image AUROC on the test set. */
  auroc: number;
  /** Injected anomalies in the training set. */
  injected: number;
  /** Training set size (clean + injected). */
  trainSize: number;
  /** Test set size. */
  testSize: number;
  /** ATDR outlier picks (variants that use ATDR only). */
  atdrPicks: OutlierCounts | null;
  /** The defect-rate estimate after the last step (`atdrOutlierCount: "auto"` only). */
  defectRate: number | null;
  /**
   * Training-set hygiene's rejections against the injected anomalies (variants with hygiene
   * only): distinct images rejected, precision and recall.
   */
  rejection: RejectionQuality | null;
  /** Loss after the last step. */
  finalLoss: number;
  /** Median training-step time in ms. */
  stepMs: number;
  /** Seconds spent on setup (data, detector), training (incl. statistics) and scoring. */
  seconds: { setup: number; train: number; score: number };
}

/** Runs jobs in one thread, keeping the dataset and converted images between jobs. */
export class AccuracyJobRunner {
  #data?: Promise<{ train: FashionMnistSplit; test: FashionMnistSplit }>;
  /** Converted images by `source:index`, for the image size of the last config. */
  #images = new Map<string, Float32Array>();
  #imageSize = 0;

  /** Runs one job; throws with a message naming the job when anything fails. */
  async run(job: AccuracyJob, config: AccuracyConfig): Promise<AccuracyJobResult> {
    try {
      // Same dropout stream for every variant and ratio of a class, and for every rerun.
      return await withSeededMathRandom(
        config.seed * 1000 + job.normalClass,
        () => this.#run(job, config),
      );
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(`class ${job.normalClass}, ratio ${job.ratio}, ${job.variant}: ${why}`);
    }
  }

  async #run(job: AccuracyJob, config: AccuracyConfig): Promise<AccuracyJobResult> {
    const t0 = performance.now();
    this.#data ??= Promise.all([loadFashionMnist("train"), loadFashionMnist("test")])
      .then(([train, test]) => ({ train, test }));
    const data = await this.#data;
    const split = pollutedSplitFrom(data.train, data.test, {
      normalClass: job.normalClass,
      ratio: job.ratio,
      trainCount: config.trainCount,
      testCount: config.testCount,
      // Same split for every variant; different classes get independent samples.
      seed: config.seed * 1000 + job.normalClass,
    });
    const trainImages = this.#pixels(split.train, config.imageSize);
    const testImages = this.#pixels(split.test, config.imageSize);
    // Injected anomalies are the anomalous samples of the training set (they come from test).
    const injected = split.train.map((sample) => sample.anomalous);

    const detector = await Detector.create(
      ModelSchema.parse({
        imageSize: config.imageSize,
        studentWidth: config.studentWidth,
        aeLatent: config.aeLatent,
        seed: config.seed,
      }),
      TrainingSchema.parse({
        ...config.training,
        ...ACCURACY_VARIANTS[job.variant].training,
        learningRate: config.learningRate,
      }),
    );
    try {
      const t1 = performance.now();
      const trace = trainTraced(
        detector,
        trainImages,
        injected,
        config,
        ACCURACY_VARIANTS[job.variant].hygiene,
      );
      const t2 = performance.now();
      const scores = scoreAll(detector, testImages);
      const t3 = performance.now();
      return {
        ...job,
        auroc: auroc(scores, split.test.map((sample) => sample.anomalous)),
        injected: split.injected,
        trainSize: split.train.length,
        testSize: split.test.length,
        atdrPicks: usesAtdr(job.variant) ? countOutlierPicks(trace.picks) : null,
        defectRate: trace.defectRate,
        rejection: trace.rejection,
        finalLoss: trace.finalLoss,
        stepMs: median(trace.stepMs),
        seconds: {
          setup: round1((t1 - t0) / 1000),
          train: round1((t2 - t1) / 1000),
          score: round1((t3 - t2) / 1000),
        },
      };
    } finally {
      detector.dispose();
    }
  }

  /** Detector input for each sample, converting (and caching) what is not converted yet. */
  #pixels(samples: readonly SplitSample[], size: number): Float32Array[] {
    if (size !== this.#imageSize) {
      this.#images.clear();
      this.#imageSize = size;
    }
    const key = (s: SplitSample) => `${s.source}:${s.index}`;
    const missing = samples.filter((s) => !this.#images.has(key(s)));
    const converted = greyToRgbImages(missing.map((s) => s.image), size);
    missing.forEach((s, i) => this.#images.set(key(s), converted[i]));
    return samples.map((s) => this.#images.get(key(s))!);
  }
}

/** What {@link trainTraced} observed. */
interface TrainingTrace {
  /** Per step: which batch samples were injected and which ATDR picked. */
  picks: BatchPicks[];
  /** Wall time of each `trainStep` call. */
  stepMs: number[];
  /** Total loss of the last step. */
  finalLoss: number;
  /** Defect-rate estimate after the last step, when the detector keeps one. */
  defectRate: number | null;
  /** Training-set hygiene's rejections against the injected anomalies, when it ran. */
  rejection: RejectionQuality | null;
}

/**
 * `trainOffline`'s procedure (teacher statistics on a seeded sample, `steps` steps on
 * epoch-wise shuffled batches, map normalisation on the same sample), written out here because
 * the benchmark needs each batch's composition to score ATDR's picks, which `trainOffline`'s
 * `onStep` callback does not expose, and applies the variant's training-set hygiene with the
 * live trainer's policy (src/stages/hygiene.ts).
 */
function trainTraced(
  detector: Detector,
  images: readonly Float32Array[],
  injected: readonly boolean[],
  config: AccuracyConfig,
  hygiene: HygieneConfigInput | null,
): TrainingTrace {
  const { batchSize } = detector.training;
  const size = detector.model.imageSize;
  if (images.length < batchSize) {
    throw new Error(`need at least ${batchSize} training images, got ${images.length}`);
  }
  const random = new SeededRandom(config.seed);
  const statsIndices = images.length <= config.statsImages
    ? images.map((_, i) => i)
    : random.sample(images.map((_, i) => i), config.statsImages);
  detector.fitTeacherStats(batchesOf(statsIndices.map((i) => images[i]), size, 16));
  const trace: TrainingTrace = {
    picks: [],
    stepMs: [],
    finalLoss: NaN,
    defectRate: null,
    rejection: null,
  };
  // Hygiene as the live trainer does it: rejected images leave the training pool (and the
  // normalisation sample), re-admitted ones come back.
  const policy = hygiene ? new RejectionPolicy<number>(HygieneSchema.parse(hygiene)) : null;
  const rejected = new Set<number>();
  const everRejected = new Set<number>();
  let order: number[] = [];
  for (let step = 0; step < config.steps; step++) {
    order = order.filter((i) => !rejected.has(i));
    if (order.length < batchSize) {
      const pool = images.map((_, i) => i).filter((i) => !rejected.has(i));
      if (pool.length < batchSize) throw new Error(`hygiene left ${pool.length} images`);
      order = random.shuffled(pool);
    }
    const indices = order.splice(0, batchSize);
    const batch = toBatch(indices.map((i) => images[i]), size);
    try {
      const start = performance.now();
      const report = detector.trainStep(batch);
      trace.stepMs.push(performance.now() - start);
      trace.picks.push({ injected: indices.map((i) => injected[i]), outliers: report.outliers });
      trace.finalLoss = report.losses.total;
      trace.defectRate = report.defectRate;
      if (policy) {
        const batchImages = indices.map((i) => ({ imageId: String(i), item: i }));
        for (const id of policy.review(batchImages, report.outliers, report.defectRate)) {
          rejected.add(Number(id));
          everRejected.add(Number(id));
        }
        for (const { item } of policy.readmit()) rejected.delete(item);
      }
    } finally {
      batch.dispose();
    }
  }
  if (policy) {
    trace.rejection = rejectionQuality(
      images.map((_, i) => String(i)),
      [...everRejected].map(String),
      (id) => injected[Number(id)],
    );
  }
  const kept = statsIndices.filter((i) => !rejected.has(i));
  detector.fitMapNormalisation(batchesOf(kept.map((i) => images[i]), size, 16));
  return trace;
}

/**
 * Runs `fn` with `Math.random` replaced by a seeded generator. Why: tfjs seeds unseeded random
 * ops from `Math.random()`; the detector seeds the ones it knows (weights, the autoencoder's
 * dropout, whose unseeded masks once made reruns differ by up to 0.07 AUROC), and this keeps
 * anything else reproducible too. Safe here because a worker runs one job at a time.
 */
export async function withSeededMathRandom<T>(seed: number, fn: () => Promise<T>): Promise<T> {
  const original = Math.random;
  const random = new SeededRandom(seed);
  Math.random = () => random.next();
  try {
    return await fn();
  } finally {
    Math.random = original;
  }
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
