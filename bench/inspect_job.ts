/**
 * Jobs of the inspection benchmark (`bench/inspect.ts`), run in worker threads:
 *
 * - `train`: a cold-start line emulated offline with the live trainer's own parts
 *   (`ImageBuffer`, `trainStepFromBuffer`): the surface's polluted stream arrives image by
 *   image, the trainer takes `stepsPerImage` steps per arriving image (fresh images first, then
 *   replays of the buffer), and at each learning-curve point the model is normalised on the
 *   buffer's recent images (as a publication does) and scored on the labelled test set.
 * - `nn`: the representation's upper bound without training: teacher features of a clean
 *   bank, image score = largest nearest-neighbour patch distance (PatchCore-style, random bank
 *   subsample), for one input representation (resolution, resize or tiles) and each tap.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  HygieneSchema,
  InferenceSchema,
  ModelSchema,
  type TeacherConfig,
  TrainingSchema,
} from "../src/config/schema.ts";
import { Detector } from "../src/model/detector.ts";
import { batchesOf } from "../src/model/batches.ts";
import { loadTeacher } from "../src/model/teacher.ts";
import { ImageBuffer } from "../src/stages/image_buffer.ts";
import { RejectionPolicy } from "../src/stages/hygiene.ts";
import { trainStepFromBuffer } from "../src/stages/buffer_training.ts";
import { prepareTrainingEngine } from "../src/model/training_engine.ts";
import { auroc } from "../src/metrics/auroc.ts";
import { pixelAuroc } from "../src/metrics/pixel_auroc.ts";
import { SeededRandom } from "../src/util/prng.ts";
import {
  type DefectKind,
  type DefectSize,
  downsampleMask,
  downsampleRgb,
  type GreyImage,
  PHOTO_SURFACES,
  type PhotoSurface,
  type Surface,
  tilesOf,
} from "../src/data/inspect_surfaces.ts";
import { type InspectSample, inspectSplit } from "../src/data/inspect_split.ts";
import { loadSkimagePhoto } from "../src/data/skimage_textures.ts";
import { ACCURACY_VARIANTS, type VariantName } from "./accuracy_variants.ts";
import { withSeededMathRandom } from "./accuracy_job.ts";
import { median } from "./timing.ts";

/** Settings shared by every job of a run. */
export interface InspectConfig {
  /** Side of the camera images in pixels (the generator renders at this size). */
  side: number;
  /** Detector input side (`train` jobs): the camera image is block-averaged down to it. */
  imageSize: number;
  /** The teacher (`train` jobs): the line's, or MobileNetV2 with `--taps`. */
  teacher: TeacherConfig;
  /** Student width (`train` jobs). */
  studentWidth: "tiny" | "small" | "full";
  /** Adam learning rate (`train` jobs). */
  learningRate: number;
  /** Training steps per arriving image (`train` jobs; fractions accumulate). */
  stepsPerImage: number;
  /** Training stream length. */
  trainCount: number;
  /** Learning-curve points: images seen (each ≤ trainCount; the last is the final model). */
  curve: number[];
  /** Trainer buffer capacity. */
  bufferSize: number;
  /** Images teacher statistics and map normalisation are fitted on (the newest buffered). */
  statsImages: number;
  /** Defective test images per (kind, size). */
  testPerCell: number;
  /** Normal test images. */
  testNormal: number;
  /** Clean bank images of `nn` jobs. */
  bankImages: number;
  /** Patches kept in the `nn` bank (a seeded random subsample). */
  bankPatches: number;
  /** Share of the map's pixels averaged by the top-k image score. */
  topKShare: number;
  /** Seed of data, weights and batch order. */
  seed: number;
  /**
   * Also score the buffer's own images at each curve point (`--buffer-auroc`): whether the
   * trainer memorises the defects it keeps replaying.
   */
  bufferAuroc?: boolean;
}

/** An input representation of the camera image for the `nn` bound. */
export type Representation = "resize64" | "resize128" | "resize256" | "tiles128";

/** Every representation, cheapest first. */
export const REPRESENTATIONS: readonly Representation[] = [
  "resize64",
  "resize128",
  "tiles128",
  "resize256",
];

/** A training job: one surface, one pollution ratio, one variant. */
export interface InspectTrainJob {
  type: "train";
  surface: Surface;
  ratio: number;
  variant: VariantName;
}

/** An upper-bound job: one surface, one representation. */
export interface InspectNnJob {
  type: "nn";
  surface: Surface;
  representation: Representation;
}

/** Either job. */
export type InspectJob = InspectTrainJob | InspectNnJob;

/** AUROC of the test images of one (kind, size) cell against every normal test image. */
export interface CellAuroc {
  kind: DefectKind;
  size: DefectSize;
  auroc: number;
}

/** One learning-curve point. */
export interface CurvePoint {
  /** Images that had arrived. */
  imagesSeen: number;
  /** Training steps taken. */
  steps: number;
  /** Image AUROC with the product's score (max of the map). */
  auroc: number;
  /** Image AUROC with the mean of the top `topKShare` of the map instead. */
  aurocTopK: number;
  /** Image AUROC of the student–teacher and autoencoder parts alone (max). */
  aurocSt: number;
  aurocAe: number;
  /**
   * The autoencoder's explained variance of the teacher features on the normalisation images,
   * and the weight its map got in the product's score (absent in older results).
   */
  aeExplained?: number;
  aeMapWeight?: number;
  /** Loss of the last step. */
  loss: number;
  /** Seconds of training so far in this job (steps only, not evaluation). */
  trainSeconds: number;
  /**
   * With `bufferAuroc`: image AUROC of the images the buffer holds (trained on, replayed),
   * defective against normal, with the same score; NaN when it holds one class only. Well
   * below the test AUROC (defects never seen), it says the model has learnt its buffer's
   * defects as normal.
   */
  aurocBuffer?: number;
  /** With `bufferAuroc`: defective images among the buffer's, and how many it holds. */
  bufferDefective?: number;
  bufferHeld?: number;
}

/** Result of a `train` job. */
export interface InspectTrainResult extends InspectTrainJob {
  /** Learning curve, the last point being the final model. */
  curve: CurvePoint[];
  /** Final model: AUROC per (kind, size). */
  cells: CellAuroc[];
  /** Final model: pixel AUROC over every test pixel (every 2nd row and column). */
  pixelAuroc: number;
  /** Defective images in the training stream. */
  injected: number;
  /** Median step time in ms. */
  stepMs: number;
  /** Total loss of every step, in order (4 significant digits): maturity criteria replay it. */
  losses: number[];
  /** Seconds spent rendering, training and evaluating. */
  seconds: { data: number; train: number; evaluate: number };
}

/** Per-tap bound of an `nn` job. */
export interface TapBound {
  /** `all` (the detector's concatenation) or one tap's name. */
  tap: string;
  /** Stride of the tap's native map (4 for `all`: the student's grid). */
  stride: number;
  /** Image AUROC (max patch distance). */
  auroc: number;
  /** Image AUROC (top-k mean patch distance). */
  aurocTopK: number;
  /** AUROC per (kind, size). */
  cells: CellAuroc[];
  /** Pixel AUROC on the stride-4 grid. */
  pixelAuroc: number;
}

/** Result of an `nn` job. */
export interface InspectNnResult extends InspectNnJob {
  /** Bound per tap choice. */
  taps: TapBound[];
  /** Seconds spent. */
  seconds: number;
}

/** Either result. */
export type InspectResult = InspectTrainResult | InspectNnResult;

/** MobileNetV2 taps of the default teacher with their native strides. */
const TAPS = [
  { name: "block_2_add", channels: 24, stride: 4 },
  { name: "block_5_add", channels: 32, stride: 8 },
  { name: "block_10_project_BN", channels: 96, stride: 16 },
];

/** Runs jobs in one thread, keeping the photographs between jobs. */
export class InspectJobRunner {
  #photos = new Map<PhotoSurface, Promise<GreyImage>>();

  /** Runs one job; errors name the job. */
  async run(job: InspectJob, config: InspectConfig): Promise<InspectResult> {
    try {
      const photo = await this.#photo(job.surface);
      return job.type === "train"
        ? await withSeededMathRandom(config.seed, () => runTrainJob(job, config, photo))
        : await runNnJob(job, config, photo);
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      throw new Error(`${describeJob(job)}: ${why}`);
    }
  }

  #photo(surface: Surface): Promise<GreyImage | undefined> {
    if (!(PHOTO_SURFACES as readonly string[]).includes(surface)) return Promise.resolve(undefined);
    const name = surface as PhotoSurface;
    if (!this.#photos.has(name)) this.#photos.set(name, loadSkimagePhoto(name));
    return this.#photos.get(name)!;
  }
}

/** `surface r=0.1 AD²` / `surface nn resize128`. */
export function describeJob(job: InspectJob): string {
  return job.type === "train"
    ? `${job.surface} r=${job.ratio} ${ACCURACY_VARIANTS[job.variant].label}`
    : `${job.surface} nn ${job.representation}`;
}

async function runTrainJob(
  job: InspectTrainJob,
  config: InspectConfig,
  photo: GreyImage | undefined,
): Promise<InspectTrainResult> {
  const t0 = performance.now();
  const split = inspectSplit({
    surface: job.surface,
    photo,
    side: config.side,
    trainCount: config.trainCount,
    ratio: job.ratio,
    testPerCell: config.testPerCell,
    testNormal: config.testNormal,
    seed: config.seed,
  });
  const factor = config.side / config.imageSize;
  const input = (s: InspectSample) => downsampleRgb(s.pixels, config.side, factor);
  const train = split.train.map(input);
  const test = split.test.map(input);
  const labels = split.test.map((s) => s.anomalous);
  const masks = split.test.map((s) => downsampleMask(s.mask, config.side, factor));
  const variant = ACCURACY_VARIANTS[job.variant];
  const detector = await Detector.create(
    ModelSchema.parse({
      imageSize: config.imageSize,
      studentWidth: config.studentWidth,
      teacher: config.teacher,
      seed: config.seed,
    }),
    TrainingSchema.parse({ ...variant.training, learningRate: config.learningRate }),
  );
  // The live trainer's engine (training.engine default: ONNX Runtime where it loads).
  const engine = await prepareTrainingEngine(detector, {
    inference: InferenceSchema.parse({}),
    warn: (line) => console.warn(line),
  });
  const t1 = performance.now();
  let trainMs = 0;
  let evaluateMs = 0;
  try {
    const buffer = new ImageBuffer(config.bufferSize, config.seed);
    const hygiene = new RejectionPolicy<Float32Array>(
      // The live trainer's hygiene: the variant's, else the trainer default (flagged images leave).
      HygieneSchema.parse(variant.hygiene ?? {}),
    );
    const { batchSize } = detector.training;
    const stepMs: number[] = [];
    const losses: number[] = [];
    const curve: CurvePoint[] = [];
    const points = [...new Set(config.curve)].sort((a, b) => a - b);
    let owed = 0;
    let loss = NaN;
    let final: { maps: Float32Array[]; scores: ReturnType<typeof scoreMaps> } | null = null;
    for (let i = 0; i < train.length; i++) {
      buffer.add(`img-${i}`, train[i]);
      const start = performance.now();
      if (!detector.teacherStats) {
        // As the live trainer: statistics once enough images are buffered.
        if (buffer.size >= Math.max(batchSize, config.statsImages)) {
          const recent = buffer.recent(config.statsImages).map((b) => b.pixels);
          detector.fitTeacherStats(batchesOf(recent, config.imageSize, batchSize));
        }
      } else {
        owed += config.stepsPerImage;
        for (; owed >= 1; owed--) {
          const stepStart = performance.now();
          // Fresh images first; with none left, a replay step as the live trainer takes one.
          const step = (await trainStepFromBuffer(detector, buffer, hygiene, engine)) ??
            (await trainStepFromBuffer(detector, buffer, hygiene, engine, true));
          if (!step) break; // fewer buffered images than a batch
          stepMs.push(performance.now() - stepStart);
          loss = step.report.losses.total;
          losses.push(Number(loss.toPrecision(4)));
        }
      }
      trainMs += performance.now() - start;
      const seen = i + 1;
      if (!points.includes(seen) || detector.step === 0) continue;
      const evalStart = performance.now();
      const recent = buffer.recent(config.statsImages).map((b) => b.pixels);
      detector.fitMapNormalisation(batchesOf(recent, config.imageSize, batchSize));
      const scores = scoreMaps(detector, test, config.topKShare);
      const held = config.bufferAuroc ? buffer.recent(config.bufferSize) : [];
      const heldLabels = held.map((b) => split.train[Number(b.imageId.slice(4))].anomalous);
      const heldScores = imageScores(detector, held.map((b) => b.pixels));
      curve.push({
        imagesSeen: seen,
        steps: detector.step,
        auroc: auroc(scores.max, labels),
        aurocTopK: auroc(scores.topK, labels),
        aurocSt: auroc(scores.st, labels),
        aurocAe: auroc(scores.ae, labels),
        aeExplained: detector.mapQuantiles?.aeExplained,
        aeMapWeight: detector.aeMapWeight,
        loss,
        trainSeconds: Math.round(trainMs) / 1000,
        ...(config.bufferAuroc
          ? {
            aurocBuffer: heldLabels.some((a) => a) && heldLabels.some((a) => !a)
              ? auroc(heldScores, heldLabels)
              : NaN,
            bufferDefective: heldLabels.filter((a) => a).length,
            bufferHeld: held.length,
          }
          : {}),
      });
      // Progress on long jobs (workers share the console).
      console.log(
        `  ${describeJob(job)}: ${seen} images, step ${detector.step}, ` +
          `AUROC ${curve.at(-1)!.auroc.toFixed(3)}, training ${
            curve.at(-1)!.trainSeconds.toFixed(0)
          } s${
            config.bufferAuroc
              ? `, buffer AUROC ${curve.at(-1)!.aurocBuffer?.toFixed(3)} ` +
                `(${curve.at(-1)!.bufferDefective}/${curve.at(-1)!.bufferHeld} defective)`
              : ""
          }`,
      );
      if (seen === points.at(-1)) final = { maps: scores.maps, scores };
      evaluateMs += performance.now() - evalStart;
    }
    if (!final) throw new Error(`no curve point reached (curve ${points}, ${train.length} images)`);
    return {
      ...job,
      curve,
      cells: cellAurocs(split.test, final.scores.max),
      pixelAuroc: maskedPixelAuroc(final.maps, masks, 2),
      injected: split.injected,
      stepMs: Math.round(median(stepMs)),
      losses,
      seconds: {
        data: Math.round(t1 - t0) / 1000,
        train: Math.round(trainMs) / 1000,
        evaluate: Math.round(evaluateMs) / 1000,
      },
    };
  } finally {
    await engine.dispose();
    detector.dispose();
  }
}

function concat(arrays: readonly Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

/** Image scores (max, top-k mean, ST and AE parts) and the combined maps of every image. */
function scoreMaps(
  detector: Detector,
  images: readonly Float32Array[],
  topKShare: number,
): { max: number[]; topK: number[]; st: number[]; ae: number[]; maps: Float32Array[] } {
  const out = { max: [] as number[], topK: [] as number[], st: [] as number[], ae: [] as number[] };
  const maps: Float32Array[] = [];
  const size = detector.model.imageSize;
  for (const batch of batchesOf(images, size, 16)) {
    for (const report of detector.score(batch)) {
      out.max.push(report.score);
      out.st.push(report.stScore);
      out.ae.push(report.aeScore);
    }
    const heat = detector.anomalyMaps(batch);
    const values = heat.dataSync() as Float32Array;
    heat.dispose();
    for (let b = 0; b < batch.shape[0]; b++) {
      const map = values.slice(b * size * size, (b + 1) * size * size);
      maps.push(map);
      out.topK.push(topKMean(map, topKShare));
    }
  }
  return { ...out, maps };
}

/** The product's image score (max of the map) of every image. */
function imageScores(detector: Detector, images: readonly Float32Array[]): number[] {
  const out: number[] = [];
  for (const batch of batchesOf(images, detector.model.imageSize, 16)) {
    for (const report of detector.score(batch)) out.push(report.score);
  }
  return out;
}

/** Mean of the largest `share` of the values (at least one). */
export function topKMean(values: ArrayLike<number>, share: number): number {
  const k = Math.max(1, Math.round(values.length * share));
  const sorted = Float32Array.from(values).sort();
  let sum = 0;
  for (let i = sorted.length - k; i < sorted.length; i++) sum += sorted[i];
  return sum / k;
}

/** AUROC per (kind, size) cell: that cell's defective images against every normal one. */
export function cellAurocs(test: readonly InspectSample[], scores: readonly number[]): CellAuroc[] {
  const normal = test.flatMap((s, i) => s.anomalous ? [] : [scores[i]]);
  const cells = new Map<string, { kind: DefectKind; size: DefectSize; scores: number[] }>();
  test.forEach((s, i) => {
    if (!s.defect) return;
    const key = `${s.defect.kind}/${s.defect.size}`;
    const cell = cells.get(key) ?? { kind: s.defect.kind, size: s.defect.size, scores: [] };
    cell.scores.push(scores[i]);
    cells.set(key, cell);
  });
  return [...cells.values()].map(({ kind, size, scores: positives }) => ({
    kind,
    size,
    auroc: auroc(
      [...positives, ...normal],
      [...positives.map(() => true), ...normal.map(() => false)],
    ),
  }));
}

/**
 * Pixel AUROC of `maps` against `masks` (same side; `src/metrics/pixel_auroc.ts`), every
 * `stride`-th row and column of every image, normal images' pixels included as in MVTec's
 * protocol. NaN when no mask marks a pixel.
 */
export function maskedPixelAuroc(
  maps: readonly Float32Array[],
  masks: readonly Uint8Array[],
  stride: number,
): number {
  if (!masks.some((mask) => mask.some((m) => m === 1))) return NaN;
  return pixelAuroc(maps.map((map, i) => ({ map, mask: masks[i] })), { stride });
}

async function runNnJob(
  job: InspectNnJob,
  config: InspectConfig,
  photo: GreyImage | undefined,
): Promise<InspectNnResult> {
  const start = performance.now();
  // The bank is clean (r = 0) and the test set is the train jobs' test set.
  const split = inspectSplit({
    surface: job.surface,
    photo,
    side: config.side,
    trainCount: config.bankImages,
    ratio: 0,
    testPerCell: config.testPerCell,
    testNormal: config.testNormal,
    seed: config.seed,
  });
  const { size, pieces } = representationOf(job.representation, config.side);
  const grid = size / 4;
  const teacher = await loadTeacher(
    { kind: "mobilenet_v2", taps: TAPS.map((t) => t.name) },
    size,
  );
  try {
    const features = (samples: readonly InspectSample[]) =>
      samples.map((s) => {
        const inputs = pieces(s.pixels);
        return tf.tidy(() =>
          teacher.extract(tf.tensor4d(concat(inputs), [inputs.length, size, size, 3]))
        );
      });
    const bank = tf.concat(features(split.train), 0);
    const mean = tf.tidy(() => bank.mean([0, 1, 2]));
    const std = tf.tidy(() => tf.sqrt(tf.moments(bank, [0, 1, 2]).variance).add(1e-6));
    const channels = bank.shape[3];
    const random = new SeededRandom(config.seed + 5);
    const bankRows = bank.shape[0] * grid * grid;
    const kept = random.sample(
      Array.from({ length: bankRows }, (_, i) => i),
      Math.min(config.bankPatches, bankRows),
    );
    const bankPatches = tf.tidy(() =>
      tf.gather(bank.sub(mean).div(std).reshape([bankRows, channels]), kept)
    );
    bank.dispose();
    const testFeatures = features(split.test);
    const labels = split.test.map((s) => s.anomalous);
    const mapSide = grid * Math.round(Math.sqrt(testFeatures[0].shape[0]));
    const masks = split.test.map((s) => downsampleMask(s.mask, config.side, config.side / mapSide));
    const choices = [
      { name: "all", from: 0, channels, stride: 4 },
      ...TAPS.map((tap, i) => ({
        name: tap.name,
        from: TAPS.slice(0, i).reduce((n, t) => n + t.channels, 0),
        channels: tap.channels,
        stride: tap.stride,
      })),
    ];
    const taps: TapBound[] = [];
    for (const choice of choices) {
      const bankPart = tf.tidy(() => bankPatches.slice([0, choice.from], [-1, choice.channels]));
      const bankNorms = tf.tidy(() => bankPart.square().sum(1));
      const maxScores: number[] = [];
      const topKScores: number[] = [];
      const maps: Float32Array[] = [];
      for (const f of testFeatures) {
        const pieceCount = f.shape[0];
        const distances = tf.tidy(() => {
          const q = f.sub(mean).div(std).slice([0, 0, 0, choice.from], [
            -1,
            -1,
            -1,
            choice.channels,
          ])
            .reshape([pieceCount * grid * grid, choice.channels]);
          const d2 = q.square().sum(1, true).add(bankNorms.expandDims(0))
            .sub(q.matMul(bankPart, false, true).mul(2));
          return d2.min(1).relu().sqrt();
        });
        const values = distances.dataSync() as Float32Array;
        distances.dispose();
        const map = assembleTiles(values, pieceCount, grid);
        maps.push(map);
        maxScores.push(map.reduce((m, v) => Math.max(m, v), -Infinity));
        topKScores.push(topKMean(map, config.topKShare));
      }
      tf.dispose([bankPart, bankNorms]);
      taps.push({
        tap: choice.name,
        stride: choice.stride,
        auroc: auroc(maxScores, labels),
        aurocTopK: auroc(topKScores, labels),
        cells: cellAurocs(split.test, maxScores),
        pixelAuroc: maskedPixelAuroc(maps, masks, 1),
      });
    }
    tf.dispose([...testFeatures, bankPatches, mean, std]);
    return { ...job, taps, seconds: Math.round(performance.now() - start) / 1000 };
  } finally {
    teacher.dispose();
  }
}

/** The detector-side size and how a camera image becomes its inputs. */
function representationOf(
  representation: Representation,
  side: number,
): { size: number; pieces: (pixels: Float32Array) => Float32Array[] } {
  const resize = (size: number) => ({
    size,
    pieces: (pixels: Float32Array) => [downsampleRgb(pixels, side, side / size)],
  });
  switch (representation) {
    case "resize64":
      return resize(64);
    case "resize128":
      return resize(128);
    case "resize256":
      return resize(256);
    case "tiles128":
      return { size: 128, pieces: (pixels) => tilesOf(pixels, side, 128) };
  }
}

/** Puts per-tile maps (row-major tiles of `grid²` values) back into one square map. */
function assembleTiles(values: Float32Array, tiles: number, grid: number): Float32Array {
  const n = Math.round(Math.sqrt(tiles));
  const side = n * grid;
  const map = new Float32Array(side * side);
  for (let t = 0; t < tiles; t++) {
    const ty = Math.floor(t / n), tx = t % n;
    for (let y = 0; y < grid; y++) {
      for (let x = 0; x < grid; x++) {
        map[(ty * grid + y) * side + tx * grid + x] = values[t * grid * grid + y * grid + x];
      }
    }
  }
  return map;
}
