/**
 * The label-free threshold policy (see `ThresholdPolicySchema`): a score is anomalous when it
 * is above `max(floor, Q)`, Q being the nearest-rank `1 − targetFalseAlarmRate` quantile of
 * the last `window` scores. With nearest rank, at most `⌊rate · n⌋` of the n scores in the
 * window lie strictly above Q, so on a line without defects the flagged share is bounded by
 * the target, and a small window (n < 1/rate) flags nothing at all.
 *
 * @module
 */
import type { ThresholdPolicy } from "../config/schema.ts";

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

  /** Adds scores (non-finite ones are ignored), dropping the oldest beyond the window. */
  add(scores: readonly number[]): void {
    for (const score of scores) if (Number.isFinite(score)) this.#scores.push(score);
    const excess = this.#scores.length - this.policy.window;
    if (excess > 0) this.#scores.splice(0, excess);
  }

  /** `max(floor, nearest-rank quantile)`; the floor alone while the window is empty. */
  threshold(): number {
    const n = this.#scores.length;
    if (n === 0) return this.policy.floor;
    const sorted = this.#scores.slice().sort((a, b) => a - b);
    // 1-based rank; the epsilon keeps 0.99 × 100 at 99 despite binary rounding.
    const rank = Math.ceil((1 - this.policy.targetFalseAlarmRate) * n - 1e-9);
    const quantile = sorted[Math.min(n, Math.max(1, rank)) - 1];
    return Math.max(this.policy.floor, quantile);
  }
}
