/**
 * Area under the ROC curve for anomaly scores, computed from ranks (the Mann–Whitney U
 * statistic): the probability that a randomly chosen anomalous image scores higher than a
 * randomly chosen normal one, ties counting one half.
 *
 * @module
 */

/**
 * Image-level AUROC of `scores` against `labels` (`true` = anomalous, the positive class).
 * Tied scores get the average of the ranks they span, so a tie between an anomalous and a
 * normal image counts 0.5. O(n log n).
 *
 * @returns a value in [0, 1]: 1 = every anomaly above every normal image, 0.5 = chance.
 * @throws RangeError when the lengths differ, a score is not finite, or either class is absent
 *   (the AUROC is undefined then).
 */
export function auroc(scores: readonly number[], labels: readonly boolean[]): number {
  if (scores.length !== labels.length) {
    throw new RangeError(`auroc: ${scores.length} scores but ${labels.length} labels`);
  }
  scores.forEach((score, i) => {
    if (!Number.isFinite(score)) throw new RangeError(`auroc: score ${i} is not finite: ${score}`);
  });
  const positives = labels.filter((anomalous) => anomalous).length;
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) {
    throw new RangeError(
      `auroc needs both classes: got ${positives} anomalous and ${negatives} normal images`,
    );
  }
  const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let positiveRankSum = 0;
  for (let start = 0; start < order.length;) {
    let end = start + 1;
    while (end < order.length && scores[order[end]] === scores[order[start]]) end++;
    // Ranks start..end-1 (0-based) are tied: each gets their mean, 1-based.
    const averageRank = (start + 1 + end) / 2;
    for (let k = start; k < end; k++) {
      if (labels[order[k]]) positiveRankSum += averageRank;
    }
    start = end;
  }
  const u = positiveRankSum - (positives * (positives + 1)) / 2;
  return u / (positives * negatives);
}
