/**
 * EfficientAD normalisations: teacher channel statistics over the training images, feature
 * standardisation, and the quantile-based anomaly-map normalisation. Pure tensor math.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { quantilesOf } from "./quantile.ts";

/** Smallest std used when standardising features (a dead channel would divide by zero). */
export const FEATURE_STD_EPSILON = 1e-6;

/** Smallest quantile spread used when normalising maps (all-equal maps have qb == qa). */
export const MAP_SPREAD_EPSILON = 1e-8;

/** Per-channel mean and std of teacher features. Owned by whoever holds them. */
export interface ChannelStats {
  /** [c] channel means. */
  mean: tf.Tensor1D;
  /** [c] channel standard deviations (population). */
  std: tf.Tensor1D;
}

/**
 * Running per-channel mean and (population) std of NHWC feature maps over many batches,
 * EfficientAD's teacher normalisation. Each batch's moments are merged in float64 JS arrays
 * with Chan et al.'s parallel update, so long runs neither lose precision to E[x²]−E[x]²
 * cancellation nor hold any tensor between calls.
 */
export class ChannelStatsAccumulator {
  #samples = 0;
  #pixels = 0;
  #mean: Float64Array | undefined;
  #squaredDeviations: Float64Array | undefined;

  /** Number of samples (images) added so far. */
  get count(): number {
    return this.#samples;
  }

  /**
   * Adds a batch of feature maps [b,h,w,c].
   *
   * @throws if not rank 4, empty, or the channel count differs from earlier batches
   */
  add(features: tf.Tensor4D): void {
    if (features.rank !== 4) {
      throw new RangeError(`features must be rank 4 (NHWC), got [${features.shape.join(",")}]`);
    }
    const [b, h, w, c] = features.shape;
    const pixels = b * h * w;
    if (pixels === 0 || c === 0) throw new RangeError("cannot add an empty feature batch");
    if (this.#mean !== undefined && this.#mean.length !== c) {
      throw new RangeError(`expected ${this.#mean.length} channels, got ${c}`);
    }
    const [batchMean, batchVariance] = tf.tidy(() => {
      const { mean, variance } = tf.moments(features, [0, 1, 2]);
      return [mean.dataSync(), variance.dataSync()];
    });
    if (this.#mean === undefined || this.#squaredDeviations === undefined) {
      this.#mean = Float64Array.from(batchMean);
      this.#squaredDeviations = Float64Array.from(batchVariance, (v) => v * pixels);
    } else {
      const total = this.#pixels + pixels;
      for (let i = 0; i < c; i++) {
        const delta = batchMean[i] - this.#mean[i];
        this.#mean[i] += (delta * pixels) / total;
        this.#squaredDeviations[i] += batchVariance[i] * pixels +
          (delta * delta * this.#pixels * pixels) / total;
      }
    }
    this.#pixels += pixels;
    this.#samples += b;
  }

  /**
   * The channel mean and population std of everything added. The caller owns the tensors.
   *
   * @throws if nothing was added
   */
  finish(): ChannelStats {
    if (this.#mean === undefined || this.#squaredDeviations === undefined) {
      throw new RangeError("no features were added: channel statistics are undefined");
    }
    const pixels = this.#pixels;
    const std = Float32Array.from(this.#squaredDeviations, (s) => Math.sqrt(s / pixels));
    return { mean: tf.tensor1d(Float32Array.from(this.#mean)), std: tf.tensor1d(std) };
  }
}

/**
 * Standardises NHWC features per channel: (t − mean) / max(std, 1e-6).
 *
 * @throws if the channel counts do not match
 */
export function normaliseFeatures(t: tf.Tensor4D, stats: ChannelStats): tf.Tensor4D {
  const channels = t.shape[3];
  if (stats.mean.size !== channels || stats.std.size !== channels) {
    throw new RangeError(
      `features have ${channels} channels but stats have ${stats.mean.size}/${stats.std.size}`,
    );
  }
  return tf.tidy(() =>
    tf.div(tf.sub(t, stats.mean), tf.maximum(stats.std, FEATURE_STD_EPSILON)) as tf.Tensor4D
  );
}

/** The quantiles (values) EfficientAD normalises its two anomaly maps with. */
export interface MapQuantiles {
  /** Student–teacher map at quantile qa (EfficientAD: 0.9). */
  stA: number;
  /** Student–teacher map at quantile qb (EfficientAD: 0.995). */
  stB: number;
  /** Autoencoder map at quantile qa. */
  aeA: number;
  /** Autoencoder map at quantile qb. */
  aeB: number;
  /**
   * The autoencoder's explained variance (R²) of the normalised teacher features on the same
   * images (see {@link explainedVariance}); absent in checkpoints written before it existed.
   */
  aeExplained?: number;
}

/**
 * Share of the variance of `target` that `prediction` explains, 1 − Σ(t − p)² / Σ(t − t̄)²,
 * with t̄ the per-channel mean of `target` over every sample and position (NHWC). 1 is a
 * perfect prediction, 0 no better than each channel's mean, below 0 worse.
 *
 * @throws if the shapes differ or `target` is constant in every channel
 */
export function explainedVariance(target: tf.Tensor4D, prediction: tf.Tensor4D): number {
  if (target.rank !== 4 || target.shape.some((n, i) => n !== prediction.shape[i])) {
    throw new RangeError(
      `target [${target.shape}] and prediction [${prediction.shape}] must be equal NHWC shapes`,
    );
  }
  const [residual, spread] = tf.tidy(() => {
    const centred = tf.sub(target, tf.mean(target, [0, 1, 2]));
    return [
      tf.sum(tf.squaredDifference(target, prediction)).dataSync()[0],
      tf.sum(tf.square(centred)).dataSync()[0],
    ];
  });
  if (!(spread > 0)) throw new RangeError("explained variance of a constant target is undefined");
  return 1 - residual / spread;
}

/** EfficientAD's weight of the autoencoder map: the combined map is the mean of the two. */
export const EFFICIENTAD_AE_MAP_WEIGHT = 0.5;

/**
 * Explained variance at or below which `autoencoderMapWeight: "auto"` gives the autoencoder
 * map no weight: an autoencoder this poor has not captured the part's appearance (on
 * stochastic textures it cannot, from a 1×1 bottleneck), so its map is noise.
 */
export const AUTO_AE_EXPLAINED_LOW = 0.3;
/** Explained variance at or above which `"auto"` gives EfficientAD's weight. */
export const AUTO_AE_EXPLAINED_HIGH = 0.5;

/**
 * The autoencoder map's weight for `autoencoderMapWeight: "auto"`: 0 up to
 * {@link AUTO_AE_EXPLAINED_LOW}, EfficientAD's from {@link AUTO_AE_EXPLAINED_HIGH}, linear
 * between. Not finite (unknown) → EfficientAD's.
 */
export function autoAeMapWeight(aeExplained: number): number {
  if (!Number.isFinite(aeExplained)) return EFFICIENTAD_AE_MAP_WEIGHT;
  const ramp = (aeExplained - AUTO_AE_EXPLAINED_LOW) /
    (AUTO_AE_EXPLAINED_HIGH - AUTO_AE_EXPLAINED_LOW);
  return EFFICIENTAD_AE_MAP_WEIGHT * Math.min(1, Math.max(0, ramp));
}

/**
 * The qa- and qb-quantiles of the student–teacher and autoencoder maps (e.g. of validation
 * images), torch.quantile semantics over the first 2^24 elements.
 *
 * @throws if qa > qb or either is outside [0, 1]
 */
export function mapQuantilesFrom(
  stMaps: tf.Tensor,
  aeMaps: tf.Tensor,
  qa: number,
  qb: number,
): MapQuantiles {
  if (!(qa <= qb)) throw new RangeError(`map quantiles need qa <= qb, got ${qa} and ${qb}`);
  const [stA, stB] = quantilesOf(stMaps, [qa, qb]);
  const [aeA, aeB] = quantilesOf(aeMaps, [qa, qb]);
  return { stA, stB, aeA, aeB };
}

/**
 * EfficientAD map normalisation 0.1·(map − qa)/(qb − qa), where qa/qb are quantile values;
 * a spread below 1e-8 (constant maps) is replaced by 1e-8.
 *
 * @throws if qa or qb is not finite or qb < qa
 */
export function normaliseMap(map: tf.Tensor, qa: number, qb: number): tf.Tensor {
  if (!Number.isFinite(qa) || !Number.isFinite(qb) || qb < qa) {
    throw new RangeError(`map quantile values must be finite with qb >= qa, got ${qa}, ${qb}`);
  }
  const spread = Math.max(qb - qa, MAP_SPREAD_EPSILON);
  return tf.tidy(() => tf.div(tf.mul(tf.sub(map, qa), 0.1), spread));
}
