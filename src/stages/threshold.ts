/**
 * The label-free threshold policy (see `ThresholdPolicySchema`): `robust` (median + z·MAD) or
 * `quantile` (nearest rank) over a sliding window of recent scores, never below `floor`; nothing
 * is flagged until `minScores` scores are in.
 *
 * @module
 */
import type { ThresholdPolicy } from "../config/schema.ts";

/** MAD × this estimates the standard deviation of normally distributed scores. */
const MAD_TO_SIGMA = 1.4826;

/** Sliding window of recent scores producing the current threshold. */
export class ScoreWindow {
  /** The policy in force. */
  readonly policy: ThresholdPolicy;
  #scores: number[] = [];

  /** Creates an empty window. */
  constructor(policy: ThresholdPolicy) {
    this.policy = policy;
  }

  /** Scores held. */
  get size(): number {
    return this.#scores.length;
  }

  /** Scores needed before anything is flagged. */
  get minScores(): number {
    return this.policy.minScores ?? Math.ceil(1 / this.policy.targetFalseAlarmRate - 1e-9);
  }

  /** Adds scores (non-finite ones are ignored), dropping the oldest beyond the window. */
  add(scores: readonly number[]): void {
    for (const score of scores) if (Number.isFinite(score)) this.#scores.push(score);
    const excess = this.#scores.length - this.policy.window;
    if (excess > 0) this.#scores.splice(0, excess);
  }

  /**
   * The threshold in force. While fewer than `minScores` scores are held it is the window's
   * maximum (the current batch is in the window, so nothing is flagged); `floor` when empty.
   */
  threshold(): number {
    const n = this.#scores.length;
    if (n === 0) return this.policy.floor;
    const sorted = this.#scores.slice().sort((a, b) => a - b);
    const statistic = n < this.minScores
      ? sorted[n - 1]
      : this.policy.method === "quantile"
      ? nearestRank(sorted, 1 - this.policy.targetFalseAlarmRate)
      : robustUpperBound(sorted, this.policy.targetFalseAlarmRate);
    return Math.max(this.policy.floor, statistic);
  }
}

/** Nearest-rank quantile of sorted values (1-based rank; the epsilon keeps 0.99 × 100 at 99). */
function nearestRank(sorted: readonly number[], q: number): number {
  const rank = Math.ceil(q * sorted.length - 1e-9);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1];
}

function median(sorted: readonly number[]): number {
  const n = sorted.length;
  return n % 2 === 1 ? sorted[(n - 1) / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

/** `median + z(1 − rate) · 1.4826 · MAD` of sorted values. */
function robustUpperBound(sorted: readonly number[], rate: number): number {
  const centre = median(sorted);
  const deviations = sorted.map((s) => Math.abs(s - centre)).sort((a, b) => a - b);
  return centre + standardNormalQuantile(1 - rate) * MAD_TO_SIGMA * median(deviations);
}

/**
 * Inverse of the standard normal CDF (Acklam's rational approximation, relative error
 * below 1.2e-9), for 0 < p < 1.
 */
export function standardNormalQuantile(p: number): number {
  if (!(p > 0 && p < 1)) throw new RangeError(`probability must be in (0, 1), got ${p}`);
  const a = [
    -39.69683028665376,
    220.9460984245205,
    -275.9285104469687,
    138.357751867269,
    -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406,
    161.5858368580409,
    -155.6989798598866,
    66.80131188771972,
    -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293,
    -0.3223964580411365,
    -2.400758277161838,
    -2.549732539343734,
    4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  }
  if (p > 1 - low) return -standardNormalQuantile(1 - p);
  const q = p - 0.5;
  const r = q * q;
  return (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
}
