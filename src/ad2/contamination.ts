/**
 * Contamination-aware ATDR: an online estimate of the line's defect rate from ATDR's own
 * distance sums, and the number k of samples per batch to down-weight that follows from it.
 * Plain numbers, no tensors.
 *
 * Estimator: in each batch, the distance sums d_i (Eq. 5) get robust z-scores
 * z_i = (d_i − median d) / (1.4826 · MAD d); the share of samples with z_i > `zCut` is that
 * batch's flagged rate, and the defect-rate estimate is its exponential moving average
 * (`smoothing` = weight of the newest batch). Median and MAD ignore up to half the batch, so a
 * few defects do not hide each other. Then k = min(⌊b · maxFraction⌋, round(margin · rate · b)):
 * a margin above 1 covers batches that hold more defects than the average.
 *
 * @module
 */

/** Scale that makes the MAD a consistent estimator of a normal distribution's σ. */
export const MAD_TO_SIGMA = 1.4826;

/** Options of {@link ContaminationEstimator}. */
export interface ContaminationEstimatorOptions {
  /** Robust z-score above which a sample counts as flagged (e.g. 3). */
  zCut: number;
  /** EMA weight of the newest batch's flagged rate, in (0, 1]. */
  smoothing: number;
  /** Largest share of a batch that may be down-weighted, in [0, 1) (e.g. 0.5). */
  maxFraction: number;
  /** Factor ≥ 0 on the expected defects per batch (rate · b) before rounding (e.g. 2). */
  margin: number;
  /** Estimate before the first batch (default 0). */
  initialRate?: number;
}

/**
 * Robust z-scores (x − median) / (1.4826 · MAD). When the MAD is 0 (at least half the values
 * equal the median) a value above the median gets +∞, one below −∞, the median itself 0.
 *
 * @throws if `values` is empty or holds a non-finite number
 */
export function robustZScores(values: readonly number[]): number[] {
  if (values.length === 0) throw new RangeError("robust z-scores of no values are undefined");
  for (const v of values) {
    if (!Number.isFinite(v)) throw new RangeError(`robust z-scores need finite values, got ${v}`);
  }
  const center = median(values);
  const scale = MAD_TO_SIGMA * median(values.map((v) => Math.abs(v - center)));
  return values.map((v) => {
    const offset = v - center;
    if (scale > 0) return offset / scale;
    return offset === 0 ? 0 : offset > 0 ? Infinity : -Infinity;
  });
}

/** Share of `values` whose robust z-score exceeds `zCut`. */
export function flaggedFraction(values: readonly number[], zCut: number): number {
  const z = robustZScores(values);
  return z.filter((score) => score > zCut).length / z.length;
}

/**
 * Outliers per batch for a defect-rate estimate:
 * min(⌊batchSize · maxFraction⌋, round(margin · rate · batchSize)), never negative and never
 * the whole batch.
 *
 * @throws if batchSize < 2 or an argument is out of range
 */
export function outlierCountFor(
  rate: number,
  batchSize: number,
  margin: number,
  maxFraction: number,
): number {
  if (!Number.isInteger(batchSize) || batchSize < 2) {
    throw new RangeError(`batchSize must be an integer >= 2, got ${batchSize}`);
  }
  assertInRange(rate, 0, 1, "rate");
  assertInRange(maxFraction, 0, 1, "maxFraction");
  if (!(Number.isFinite(margin) && margin >= 0)) {
    throw new RangeError(`margin must be a finite number >= 0, got ${margin}`);
  }
  const cap = Math.min(batchSize - 1, Math.floor(batchSize * maxFraction));
  return Math.min(cap, Math.round(margin * rate * batchSize));
}

/** Online defect-rate estimate from ATDR distance sums (see the module doc). */
export class ContaminationEstimator {
  /** The options in force. */
  readonly options: Readonly<ContaminationEstimatorOptions>;
  #rate: number;
  #batches = 0;

  /** Creates an estimator; validates its options. */
  constructor(options: ContaminationEstimatorOptions) {
    if (!(options.zCut > 0 && Number.isFinite(options.zCut))) {
      throw new RangeError(`zCut must be a finite number > 0, got ${options.zCut}`);
    }
    if (!(options.smoothing > 0 && options.smoothing <= 1)) {
      throw new RangeError(`smoothing must be in (0, 1], got ${options.smoothing}`);
    }
    assertInRange(options.maxFraction, 0, 1, "maxFraction");
    if (!(Number.isFinite(options.margin) && options.margin >= 0)) {
      throw new RangeError(`margin must be a finite number >= 0, got ${options.margin}`);
    }
    const initial = options.initialRate ?? 0;
    assertInRange(initial, 0, 1, "initialRate");
    this.options = { ...options };
    this.#rate = initial;
  }

  /** Current defect-rate estimate in [0, 1]. */
  get rate(): number {
    return this.#rate;
  }

  /** Batches seen. */
  get batches(): number {
    return this.#batches;
  }

  /** Outliers to down-weight in a batch of `batchSize` at the current estimate. */
  outlierCount(batchSize: number): number {
    return outlierCountFor(this.#rate, batchSize, this.options.margin, this.options.maxFraction);
  }

  /**
   * Folds one batch's distance sums into the estimate: rate ← (1 − s)·rate + s·flagged.
   * Returns the new estimate.
   */
  update(distanceSums: readonly number[]): number {
    const flagged = flaggedFraction(distanceSums, this.options.zCut);
    const s = this.options.smoothing;
    this.#rate = (1 - s) * this.#rate + s * flagged;
    this.#batches += 1;
    return this.#rate;
  }
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

function assertInRange(x: number, lo: number, hi: number, name: string): void {
  if (!(x >= lo && x <= hi)) throw new RangeError(`${name} must be in [${lo}, ${hi}], got ${x}`);
}
