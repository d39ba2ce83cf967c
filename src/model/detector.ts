/**
 * The detector: a frozen teacher, a PDN student with two heads (teacher-mimicking and
 * autoencoder-mimicking halves of its output) and an autoencoder, trained step by step with
 * AD² or its ablations, scored exactly like plain EfficientAD (AD² adds no inference cost).
 *
 * The losses live in `src/ad2` (pure tensor math); this class owns the variables, the
 * optimiser and the normalisation statistics, and keeps every step free of tensor leaks.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { ModelConfig, TrainingConfig } from "../config/schema.ts";
import {
  aeMap,
  autoAeMapWeight,
  ChannelStatsAccumulator,
  combinedMap,
  EFFICIENTAD_AE_MAP_WEIGHT,
  explainedVariance,
  heatmaps,
  imageScores,
  type MapQuantiles,
  mapQuantilesFrom,
  normaliseFeatures,
  normaliseMap,
  stMap,
} from "../ad2/mod.ts";
import { createPdn, pdnForward, pdnOutputSize, type PdnParams, pdnVariables } from "./pdn.ts";
import {
  AUTOENCODER_DROPOUT_LAYERS,
  autoencoderForward,
  type AutoencoderParams,
  autoencoderVariables,
  createAutoencoder,
} from "./autoencoder.ts";
import { loadTeacher, type Teacher } from "./teacher.ts";
import { ContaminationEstimator } from "../ad2/contamination.ts";
import { detectorStepLoss, type StepLoss, type StepLossOptions } from "./step_loss.ts";

export { autoencoderSampleWeights } from "./step_loss.ts";

/** What a training step fixes before it sees its batch ({@link Detector.planStep}). */
export interface StepPlan {
  /** Seed of the autoencoder's dropout masks (layer i uses seed + i). */
  dropoutSeed: number;
  /** Options of the step's loss. */
  lossOptions: StepLossOptions;
}

/** What one training step did. Loss values are plain numbers, read after the step. */
export interface TrainStepReport {
  /** Step number after this step (1 for the first). */
  step: number;
  /** Loss terms: `total`, `st` (the student–teacher term of the method), `ae`, `stae`, and `nmfe`/`atdr`/`hard` where active. */
  losses: Record<string, number>;
  /** Batch indices ATDR down-weighted (empty for baseline and NMFE-only). */
  outliers: number[];
  /** Per-sample ATDR distance sums (Eq. 5), empty when ATDR is off. */
  distanceSums: number[];
  /** Batch indices kept out of the AE and student–AE losses by `autoencoderTrim`. */
  trimmed: number[];
  /** Estimated defect rate after this step (`atdrOutlierCount: "auto"`), else null. */
  defectRate: number | null;
}

/** The verdict material for one image. */
export interface ScoreReport {
  /** Image score: maximum of the combined, normalised map. */
  score: number;
  /** Maximum of the normalised student–teacher map alone. */
  stScore: number;
  /** Maximum of the normalised autoencoder map alone. */
  aeScore: number;
}

/** A {@link ScoreReport} with the image's combined anomaly map. */
export interface MappedScoreReport extends ScoreReport {
  /** Combined, normalised map at input resolution, row-major `imageSize × imageSize`. */
  map: Float32Array;
}

/** Teacher channel statistics from training images. */
export interface TeacherStats {
  /** Per-channel mean. */
  mean: tf.Tensor1D;
  /** Per-channel standard deviation. */
  std: tf.Tensor1D;
}

/** A named trainable variable, as checkpoints store it. */
export interface NamedVariable {
  /** Stable name, e.g. `student/3`. */
  name: string;
  /** The variable itself. */
  variable: tf.Variable;
}

/** Student–teacher + autoencoder anomaly detector trained with AD². */
export class Detector {
  /** Network configuration. */
  readonly model: ModelConfig;
  /** Loss and optimiser configuration. */
  readonly training: TrainingConfig;
  /** The frozen teacher. */
  readonly teacher: Teacher;
  /** Student PDN with `2 × teacher.channels` outputs. */
  readonly student: PdnParams;
  /** The autoencoder predicting teacher features. */
  readonly autoencoder: AutoencoderParams;
  #optimizer: tf.AdamOptimizer;
  #teacherStats?: TeacherStats;
  #quantiles?: MapQuantiles;
  #step = 0;
  /** Defect-rate estimate for `atdrOutlierCount: "auto"` (null otherwise). */
  #contamination: ContaminationEstimator | null;

  private constructor(
    model: ModelConfig,
    training: TrainingConfig,
    teacher: Teacher,
  ) {
    this.model = model;
    this.training = training;
    this.teacher = teacher;
    const channels = teacher.channels;
    this.student = createPdn(model.studentWidth, 2 * channels, model.seed);
    this.autoencoder = createAutoencoder({
      imageSize: model.imageSize,
      outChannels: channels,
      latent: model.aeLatent,
      seed: model.seed + 1,
    });
    this.#optimizer = tf.train.adam(training.learningRate, 0.9, 0.999, 1e-8);
    this.#contamination = training.atdrOutlierCount === "auto"
      ? new ContaminationEstimator(training.contamination)
      : null;
  }

  /** Builds a fresh detector (teacher loaded per `model.teacher`; students randomly initialised). */
  static async create(model: ModelConfig, training: TrainingConfig): Promise<Detector> {
    const teacher = await loadTeacher(model.teacher, model.imageSize);
    return new Detector(model, training, teacher);
  }

  /** Training steps taken so far. */
  get step(): number {
    return this.#step;
  }

  /** Sets the step counter (used when restoring a checkpoint). */
  set step(value: number) {
    this.#step = value;
  }

  /** True once teacher statistics and map quantiles exist, i.e. scores mean something. */
  get warm(): boolean {
    return this.#teacherStats !== undefined && this.#quantiles !== undefined;
  }

  /** Teacher channel statistics, when fitted. */
  get teacherStats(): TeacherStats | undefined {
    return this.#teacherStats;
  }

  /** Map-normalisation quantiles, when fitted. */
  get mapQuantiles(): MapQuantiles | undefined {
    return this.#quantiles;
  }

  /**
   * The autoencoder map's weight in the combined map: `training.autoencoderMapWeight`, or for
   * `"auto"` the weight the autoencoder's explained variance gives (EfficientAD's 0.5 while
   * that is unknown: not fitted yet, or a checkpoint from before it was recorded).
   */
  get aeMapWeight(): number {
    const configured = this.training.autoencoderMapWeight;
    if (configured !== "auto") return configured;
    const explained = this.#quantiles?.aeExplained;
    return explained === undefined ? EFFICIENTAD_AE_MAP_WEIGHT : autoAeMapWeight(explained);
  }

  /** Every trainable variable with a stable name (student first, then autoencoder). */
  namedVariables(): NamedVariable[] {
    return [
      ...pdnVariables(this.student).map((variable, i) => ({ name: `student/${i}`, variable })),
      ...autoencoderVariables(this.autoencoder).map((variable, i) => ({
        name: `autoencoder/${i}`,
        variable,
      })),
    ];
  }

  /**
   * Computes the teacher's per-channel mean and std over `batches` (NHWC images in [0,1]) and
   * keeps them. Call once, before the first training step, with representative images.
   */
  fitTeacherStats(batches: Iterable<tf.Tensor4D>): void {
    const accumulator = new ChannelStatsAccumulator();
    for (const batch of batches) {
      const features = this.teacher.extract(batch);
      accumulator.add(features);
      features.dispose();
    }
    if (accumulator.count === 0) throw new Error("fitTeacherStats: no images given");
    this.setTeacherStats(accumulator.finish());
  }

  /** Replaces the teacher statistics (disposing the old ones). */
  setTeacherStats(stats: TeacherStats): void {
    this.#teacherStats?.mean.dispose();
    this.#teacherStats?.std.dispose();
    this.#teacherStats = { mean: tf.keep(stats.mean), std: tf.keep(stats.std) };
  }

  /** Replaces the map-normalisation quantiles. */
  setMapQuantiles(quantiles: MapQuantiles): void {
    this.#quantiles = { ...quantiles };
  }

  /**
   * One optimiser step on `batch` (NHWC in [0,1], at least 2 images) with the configured
   * method. The student learns the normalised teacher features (first half of its output)
   * and the autoencoder's output (second half); the autoencoder learns the teacher.
   *
   * @param teacherFeatures the frozen teacher's raw features of `batch` when another engine
   *   computed them (`src/model/teacher_engine.ts`), else the teacher runs here; the caller
   *   keeps ownership
   */
  trainStep(batch: tf.Tensor4D, teacherFeatures?: tf.Tensor4D): TrainStepReport {
    const stats = this.#requireTeacherStats();
    const cfg = this.training;
    const plan = this.planStep(batch.shape[0]);
    let loss: StepLoss | undefined;
    const lossValues: Record<string, tf.Scalar> = {};
    const variables = this.namedVariables().map((v) => v.variable);
    tf.tidy(() => {
      const target = teacherFeatures
        ? normaliseFeatures(this.checkedFeatures(batch, teacherFeatures), stats)
        : this.#teacherFeatures(batch, stats);
      const input = toNetworkInput(batch);
      const { value, grads } = tf.variableGrads(() => {
        const studentOut = pdnForward(this.student, input);
        const aeOut = autoencoderForward(this.autoencoder, input, true, plan.dropoutSeed);
        loss = detectorStepLoss(studentOut, aeOut, target, plan.lossOptions);
        for (const [name, part] of Object.entries(loss.parts)) lossValues[name] = tf.keep(part);
        return loss.total;
      }, variables);
      lossValues.total = tf.keep(value);
      // Adam with torch-style (L2) weight decay, as in the paper's §4.1 optimiser.
      this.#optimizer.applyGradients(variables.map((variable) => {
        const grad = grads[variable.name];
        const tensor = cfg.weightDecay > 0 ? grad.add(variable.mul(cfg.weightDecay)) : grad;
        return { name: variable.name, tensor };
      }));
    });
    const losses: Record<string, number> = {};
    for (const [name, tensor] of Object.entries(lossValues)) losses[name] = tensor.dataSync()[0];
    // A part may be the very tensor of the loss (baseline: st === hard), so dispose once.
    tf.dispose([...new Set(Object.values(lossValues))]);
    return this.completeStep(losses, loss!);
  }

  /**
   * What a step fixes before it sees the batch: ATDR's outlier count (causal: the batch then
   * updates the estimate), the dropout seed and the loss options. For training engines that
   * compute the gradients elsewhere (`src/model/training_engine.ts`); {@link trainStep} uses it.
   */
  planStep(batchSize: number): StepPlan {
    const cfg = this.training;
    const outlierCount = this.#contamination?.outlierCount(batchSize) ??
      (cfg.atdrOutlierCount === "auto" ? 1 : cfg.atdrOutlierCount);
    return {
      // Seeded per step: a rerun of the same training (offline or live) is identical.
      dropoutSeed: this.model.seed * 1_000_000_007 + this.#step * AUTOENCODER_DROPOUT_LAYERS,
      lossOptions: {
        training: cfg,
        channels: this.teacher.channels,
        outlierCount,
        readStPerSample: this.#contamination !== null && cfg.contamination.signal === "st",
      },
    };
  }

  /**
   * Ends a step whose parameters were updated: counts it, feeds the defect-rate estimator and
   * reports. `losses` are the loss values read as numbers (`total` and the parts).
   */
  completeStep(
    losses: Record<string, number>,
    loss: Pick<StepLoss, "outliers" | "distanceSums" | "stPerSample" | "trimmed">,
  ): TrainStepReport {
    const cfg = this.training;
    this.#step += 1;
    const signal = cfg.contamination.signal === "st" ? loss.stPerSample : loss.distanceSums;
    if (this.#contamination && signal.length > 0) this.#contamination.update(signal);
    return {
      step: this.#step,
      losses,
      outliers: loss.outliers,
      distanceSums: loss.distanceSums,
      trimmed: loss.trimmed,
      defectRate: this.#contamination?.rate ?? null,
    };
  }

  /** The normalised teacher target of `batch`: from `raw` features when given, else the teacher. */
  teacherTarget(batch: tf.Tensor4D, raw?: tf.Tensor4D): tf.Tensor4D {
    const stats = this.#requireTeacherStats();
    return raw
      ? normaliseFeatures(this.checkedFeatures(batch, raw), stats)
      : this.#teacherFeatures(batch, stats);
  }

  /**
   * Sets the map-normalisation quantiles from the maps of `batches` (recent training images):
   * EfficientAD's 0.9 / 0.995 quantiles of the student–teacher and autoencoder maps.
   */
  fitMapNormalisation(batches: Iterable<tf.Tensor4D>): MapQuantiles {
    const stats = this.#requireTeacherStats();
    const stParts: tf.Tensor3D[] = [];
    const aeParts: tf.Tensor3D[] = [];
    const targets: tf.Tensor4D[] = [];
    const reconstructions: tf.Tensor4D[] = [];
    for (const batch of batches) {
      const [st, ae, target, reconstruction] = tf.tidy(() => this.#mapsAndParts(batch, stats));
      stParts.push(st);
      aeParts.push(ae);
      targets.push(target);
      reconstructions.push(reconstruction);
    }
    if (stParts.length === 0) throw new Error("fitMapNormalisation: no images given");
    const st = tf.concat(stParts, 0);
    const ae = tf.concat(aeParts, 0);
    const target = tf.concat(targets, 0);
    const reconstruction = tf.concat(reconstructions, 0);
    const quantiles: MapQuantiles = {
      ...mapQuantilesFrom(st, ae, this.training.mapQuantileA, this.training.mapQuantileB),
      aeExplained: explainedVariance(target, reconstruction),
    };
    tf.dispose([
      st,
      ae,
      target,
      reconstruction,
      ...stParts,
      ...aeParts,
      ...targets,
      ...reconstructions,
    ]);
    this.#quantiles = quantiles;
    return quantiles;
  }

  /** Scores a batch (NHWC in [0,1]). Needs teacher statistics and map quantiles. */
  score(batch: tf.Tensor4D): ScoreReport[] {
    return this.#score(batch, false);
  }

  /**
   * {@link score} plus each image's combined map at input resolution (row-major
   * `imageSize²`), from the same forward pass: the heatmap costs one small resize.
   */
  scoreWithMaps(batch: tf.Tensor4D): MappedScoreReport[] {
    return this.#score(batch, true) as MappedScoreReport[];
  }

  #score(batch: tf.Tensor4D, withMaps: boolean): ScoreReport[] {
    const stats = this.#requireTeacherStats();
    const q = this.#requireQuantiles();
    const outputs: tf.Tensor[] = tf.tidy(() => {
      const [stRaw, aeRaw] = this.#maps(batch, stats);
      const combinedRaw = combinedMap(stRaw, aeRaw, q, this.aeMapWeight);
      return [
        imageScores(combinedRaw),
        imageScores(normaliseMap(stRaw, q.stA, q.stB) as tf.Tensor3D),
        imageScores(normaliseMap(aeRaw, q.aeA, q.aeB) as tf.Tensor3D),
        ...(withMaps ? [heatmaps(combinedRaw, this.model.imageSize)] : []),
      ];
    });
    const [scores, stScores, aeScores] = outputs.slice(0, 3).map((t) => Array.from(t.dataSync()));
    const pixels = this.model.imageSize ** 2;
    const mapValues = outputs[3]?.dataSync() as Float32Array | undefined;
    tf.dispose(outputs);
    return scores.map((score, i) => ({
      score,
      stScore: stScores[i],
      aeScore: aeScores[i],
      ...(mapValues ? { map: mapValues.slice(i * pixels, (i + 1) * pixels) } : {}),
    }));
  }

  /** Combined, normalised anomaly maps at input resolution, [b, S, S]; caller disposes. */
  anomalyMaps(batch: tf.Tensor4D): tf.Tensor3D {
    const stats = this.#requireTeacherStats();
    const q = this.#requireQuantiles();
    return tf.tidy(() => {
      const [st, ae] = this.#maps(batch, stats);
      return heatmaps(
        combinedMap(st, ae, q, this.aeMapWeight),
        this.model.imageSize,
      );
    });
  }

  /** Frees every tensor the detector holds, the teacher's too. */
  dispose(): void {
    for (const { variable } of this.namedVariables()) variable.dispose();
    this.#teacherStats?.mean.dispose();
    this.#teacherStats?.std.dispose();
    this.#optimizer.dispose();
    this.teacher.dispose();
  }

  /** Raw (unnormalised) student–teacher and autoencoder maps of a batch. */
  #maps(batch: tf.Tensor4D, stats: TeacherStats): [tf.Tensor3D, tf.Tensor3D] {
    const [st, ae] = this.#mapsAndParts(batch, stats);
    return [st, ae];
  }

  /** {@link #maps} plus the normalised teacher target and the autoencoder's output. */
  #mapsAndParts(
    batch: tf.Tensor4D,
    stats: TeacherStats,
  ): [tf.Tensor3D, tf.Tensor3D, tf.Tensor4D, tf.Tensor4D] {
    const channels = this.teacher.channels;
    const target = this.#teacherFeatures(batch, stats);
    const input = toNetworkInput(batch);
    const studentOut = pdnForward(this.student, input);
    const [studentSt, studentAe] = tf.split(studentOut, [channels, channels], 3);
    const aeOut = autoencoderForward(this.autoencoder, input, false);
    return [
      stMap(studentSt as tf.Tensor4D, target),
      aeMap(studentAe as tf.Tensor4D, aeOut),
      target,
      aeOut,
    ];
  }

  #teacherFeatures(batch: tf.Tensor4D, stats: TeacherStats): tf.Tensor4D {
    return normaliseFeatures(this.teacher.extract(batch), stats);
  }

  /** `features` if they have the shape the teacher gives for `batch`, else a clear error. */
  checkedFeatures(batch: tf.Tensor4D, features: tf.Tensor4D): tf.Tensor4D {
    const grid = pdnOutputSize(this.model.imageSize);
    const expected = [batch.shape[0], grid, grid, this.teacher.channels];
    if (features.shape.some((n, i) => n !== expected[i])) {
      throw new Error(
        `trainStep: teacher features have shape [${features.shape}], expected [${expected}]`,
      );
    }
    return features;
  }

  #requireTeacherStats(): TeacherStats {
    if (!this.#teacherStats) {
      throw new Error("teacher statistics are not fitted yet: call fitTeacherStats first");
    }
    return this.#teacherStats;
  }

  #requireQuantiles(): MapQuantiles {
    if (!this.#quantiles) {
      throw new Error("map normalisation is not fitted yet: call fitMapNormalisation first");
    }
    return this.#quantiles;
  }
}

/** Students and autoencoder see images in [-1, 1], the range the teachers are trained on. */
export function toNetworkInput(batch: tf.Tensor4D): tf.Tensor4D {
  return batch.mul(2).sub(1) as tf.Tensor4D;
}
