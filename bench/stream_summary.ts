/**
 * The pure half of the stream benchmark (`bench/stream.ts`): what one (class, ratio, variant)
 * cell records, how the live stream's verdicts and training events become AUROC and
 * training-time rejection precision/recall against the split's ground truth, the mean rows and
 * the tables. No NATS, no tensors: the test suite runs it on hand-made events.
 *
 * @module
 */
import type { TrainingEvent } from "../src/bus/training_event.ts";
import type { Verdict } from "../src/bus/verdict.ts";
import { auroc } from "../src/metrics/auroc.ts";
import {
  addOutlierCounts,
  type BatchPicks,
  countOutlierPicks,
  type OutlierCounts,
  outlierPrecision,
} from "../src/metrics/outliers.ts";
import { rejectionQuality } from "../src/stages/hygiene.ts";
import type { VariantName } from "./accuracy_variants.ts";
import { fixed, signed, type Table } from "./report.ts";

/** One cell of the grid: the same (class, ratio, variant) as an accuracy job. */
export interface StreamCell {
  /** Fashion-MNIST class id treated as normal. */
  normalClass: number;
  /** Noise ratio r of the polluted training set. */
  ratio: number;
  /** Training variant (bench/accuracy_variants.ts). */
  variant: VariantName;
}

/** Training-time rejection by the hygiene policy (`rejected` of the training events). */
export interface HygieneRejection {
  /** Rejection decisions (one per rejected Image-Id; a replayed image has a new id per pass). */
  rejected: number;
  /** Of those, injected anomalies. */
  rejectedAnomalous: number;
  /** Distinct training images (across passes) rejected at least once. */
  distinctRejected: number;
  /** Distinct injected anomalies rejected at least once. */
  distinctAnomalousRejected: number;
  /** Injected anomalies in the training set. */
  injected: number;
  /** `rejectedAnomalous / rejected`; null when nothing was rejected. */
  precision: number | null;
  /** `distinctAnomalousRejected / injected`; null when nothing was injected. */
  recall: number | null;
}

/** Everything the training events say about training-time rejection, up to a step. */
export interface RejectionMetrics {
  /** Training events counted (steps 1..maxStep). */
  events: number;
  /** ATDR down-weighting, per batch appearance (same counts as the offline `atdrPicks`). */
  downWeight: OutlierCounts;
  /** Down-weighted appearances that are injected anomalies / down-weighted appearances. */
  downWeightPrecision: number | null;
  /** Down-weighted injected-anomaly appearances / injected-anomaly appearances. */
  downWeightRecall: number | null;
  /** Precision a uniformly random pick from the same batches would reach. */
  downWeightChance: number | null;
  /** Hygiene rejections. */
  hygiene: HygieneRejection;
}

/** What one live run of a cell measured, with the cell's offline result. */
export interface StreamCellResult extends StreamCell {
  /** Live run number of the cell (1-based; `--repeats` runs the live half again). */
  repeat: number;
  /** AUROC of the live test verdicts' scores. */
  liveAuroc: number;
  /** AUROC of the offline job (`bench:accuracy`'s) for the same cell. */
  offlineAuroc: number;
  /** `liveAuroc − offlineAuroc`. */
  gap: number;
  /** Training-time rejection in the live run, from its training events up to `modelStep`. */
  live: RejectionMetrics;
  /** The offline job's ATDR picks (null for variants without ATDR). */
  offlineDownWeight: OutlierCounts | null;
  /** Highest training step the live trainer reported (it may pass `modelStep` before the pause). */
  stepsTrained: number;
  /** Version that scored every test image. */
  modelVersion: number;
  /** Training steps of that version (the offline step count). */
  modelStep: number;
  /** Training passes published (each with fresh Image-Ids). */
  passes: number;
  /** Image messages published (training passes and test set). */
  imagesPublished: number;
  /** Training set size (clean + injected) and injected anomalies. */
  trainSize: number;
  /** Injected anomalies in the training set. */
  injected: number;
  /** Test set size. */
  testSize: number;
  /** Wall seconds of the live run (server start to verdicts read) and of the offline job. */
  seconds: { live: number; offline: number };
}

/**
 * Scores of the test images' verdicts, in `testIds` order. Every test image must have a
 * `scored` verdict from model version `modelVersion`: the comparison is with one frozen model.
 */
export function testScores(
  verdicts: readonly Verdict[],
  testIds: readonly string[],
  modelVersion: number,
): number[] {
  const byId = new Map<string, Verdict>();
  for (const verdict of verdicts) {
    if (verdict.imageId !== null) byId.set(verdict.imageId, verdict);
  }
  return testIds.map((imageId) => {
    const verdict = byId.get(imageId);
    if (!verdict) throw new Error(`test image ${imageId} has no verdict`);
    if (verdict.status !== "scored") {
      throw new Error(`test image ${imageId} was not scored: ${verdict.status}`);
    }
    if (verdict.modelVersion !== modelVersion) {
      throw new Error(
        `test image ${imageId} was scored by v${verdict.modelVersion}, expected v${modelVersion}`,
      );
    }
    return verdict.score;
  });
}

/** AUROC of the test verdicts (see {@link testScores}) against `labels` (true = anomalous). */
export function liveTestAuroc(
  verdicts: readonly Verdict[],
  testIds: readonly string[],
  labels: readonly boolean[],
  modelVersion: number,
): number {
  if (labels.length !== testIds.length) {
    throw new RangeError(`${testIds.length} test ids but ${labels.length} labels`);
  }
  return auroc(testScores(verdicts, testIds, modelVersion), labels);
}

/**
 * Down-weighting and hygiene-rejection metrics of the training events with `step ≤ maxStep`.
 *
 * @param sampleOf maps a published Image-Id to its training sample's key (the same key in
 *   every pass) and label; undefined for ids that are not training images (an error: the
 *   trainer only sees what was published)
 * @param injected injected anomalies in the training set (recall's denominator)
 */
export function rejectionMetrics(
  events: readonly TrainingEvent[],
  sampleOf: (imageId: string) => { key: string; anomalous: boolean } | undefined,
  injected: number,
  maxStep: number,
): RejectionMetrics {
  const lookup = (imageId: string) => {
    const sample = sampleOf(imageId);
    if (!sample) throw new Error(`training event names ${imageId}, which is no training image`);
    return sample;
  };
  const counted = events.filter((event) => event.step <= maxStep);
  const picks: BatchPicks[] = counted.map((event) => {
    const down = new Set(event.downWeighted);
    return {
      injected: event.batch.map((id) => lookup(id).anomalous),
      outliers: event.batch.flatMap((id, index) => (down.has(id) ? [index] : [])),
    };
  });
  const downWeight = countOutlierPicks(picks);
  const precision = outlierPrecision(downWeight);

  // Each published Image-Id is rejected at most once (it leaves the buffer); a training image
  // replayed in a later pass has a new id, so distinct images are counted by sample key.
  const rejectedIds = counted.flatMap((event) => event.rejected ?? []);
  const anomalousKey = new Map(rejectedIds.map((id) => [lookup(id).key, lookup(id).anomalous]));
  const decisions = rejectionQuality([], rejectedIds, (id) => lookup(id).anomalous);
  const distinct = rejectionQuality([], anomalousKey.keys(), (key) => anomalousKey.get(key)!);
  return {
    events: counted.length,
    downWeight,
    downWeightPrecision: precision.precision,
    downWeightRecall: precision.recall,
    downWeightChance: precision.chance,
    hygiene: {
      rejected: decisions.rejected,
      rejectedAnomalous: decisions.truePositives,
      distinctRejected: distinct.rejected,
      distinctAnomalousRejected: distinct.truePositives,
      injected,
      precision: decisions.precision,
      recall: injected > 0 ? distinct.truePositives / injected : null,
    },
  };
}

/** Pooled/averaged results of the live runs sharing one (ratio, variant). */
export interface StreamMeanRow {
  /** Noise ratio. */
  ratio: number;
  /** Training variant. */
  variant: VariantName;
  /** Live runs averaged (classes × repeats). */
  runs: number;
  /** Distinct classes among them. */
  classes: number;
  /** Mean live AUROC. */
  liveAuroc: number;
  /** Mean offline AUROC. */
  offlineAuroc: number;
  /** Mean of `live − offline`. */
  gap: number;
  /** Largest `|live − offline|` of the runs. */
  maxAbsGap: number;
  /**
   * Largest spread (max − min) of live AUROC among the repeats of one class: the live run's
   * own noise, against which the gap is read; null with a single run per class.
   */
  liveSpread: number | null;
  /** Live down-weighting precision/recall, pooled over the runs' batch appearances. */
  downWeightPrecision: number | null;
  /** See {@link downWeightPrecision}. */
  downWeightRecall: number | null;
  /** The offline jobs' down-weighting precision/recall, pooled the same way. */
  offlineDownWeightPrecision: number | null;
  /** See {@link offlineDownWeightPrecision}. */
  offlineDownWeightRecall: number | null;
  /** Hygiene-rejection precision pooled over the runs' rejection decisions. */
  rejectionPrecision: number | null;
  /** Distinct injected anomalies rejected / injected, pooled over the runs. */
  rejectionRecall: number | null;
  /** Mean training steps of the versions that scored the test sets. */
  modelStep: number;
  /** Mean live seconds. */
  liveSeconds: number;
}

/** One {@link StreamMeanRow} per (ratio, variant) present in `results`, ratios ascending. */
export function meanRows(results: readonly StreamCellResult[]): StreamMeanRow[] {
  const groups = new Map<string, StreamCellResult[]>();
  const ordered = [...results].sort((a, b) => a.ratio - b.ratio);
  for (const result of ordered) {
    const key = `${result.ratio}|${result.variant}`;
    groups.set(key, [...(groups.get(key) ?? []), result]);
  }
  return [...groups.values()].map((runs) => {
    const mean = (f: (r: StreamCellResult) => number) =>
      runs.reduce((sum, r) => sum + f(r), 0) / runs.length;
    const live = outlierPrecision(addOutlierCounts(runs.map((r) => r.live.downWeight)));
    const offlineCounts = runs.flatMap((r) => r.offlineDownWeight ? [r.offlineDownWeight] : []);
    const offline = offlineCounts.length
      ? outlierPrecision(addOutlierCounts(offlineCounts))
      : { precision: null, recall: null };
    const sum = (f: (h: HygieneRejection) => number) =>
      runs.reduce((total, r) => total + f(r.live.hygiene), 0);
    const byClass = new Map<number, number[]>();
    for (const r of runs) {
      byClass.set(r.normalClass, [...(byClass.get(r.normalClass) ?? []), r.liveAuroc]);
    }
    const spreads = [...byClass.values()].filter((a) => a.length > 1)
      .map((a) => Math.max(...a) - Math.min(...a));
    const rejected = sum((h) => h.rejected);
    const injected = sum((h) => h.injected);
    return {
      ratio: runs[0].ratio,
      variant: runs[0].variant,
      runs: runs.length,
      classes: byClass.size,
      liveAuroc: mean((r) => r.liveAuroc),
      offlineAuroc: mean((r) => r.offlineAuroc),
      gap: mean((r) => r.gap),
      maxAbsGap: Math.max(...runs.map((r) => Math.abs(r.gap))),
      liveSpread: spreads.length ? Math.max(...spreads) : null,
      downWeightPrecision: live.precision,
      downWeightRecall: live.recall,
      offlineDownWeightPrecision: offline.precision,
      offlineDownWeightRecall: offline.recall,
      rejectionPrecision: rejected > 0 ? sum((h) => h.rejectedAnomalous) / rejected : null,
      rejectionRecall: injected > 0 ? sum((h) => h.distinctAnomalousRejected) / injected : null,
      modelStep: mean((r) => r.modelStep),
      liveSeconds: mean((r) => r.seconds.live),
    };
  });
}

/** The results table: one row per live run, then one mean row per (ratio, variant). */
export function streamTable(results: readonly StreamCellResult[]): Table {
  const rows = results.map((r) => [
    r.repeat > 1 ? `${r.normalClass} #${r.repeat}` : String(r.normalClass),
    String(r.ratio),
    r.variant,
    fixed(r.liveAuroc),
    fixed(r.offlineAuroc),
    signed(r.gap),
    fixed(r.live.downWeightPrecision),
    fixed(r.live.downWeightRecall),
    fixed(r.live.hygiene.precision),
    fixed(r.live.hygiene.recall),
    String(r.modelStep),
    r.seconds.live.toFixed(0),
  ]);
  const means = meanRows(results).map((m) => [
    `mean (${m.runs})`,
    String(m.ratio),
    m.variant,
    fixed(m.liveAuroc),
    fixed(m.offlineAuroc),
    signed(m.gap),
    fixed(m.downWeightPrecision),
    fixed(m.downWeightRecall),
    fixed(m.rejectionPrecision),
    fixed(m.rejectionRecall),
    m.modelStep.toFixed(0),
    m.liveSeconds.toFixed(0),
  ]);
  return {
    headers: [
      "class",
      "ratio",
      "variant",
      "live AUROC",
      "offline AUROC",
      "live − offline",
      "down-weight P",
      "down-weight R",
      "rejection P",
      "rejection R",
      "steps",
      "seconds",
    ],
    rows: [...rows, ...means],
    align: ["left", "right", "left", ...Array(9).fill("right")],
  };
}

/**
 * Per (ratio, variant): the largest gap, the live runs' own spread, and ATDR down-weighting
 * live against offline, pooled over classes.
 */
export function downWeightTable(results: readonly StreamCellResult[]): Table {
  return {
    headers: [
      "ratio",
      "variant",
      "runs",
      "max |live − offline|",
      "live spread",
      "live P",
      "offline P",
      "live R",
      "offline R",
    ],
    rows: meanRows(results).map((m) => [
      String(m.ratio),
      m.variant,
      String(m.runs),
      fixed(m.maxAbsGap),
      fixed(m.liveSpread),
      fixed(m.downWeightPrecision),
      fixed(m.offlineDownWeightPrecision),
      fixed(m.downWeightRecall),
      fixed(m.offlineDownWeightRecall),
    ]),
    align: ["right", "left", ...Array(7).fill("right")],
  };
}
