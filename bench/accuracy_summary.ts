/**
 * Turning accuracy-job results into the paper's views: mean AUROC per (ratio, variant), the
 * per-class table with the AD² − baseline gap (paper Table 4), the NMFE/ATDR ablation
 * (paper Table 3, one column per noise ratio), the AUROC lost to pollution per variant,
 * ATDR's outlier precision and recall, and the chart.
 *
 * @module
 */
import { FASHION_MNIST_CLASSES } from "../src/data/fashion_mnist.ts";
import {
  addOutlierCounts,
  type OutlierCounts,
  type OutlierPrecision,
  outlierPrecision,
} from "../src/metrics/outliers.ts";
import type { AccuracyJobResult } from "./accuracy_job.ts";
import { ACCURACY_VARIANTS, usesAtdr, type VariantName } from "./accuracy_variants.ts";
import { fixed, type LineChart, signed, type Table } from "./report.ts";

/** Mean and per-class AUROC of one variant at one ratio. */
export interface VariantRatioSummary {
  /** Noise ratio. */
  ratio: number;
  /** Training variant. */
  variant: VariantName;
  /** AUROC per class (in the run's class order); `null` where the job failed. */
  perClass: (number | null)[];
  /** Mean over the classes that have a value; `null` when none has. */
  mean: number | null;
}

/** ATDR's outlier precision pooled over the classes at one ratio. */
export interface AtdrPrecisionSummary extends OutlierPrecision, OutlierCounts {
  /** Noise ratio. */
  ratio: number;
  /** A variant that uses ATDR. */
  variant: VariantName;
}

/** Training-set hygiene's rejections pooled over the classes at one ratio. */
export interface RejectionSummary {
  /** Noise ratio. */
  ratio: number;
  /** A variant with hygiene. */
  variant: VariantName;
  /** Distinct images rejected, summed over classes. */
  rejected: number;
  /** Of those, injected anomalies. */
  truePositives: number;
  /** Injected anomalies in the training sets. */
  anomalies: number;
  /** truePositives / rejected; null when nothing was rejected. */
  precision: number | null;
  /** truePositives / anomalies; null without anomalies (r = 0). */
  recall: number | null;
}

/** The grid a run covered. */
export interface AccuracyGrid {
  /** Normal classes, in order. */
  classes: number[];
  /** Noise ratios, ascending. */
  ratios: number[];
  /** Training variants, in order. */
  variants: VariantName[];
}

/** Mean and per-class AUROC for every (ratio, variant) of the grid. */
export function summarise(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): VariantRatioSummary[] {
  return grid.ratios.flatMap((ratio) =>
    grid.variants.map((variant) => {
      const perClass = grid.classes.map((normalClass) =>
        results.find((r) =>
          r.ratio === ratio && r.variant === variant && r.normalClass === normalClass
        )?.auroc ?? null
      );
      return { ratio, variant, perClass, mean: meanOf(perClass) };
    })
  );
}

/**
 * ATDR precision and recall per (ratio, ATDR variant), pooled over classes; skipped where
 * nothing was picked or no batch held an injected anomaly (r = 0).
 */
export function atdrPrecisions(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): AtdrPrecisionSummary[] {
  const out: AtdrPrecisionSummary[] = [];
  for (const ratio of grid.ratios) {
    for (const variant of grid.variants.filter(usesAtdr)) {
      const counts = addOutlierCounts(
        results.filter((r) => r.ratio === ratio && r.variant === variant && r.atdrPicks)
          .map((r) => r.atdrPicks!),
      );
      // Without injected anomalies in the batches (r = 0) precision is 0 by construction.
      if (counts.picks > 0 && counts.expectedInjectedPicks > 0) {
        out.push({ ratio, variant, ...counts, ...outlierPrecision(counts) });
      }
    }
  }
  return out;
}

/** Hygiene rejections per (ratio, variant with hygiene), pooled over classes. */
export function rejectionSummaries(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): RejectionSummary[] {
  const out: RejectionSummary[] = [];
  for (const ratio of grid.ratios) {
    for (const variant of grid.variants) {
      const parts = results.filter((r) => r.ratio === ratio && r.variant === variant && r.rejection)
        .map((r) => r.rejection!);
      if (parts.length === 0) continue;
      const rejected = parts.reduce((n, p) => n + p.rejected, 0);
      const truePositives = parts.reduce((n, p) => n + p.truePositives, 0);
      const anomalies = parts.reduce((n, p) => n + p.anomaliesSeen, 0);
      out.push({
        ratio,
        variant,
        rejected,
        truePositives,
        anomalies,
        precision: rejected > 0 ? truePositives / rejected : null,
        recall: anomalies > 0 ? truePositives / anomalies : null,
      });
    }
  }
  return out;
}

/** Hygiene table: per ratio and variant, images rejected, precision and recall. */
export function rejectionTable(summaries: readonly RejectionSummary[]): Table {
  return {
    headers: ["noise ratio", "variant", "rejected", "of them injected", "precision", "recall"],
    rows: summaries.map((s) => [
      s.ratio.toFixed(1),
      ACCURACY_VARIANTS[s.variant].label,
      String(s.rejected),
      String(s.truePositives),
      fixed(s.precision),
      fixed(s.recall),
    ]),
    align: ["left", "left", "right", "right", "right", "right"],
  };
}

/**
 * Paper Table 4's layout for every variant: per ratio one row per variant and "Gap ↑" rows
 * (AD² − baseline, and each variant beyond the paper − AD², when both ran); columns are the
 * classes and their mean.
 */
export function perClassTable(summary: readonly VariantRatioSummary[], grid: AccuracyGrid): Table {
  const headers = [
    "noise ratio",
    "variant",
    ...grid.classes.map((c) => FASHION_MNIST_CLASSES[c]),
    "mean",
  ];
  const rows: string[][] = [];
  for (const ratio of grid.ratios) {
    const at = summary.filter((s) => s.ratio === ratio);
    at.forEach((s, i) =>
      rows.push([
        i === 0 ? ratio.toFixed(1) : "",
        ACCURACY_VARIANTS[s.variant].label,
        ...s.perClass.map((v) => fixed(v)),
        fixed(s.mean),
      ])
    );
    const gap = (to: VariantRatioSummary | undefined, from: VariantRatioSummary | undefined) => {
      if (!to || !from) return;
      rows.push([
        "",
        `Gap ↑ (${ACCURACY_VARIANTS[to.variant].label} − ${ACCURACY_VARIANTS[from.variant].label})`,
        ...from.perClass.map((b, i) => signed(difference(to.perClass[i], b))),
        signed(difference(to.mean, from.mean)),
      ]);
    };
    const ad2 = at.find((s) => s.variant === "ad2");
    gap(ad2, at.find((s) => s.variant === "baseline"));
    for (const beyond of at.filter((s) => ACCURACY_VARIANTS[s.variant].switches === null)) {
      gap(beyond, ad2);
    }
  }
  return { headers, rows, align: headers.map((_, i) => (i < 2 ? "left" : "right")) };
}

/**
 * Paper Table 3's layout: NMFE/ATDR switches per row, mean AUROC per noise ratio; variants
 * beyond the paper follow with "+" in both switch columns.
 */
export function ablationTable(summary: readonly VariantRatioSummary[], grid: AccuracyGrid): Table {
  const headers = ["NMFE", "ATDR", "variant", ...grid.ratios.map((r) => `r = ${r.toFixed(1)}`)];
  const mark = (on: boolean | undefined) => on === undefined ? "+" : on ? "✓" : "−";
  const rows = grid.variants.map((variant) => [
    mark(ACCURACY_VARIANTS[variant].switches?.nmfe),
    mark(ACCURACY_VARIANTS[variant].switches?.atdr),
    ACCURACY_VARIANTS[variant].label,
    ...grid.ratios.map((ratio) =>
      fixed(summary.find((s) => s.ratio === ratio && s.variant === variant)?.mean)
    ),
  ]);
  return { headers, rows, align: headers.map((_, i) => (i < 3 ? "left" : "right")) };
}

/**
 * AUROC lost to pollution: per variant, mean AUROC at r = 0 minus the mean at each other ratio,
 * over the classes that have both (issue 6's goals: ≤ 0.02 at r = 0.1, ≤ 0.05 at r = 0.3), and
 * the cost at r = 0 against the baseline and against the paper's AD².
 */
export function pollutionLossTable(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): Table {
  const others = grid.ratios.filter((r) => r !== 0);
  const headers = [
    "variant",
    "r = 0.0 − baseline",
    "r = 0.0 − AD²",
    ...others.map((r) => `loss at r = ${r.toFixed(1)}`),
  ];
  const auroc = (variant: VariantName, ratio: number, normalClass: number) =>
    results.find((r) => r.variant === variant && r.ratio === ratio && r.normalClass === normalClass)
      ?.auroc ?? null;
  /** Mean of a − b over the classes where both exist. */
  const meanDifference = (a: (c: number) => number | null, b: (c: number) => number | null) =>
    meanOf(grid.classes.map((c) => difference(a(c), b(c))));
  const rows = grid.variants.map((variant) => [
    ACCURACY_VARIANTS[variant].label,
    signed(meanDifference((c) => auroc(variant, 0, c), (c) => auroc("baseline", 0, c))),
    signed(meanDifference((c) => auroc(variant, 0, c), (c) => auroc("ad2", 0, c))),
    ...others.map((ratio) =>
      fixed(meanDifference((c) => auroc(variant, 0, c), (c) => auroc(variant, ratio, c)))
    ),
  ]);
  return { headers, rows, align: headers.map((_, i) => (i === 0 ? "left" : "right")) };
}

/** ATDR table: per ratio and variant, picks, precision, chance, lift and recall. */
export function precisionTable(precisions: readonly AtdrPrecisionSummary[]): Table {
  return {
    headers: [
      "noise ratio",
      "variant",
      "picks",
      "injected picks",
      "precision",
      "chance",
      "lift",
      "recall",
    ],
    rows: precisions.map((p) => [
      p.ratio.toFixed(1),
      ACCURACY_VARIANTS[p.variant].label,
      String(p.picks),
      String(p.injectedPicks),
      fixed(p.precision),
      fixed(p.chance),
      p.lift === null ? "—" : `${p.lift.toFixed(2)}×`,
      fixed(p.recall),
    ]),
    align: ["left", "left", "right", "right", "right", "right", "right", "right"],
  };
}

/** Mean AUROC against noise ratio, one line per variant. */
export function aurocChart(
  summary: readonly VariantRatioSummary[],
  grid: AccuracyGrid,
  title: string,
): LineChart {
  return {
    title,
    xLabel: "noise ratio r (injected anomalies / clean training images)",
    yLabel: "mean image AUROC",
    x: grid.ratios,
    series: grid.variants.map((variant) => ({
      name: ACCURACY_VARIANTS[variant].label,
      color: ACCURACY_VARIANTS[variant].color,
      dashed: variant === "nmfe" || variant === "atdr",
      values: grid.ratios.map((ratio) =>
        summary.find((s) => s.ratio === ratio && s.variant === variant)?.mean ?? null
      ),
    })),
  };
}

function meanOf(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
}

function difference(a: number | null, b: number | null): number | null {
  return a === null || b === null ? null : a - b;
}
