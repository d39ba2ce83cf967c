/**
 * The AD² training losses (paper §3.3–3.5) on top of EfficientAD's hard-mined student–teacher
 * loss. Pure: tensors in, tensors/numbers out. Every loss is a `tf.Scalar` differentiable
 * w.r.t. the discrepancy (hence the student); quantile thresholds, NMFE weights and the ATDR
 * outlier choice are plain constants computed without gradient.
 *
 * Memory: functions returning tensors hand ownership to the caller (dispose them, or call them
 * inside `tf.tidy` / `tf.variableGrads`); every intermediate is disposed here.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { quantileOf, quantileOfSampleGroups } from "./quantile.ts";

/** Distance between two samples' flattened feature maps (ATDR, Eq. 5). */
export type FeatureDistance = "l2" | "cosine";

/** Training methods: EfficientAD baseline, each AD² part alone, or both (paper Table 3). */
export type LossMethod = "baseline" | "nmfe" | "atdr" | "ad2";

/** NMFE hyper-parameters (paper §4.1: 0.999, 0.1, 0.999). */
export interface NmfeOptions {
  /** Quantile of the batch std above which elements are re-weighted (Eq. 2). */
  pLarge: number;
  /** Weight of those elements (Eq. 2). */
  omegaLarge: number;
  /** Hard-example quantile of the selector (Eq. 3). */
  pHard: number;
}

/** ATDR loss hyper-parameters (paper §4.1: ξ = 0.1). */
export interface AtdrLossOptions {
  /** Weight of the outlier samples (Eq. 8). */
  xi: number;
  /** Hard-example quantile applied to each part of Eq. 8. */
  pHard: number;
}

/** ATDR selection options. */
export interface AtdrSelectOptions {
  /** Distance between two samples' flattened feature maps. */
  metric: FeatureDistance;
  /** How many of the most distant samples to treat as outliers (default 1, Eq. 6's argmax). */
  outlierCount?: number;
}

/** What ATDR selected in one batch. */
export interface AtdrSelection {
  /** d_i = Σ_{j≠i} dist(x_i, x_j) per sample (Eq. 5). */
  distanceSums: number[];
  /** Indices of the largest d_i, most distant first; ties go to the lower index. */
  outliers: number[];
}

/** Hyper-parameters of {@link studentTeacherLoss} (names as in `TrainingConfig`). */
export interface StudentTeacherLossOptions extends NmfeOptions, AtdrLossOptions {
  /** ATDR distance (`TrainingConfig.atdrDistance`). */
  metric: FeatureDistance;
  /** ATDR outliers per batch (default 1). */
  outlierCount?: number;
}

/** Result of {@link studentTeacherLoss}. The caller owns (and must dispose) every tensor. */
export interface StudentTeacherLoss {
  /** The loss to minimise. May be the same tensor object as one of `parts`. */
  loss: tf.Scalar;
  /** The terms that make up `loss`: `hard` (baseline), `nmfe`, `atdr`. */
  parts: { hard?: tf.Scalar; nmfe?: tf.Scalar; atdr?: tf.Scalar };
  /** ATDR outliers of this batch (empty for baseline and nmfe). */
  outliers: number[];
  /** ATDR distance sums per sample (empty for baseline and nmfe). */
  distanceSums: number[];
}

/** Diagnostics of one NMFE evaluation (for logging; computed without gradient). */
export interface NmfeReport {
  /** σ_large: the pLarge-quantile of the per-element batch std (population std). */
  sigmaLarge: number;
  /** Share of the [h,w,c] elements with σ ≥ σ_large, i.e. weighted by ω_large. */
  reweightedFraction: number;
  /** d_hard: the pHard-quantile of ω·μ. */
  hardThreshold: number;
  /** How many elements of ω·μ the selector kept. */
  selectedCount: number;
}

/**
 * Δ_ST: elementwise squared student–teacher difference (S − T)², NHWC [b,h,w,c]
 * (EfficientAD's distance_st; the paper's Δ_ST).
 *
 * @throws if the shapes differ
 */
export function stDiscrepancy(student: tf.Tensor4D, teacher: tf.Tensor4D): tf.Tensor4D {
  assertSameShape(student, teacher, "student", "teacher");
  return tf.squaredDifference(student, teacher);
}

/**
 * EfficientAD's hard loss: the mean of the elements of `d` that are ≥ the pHard-quantile of `d`.
 * The threshold and the selection mask are constants (computed inside a custom-gradient op, so
 * nothing of it is taped): the gradient is exactly 1/selectedCount on each selected element and
 * 0 elsewhere.
 *
 * @throws if pHard is outside [0, 1], `d` is empty or contains NaN
 */
export function hardMinedMean(d: tf.Tensor, pHard: number): tf.Scalar {
  assertProbability(pHard, "pHard");
  if (d.size === 0) throw new RangeError("hard-mined mean of an empty tensor is undefined");
  return constantWeightLoss(d, (x) => hardMinedWeights(x, pHard));
}

/**
 * NMFE loss (Eq. 1–4). With Δ = `d` of shape [b,h,w,c]:
 * μ = mean of Δ over the batch axis ([h,w,c], Eq. 1); σ = std of Δ over the batch axis;
 * σ_large = pLarge-quantile of σ; ω = ω_large where σ ≥ σ_large, else 1 (Eq. 2);
 * x = ω·μ; L = mean of the elements of x that are ≥ the pHard-quantile of x (Eq. 3–4).
 *
 * Choice: Eq. 3 literally quantiles Δ_ST, but the text replaces the selector's input by
 * ω·μ ("encapsulating the input … to ω(Δ)·μ(Δ)"), so d_hard is the pHard-quantile of ω·μ —
 * the elements compared against it. σ is the population std (tf.moments); torch's unbiased std
 * differs by the constant factor √(b/(b−1)), which selects exactly the same elements.
 * Gradients flow through μ only (ω and the selection are constants).
 *
 * @throws if `d` is not rank 4, the batch has fewer than 2 samples (no batch statistics),
 *   or an option is out of range
 */
export function nmfeLoss(d: tf.Tensor4D, opts: NmfeOptions): tf.Scalar {
  return nmfeWithReport(d, opts).loss;
}

/**
 * The NMFE diagnostics for `d` (see {@link NmfeReport}); keeps no tensor.
 */
export function nmfeReport(d: tf.Tensor4D, opts: NmfeOptions): NmfeReport {
  const { loss, report } = nmfeWithReport(d, opts);
  loss.dispose();
  return report;
}

/**
 * [b,b] distances between the flattened per-sample feature maps, via the Gram matrix:
 * l2 = ‖x_i − x_j‖₂ (features are centred on the batch mean first, which leaves l2 unchanged
 * but keeps float32 cancellation small); cosine = 1 − cos(x_i, x_j) with norms floored at
 * 1e-12 (an all-zero map is at distance 1 from everything). Tiny negatives from rounding are
 * clamped to 0, the result is symmetrised and the diagonal is exactly 0.
 *
 * @throws if `features` is not rank 4 or the metric is unknown
 */
export function pairwiseDistances(
  features: tf.Tensor4D,
  metric: FeatureDistance,
): tf.Tensor2D {
  assertRank(features, 4, "features");
  if (metric !== "l2" && metric !== "cosine") {
    throw new RangeError(`unknown ATDR metric "${metric}" (expected "l2" or "cosine")`);
  }
  const b = features.shape[0];
  return tf.tidy(() => {
    let flat: tf.Tensor2D = features.reshape([b, -1]);
    if (metric === "l2") flat = tf.sub(flat, tf.mean(flat, 0, true));
    const gram = tf.matMul(flat, flat, false, true);
    const squaredNorms = tf.sum(tf.square(flat), 1);
    let distances: tf.Tensor;
    if (metric === "l2") {
      const squared = tf.sub(
        tf.add(squaredNorms.reshape([b, 1]), squaredNorms.reshape([1, b])),
        tf.mul(gram, 2),
      );
      distances = tf.sqrt(tf.relu(squared));
    } else {
      const norms = tf.maximum(tf.sqrt(squaredNorms), 1e-12);
      const cosine = tf.div(gram, tf.mul(norms.reshape([b, 1]), norms.reshape([1, b])));
      distances = tf.relu(tf.sub(1, cosine));
    }
    const symmetric = tf.mul(tf.add(distances, distances.transpose()), 0.5);
    return tf.mul(symmetric, tf.sub(1, tf.eye(b))) as tf.Tensor2D;
  });
}

/**
 * ATDR selection (Eq. 5–6): d_i = Σ_{j≠i} dist(x_i, x_j) over the batch; the outliers are the
 * `outlierCount` samples with the largest d_i (Eq. 6's argmax for the default 1). Plain
 * numbers, no gradient.
 *
 * @param features the student's feature maps [b,h,w,c] (paper: "calculated by the student")
 * @throws if outlierCount is not an integer in [0, b − 1]
 */
export function atdrSelect(features: tf.Tensor4D, opts: AtdrSelectOptions): AtdrSelection {
  assertRank(features, 4, "features");
  const b = features.shape[0];
  const outlierCount = opts.outlierCount ?? 1;
  if (!Number.isInteger(outlierCount) || outlierCount < 0 || outlierCount >= b) {
    throw new RangeError(
      `outlierCount must be an integer in [0, ${b - 1}] for a batch of ${b}, got ${outlierCount}`,
    );
  }
  const sums = tf.tidy(() => tf.sum(pairwiseDistances(features, opts.metric), 1).dataSync());
  const distanceSums = Array.from(sums);
  const outliers = distanceSums.map((_, i) => i)
    .sort((i, j) => distanceSums[j] - distanceSums[i] || i - j)
    .slice(0, outlierCount);
  return { distanceSums, outliers };
}

/**
 * ATDR loss (Eq. 7–8), literally: hardMinedMean(Δ of the samples not in `outliers`) +
 * ξ · hardMinedMean(Δ of the outlier samples); each part mines its own pHard threshold.
 * No outliers → plain hardMinedMean(Δ).
 *
 * Implemented as one custom-gradient op Σ Δ·W (W = selection mask / count per group, times ξ
 * for the outliers), so no `tf.gather` gradient is needed (its UnsortedSegmentSum kernel is
 * missing on wasm) and the gradient costs a single multiply.
 *
 * @throws if an outlier index is not an integer in [0, b), repeats, or covers the whole batch
 */
export function atdrLoss(d: tf.Tensor4D, outliers: number[], opts: AtdrLossOptions): tf.Scalar {
  assertRank(d, 4, "discrepancy");
  assertNonNegative(opts.xi, "xi");
  const b = d.shape[0];
  const outlierSet = new Set(outliers);
  for (const i of outliers) {
    if (!Number.isInteger(i) || i < 0 || i >= b) {
      throw new RangeError(`outlier index ${i} is not a sample of a batch of ${b}`);
    }
  }
  if (outlierSet.size !== outliers.length) {
    throw new RangeError(`outlier indices repeat: [${outliers.join(", ")}]`);
  }
  if (outliers.length === 0) return hardMinedMean(d, opts.pHard);
  if (outliers.length >= b) {
    throw new RangeError("ATDR cannot treat every sample of the batch as an outlier");
  }
  const inliers = [...Array(b).keys()].filter((i) => !outlierSet.has(i));
  return constantWeightLoss(d, (x) => atdrWeights(x, inliers, outliers, opts));
}

/**
 * Mean of (a − b)²; with `weights`, a per-sample weighted mean Σ w_i·mean_i / Σ w_i where
 * mean_i is sample i's mean over its other axes (the unweighted case equals equal weights).
 * Used for the AE and student–AE losses, and to down-weight suspected anomalies there.
 *
 * @throws if shapes differ or weights are not one finite, non-negative number per sample
 *   with a positive sum
 */
export function sampleWeightedMeanSquare(
  a: tf.Tensor4D,
  b: tf.Tensor4D,
  weights?: number[],
): tf.Scalar {
  assertSameShape(a, b, "a", "b");
  if (weights === undefined) return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)));
  const batch = a.shape[0];
  if (weights.length !== batch) {
    throw new RangeError(`expected ${batch} sample weights, got ${weights.length}`);
  }
  let total = 0;
  for (const w of weights) {
    if (!Number.isFinite(w) || w < 0) {
      throw new RangeError(`sample weights must be finite and >= 0, got ${w}`);
    }
    total += w;
  }
  if (!(total > 0)) throw new RangeError("sample weights must not all be 0");
  return tf.tidy(() => {
    const perSample = tf.mean(tf.squaredDifference(a, b), [1, 2, 3]);
    const normalised = tf.tensor1d(weights.map((w) => w / total));
    return tf.sum(tf.mul(perSample, normalised));
  });
}

/**
 * The student–teacher loss of one training step for the configured method:
 * baseline = hardMinedMean(Δ); nmfe = L_NMFE; atdr = L_ATDR; ad2 = L_NMFE + L_ATDR (§3.5).
 * ATDR selection runs only for atdr/ad2.
 *
 * Ownership: the caller disposes `loss` and every tensor in `parts`
 * (`tf.dispose([loss, ...Object.values(parts)])` is safe where they alias). Inside
 * `tf.variableGrads` only the returned loss survives the closure: read or `tf.keep` parts
 * there if needed.
 *
 * @param d Δ_ST [b,h,w,c]
 * @param features the student's features used for ATDR distances (e.g. its ST output)
 */
export function studentTeacherLoss(
  d: tf.Tensor4D,
  features: tf.Tensor4D,
  method: LossMethod,
  opts: StudentTeacherLossOptions,
): StudentTeacherLoss {
  assertRank(d, 4, "discrepancy");
  if (features.shape[0] !== d.shape[0]) {
    throw new RangeError(
      `features batch ${features.shape[0]} differs from discrepancy batch ${d.shape[0]}`,
    );
  }
  switch (method) {
    case "baseline": {
      const hard = hardMinedMean(d, opts.pHard);
      return { loss: hard, parts: { hard }, outliers: [], distanceSums: [] };
    }
    case "nmfe": {
      const nmfe = nmfeLoss(d, opts);
      return { loss: nmfe, parts: { nmfe }, outliers: [], distanceSums: [] };
    }
    case "atdr": {
      const { outliers, distanceSums } = atdrSelect(features, opts);
      const atdr = atdrLoss(d, outliers, opts);
      return { loss: atdr, parts: { atdr }, outliers, distanceSums };
    }
    case "ad2": {
      const { outliers, distanceSums } = atdrSelect(features, opts);
      const nmfe = nmfeLoss(d, opts);
      let atdr: tf.Scalar;
      try {
        atdr = atdrLoss(d, outliers, opts);
      } catch (error) {
        nmfe.dispose(); // bad input loses nothing: no tensor outlives the failed call
        throw error;
      }
      return { loss: tf.add(nmfe, atdr), parts: { nmfe, atdr }, outliers, distanceSums };
    }
    default:
      throw new RangeError(`unknown loss method "${method as string}"`);
  }
}

/** A loss that is linear in `d` once its thresholds are fixed: value and dValue/dd. */
interface ConstantWeights {
  /** The loss value, Σ d·weights. */
  value: tf.Scalar;
  /** The constant gradient of the loss w.r.t. `d`; broadcastable to d's shape. */
  weights: tf.Tensor;
}

/**
 * Wraps a thresholded loss as one custom-gradient op: `forward` runs with the tape paused (its
 * quantiles, masks and statistics are constants, never taped) and the gradient is dy·weights.
 */
function constantWeightLoss(
  d: tf.Tensor,
  forward: (x: tf.Tensor) => ConstantWeights,
): tf.Scalar {
  const f = (...inputs: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const x = inputs[0] as tf.Tensor;
    const save = inputs[1] as tf.GradSaveFunc;
    const { value, weights } = forward(x);
    save([weights]);
    const gradFunc = (dy: tf.Scalar, saved: tf.Tensor[]) => {
      const w = saved[0];
      const sameShape = w.rank === x.rank && w.shape.every((n, i) => n === x.shape[i]);
      // onesLike·w broadcasts along the batch axis; wasm's broadcastTo/tile are ~50x slower.
      return tf.mul(dy, sameShape ? w : tf.mul(tf.onesLike(x), w));
    };
    return { value, gradFunc };
  };
  const op = tf.customGrad(f);
  return op(d);
}

/** Mask/count weights of the hard-mined mean, plus its threshold and selection size. */
function hardMinedWeights(
  x: tf.Tensor,
  pHard: number,
): ConstantWeights & { threshold: number; selectedCount: number } {
  const threshold = quantileOf(x, pHard);
  assertNotNaN(threshold);
  // ≥ 1 element is selected: the interpolated threshold never exceeds the maximum.
  const mask = atLeast(x, tf.scalar(threshold));
  const selectedCount = tf.sum(mask).dataSync()[0];
  const weights = tf.div(mask, selectedCount);
  return { value: tf.sum(tf.mul(x, weights)), weights, threshold, selectedCount };
}

/** Per-group hard-mined weights of Eq. 8: 1/count for inlier picks, ξ/count for outlier picks. */
function atdrWeights(
  x: tf.Tensor,
  inliers: number[],
  outliers: number[],
  opts: AtdrLossOptions,
): ConstantWeights {
  const b = x.shape[0];
  const [inlierThreshold, outlierThreshold] = quantileOfSampleGroups(
    x,
    [inliers, outliers],
    opts.pHard,
  );
  assertNotNaN(inlierThreshold);
  assertNotNaN(outlierThreshold);
  const isOutlier = (i: number) => outliers.includes(i);
  const perSample = (values: number[]) => tf.tensor(values, [b, ...x.shape.slice(1).map(() => 1)]);
  const thresholds = perSample(
    [...Array(b).keys()].map((i) => isOutlier(i) ? outlierThreshold : inlierThreshold),
  );
  const mask = atLeast(x, thresholds);
  const counts = tf.sum(mask, x.shape.slice(1).map((_, i) => i + 1)).dataSync();
  let inlierCount = 0;
  let outlierCount = 0;
  for (let i = 0; i < b; i++) {
    if (isOutlier(i)) outlierCount += counts[i];
    else inlierCount += counts[i];
  }
  const scales = perSample(
    [...Array(b).keys()].map((i) => isOutlier(i) ? opts.xi / outlierCount : 1 / inlierCount),
  );
  const weights = tf.mul(mask, scales);
  return { value: tf.sum(tf.mul(x, weights)), weights };
}

function nmfeWithReport(
  d: tf.Tensor4D,
  opts: NmfeOptions,
): { loss: tf.Scalar; report: NmfeReport } {
  assertRank(d, 4, "discrepancy");
  assertProbability(opts.pLarge, "pLarge");
  assertProbability(opts.pHard, "pHard");
  assertNonNegative(opts.omegaLarge, "omegaLarge");
  const b = d.shape[0];
  if (b < 2) throw new RangeError(`NMFE needs batch statistics: batch of ${b} < 2`);
  let report: NmfeReport | undefined;
  const loss = constantWeightLoss(d, (x) => {
    const sigma = tf.sqrt(tf.moments(x, 0).variance);
    const sigmaLarge = quantileOf(sigma, opts.pLarge);
    assertNotNaN(sigmaLarge);
    const sigmaValues = sigma.dataSync();
    const sigmaThreshold = Math.fround(sigmaLarge); // compared as float32, like tf.greaterEqual
    const omegaValues = new Float32Array(sigmaValues.length);
    let reweighted = 0;
    for (let i = 0; i < sigmaValues.length; i++) {
      const large = sigmaValues[i] >= sigmaThreshold;
      if (large) reweighted++;
      omegaValues[i] = large ? opts.omegaLarge : 1;
    }
    const omega = tf.tensor(omegaValues, x.shape.slice(1));
    const hard = hardMinedWeights(tf.mul(tf.mean(x, 0), omega), opts.pHard);
    report = {
      sigmaLarge,
      reweightedFraction: reweighted / sigmaValues.length,
      hardThreshold: hard.threshold,
      selectedCount: hard.selectedCount,
    };
    // L = Σ_i ω_i μ_i M_i / n = Σ_{s,i} Δ_{s,i} · ω_i M_i / (n·b): broadcast over the batch.
    return { value: hard.value, weights: tf.div(tf.mul(hard.weights, omega), b) };
  });
  return { loss, report: report! };
}

/**
 * 1 where x ≥ threshold else 0 (float32), as 1 − step(threshold − x): exact for floats (x − t is
 * 0 only when x == t) and, on wasm, ~3x faster than greaterEqual+cast and ~50x faster than a
 * broadcasting greaterEqual.
 */
function atLeast(x: tf.Tensor, threshold: tf.Tensor): tf.Tensor {
  return tf.sub(1, tf.step(tf.sub(threshold, x)));
}

function assertNotNaN(threshold: number): void {
  if (Number.isNaN(threshold)) {
    throw new RangeError("discrepancy contains NaN (diverged training?)");
  }
}

function assertRank(t: tf.Tensor, rank: number, name: string): void {
  if (t.rank !== rank) {
    throw new RangeError(`${name} must be rank ${rank} (NHWC), got shape [${t.shape.join(",")}]`);
  }
}

function assertSameShape(a: tf.Tensor, b: tf.Tensor, nameA: string, nameB: string): void {
  if (a.rank !== b.rank || a.shape.some((n, i) => n !== b.shape[i])) {
    throw new RangeError(
      `${nameA} [${a.shape.join(",")}] and ${nameB} [${b.shape.join(",")}] differ in shape`,
    );
  }
}

function assertProbability(p: number, name: string): void {
  if (!(p >= 0 && p <= 1)) throw new RangeError(`${name} must be in [0, 1], got ${p}`);
}

function assertNonNegative(x: number, name: string): void {
  if (!(Number.isFinite(x) && x >= 0)) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${x}`);
  }
}
