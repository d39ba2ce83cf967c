/**
 * How well ATDR's outlier choice finds the anomalies injected into a polluted training set:
 * the share of picked samples that really are injected anomalies (precision), against the
 * share a uniformly random pick from the same batches would reach (chance), and the share of
 * injected anomalies' batch appearances that were picked (recall).
 *
 * @module
 */

/** One training batch: which of its samples are injected anomalies and which were picked. */
export interface BatchPicks {
  /** Per sample of the batch: is it an injected anomaly? */
  injected: readonly boolean[];
  /** Batch indices the method treated as outliers. */
  outliers: readonly number[];
}

/** Additive counts over batches (sum them to pool runs, see {@link addOutlierCounts}). */
export interface OutlierCounts {
  /** Samples picked as outliers. */
  picks: number;
  /** Picked samples that are injected anomalies. */
  injectedPicks: number;
  /** Expected injected picks if each pick were uniform over its batch. */
  expectedInjectedPicks: number;
  /** Appearances of injected anomalies in batches (picked or not). */
  injectedAppearances: number;
}

/** Counts of {@link BatchPicks} over many batches. */
export function countOutlierPicks(batches: Iterable<BatchPicks>): OutlierCounts {
  const counts: OutlierCounts = {
    picks: 0,
    injectedPicks: 0,
    expectedInjectedPicks: 0,
    injectedAppearances: 0,
  };
  let batchNumber = 0;
  for (const { injected, outliers } of batches) {
    if (injected.length === 0) throw new RangeError(`batch ${batchNumber} is empty`);
    for (const index of outliers) {
      if (!Number.isInteger(index) || index < 0 || index >= injected.length) {
        throw new RangeError(
          `batch ${batchNumber}: outlier ${index} is not a sample of a batch of ${injected.length}`,
        );
      }
      if (injected[index]) counts.injectedPicks++;
    }
    const injectedCount = injected.filter(Boolean).length;
    const share = injectedCount / injected.length;
    counts.injectedAppearances += injectedCount;
    counts.picks += outliers.length;
    counts.expectedInjectedPicks += outliers.length * share;
    batchNumber++;
  }
  return counts;
}

/** Sum of several counts (e.g. all classes at one noise ratio). */
export function addOutlierCounts(parts: Iterable<OutlierCounts>): OutlierCounts {
  const total: OutlierCounts = {
    picks: 0,
    injectedPicks: 0,
    expectedInjectedPicks: 0,
    injectedAppearances: 0,
  };
  for (const part of parts) {
    total.picks += part.picks;
    total.injectedPicks += part.injectedPicks;
    total.expectedInjectedPicks += part.expectedInjectedPicks;
    // Results written before recall was recorded lack the field.
    total.injectedAppearances += part.injectedAppearances ?? 0;
  }
  return total;
}

/** Precision of the picks, its chance level and the recall. */
export interface OutlierPrecision {
  /** Picks that are injected anomalies / picks; `null` without picks. */
  precision: number | null;
  /** Precision of uniformly random picks from the same batches; `null` without picks. */
  chance: number | null;
  /** precision / chance; `null` when either is missing or chance is 0 (a clean set). */
  lift: number | null;
  /** Injected picks / injected appearances; `null` when no injected anomaly appeared. */
  recall: number | null;
}

/** Precision, chance, lift and recall of `counts`. */
export function outlierPrecision(counts: OutlierCounts): OutlierPrecision {
  const recall = counts.injectedAppearances > 0
    ? counts.injectedPicks / counts.injectedAppearances
    : null;
  if (counts.picks === 0) return { precision: null, chance: null, lift: null, recall };
  const precision = counts.injectedPicks / counts.picks;
  const chance = counts.expectedInjectedPicks / counts.picks;
  return { precision, chance, lift: chance > 0 ? precision / chance : null, recall };
}
