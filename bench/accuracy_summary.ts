/**
 * Turning accuracy-job results into the paper's views: mean AUROC per (ratio, method), the
 * per-class table with the AD² − baseline gap (paper Table 4), the NMFE/ATDR ablation
 * (paper Table 3, one column per noise ratio), ATDR's outlier precision, and the chart.
 *
 * @module
 */
import type { Method } from "../src/config/schema.ts";
import { FASHION_MNIST_CLASSES } from "../src/data/fashion_mnist.ts";
import {
  addOutlierCounts,
  type OutlierCounts,
  type OutlierPrecision,
  outlierPrecision,
} from "../src/metrics/outliers.ts";
import type { AccuracyJobResult } from "./accuracy_job.ts";
import { fixed, type LineChart, signed, type Table } from "./report.ts";

/** Mean and per-class AUROC of one method at one ratio. */
export interface MethodRatioSummary {
  /** Noise ratio. */
  ratio: number;
  /** Method. */
  method: Method;
  /** AUROC per class (in the run's class order); `null` where the job failed. */
  perClass: (number | null)[];
  /** Mean over the classes that have a value; `null` when none has. */
  mean: number | null;
}

/** ATDR's outlier precision pooled over the classes at one ratio. */
export interface AtdrPrecisionSummary extends OutlierPrecision, OutlierCounts {
  /** Noise ratio. */
  ratio: number;
  /** `atdr` or `ad2`. */
  method: Method;
}

/** The grid a run covered. */
export interface AccuracyGrid {
  /** Normal classes, in order. */
  classes: number[];
  /** Noise ratios, ascending. */
  ratios: number[];
  /** Methods, in order. */
  methods: Method[];
}

/** Paper Table 3's switches per method. */
const SWITCHES: Record<Method, { nmfe: boolean; atdr: boolean }> = {
  baseline: { nmfe: false, atdr: false },
  nmfe: { nmfe: true, atdr: false },
  atdr: { nmfe: false, atdr: true },
  ad2: { nmfe: true, atdr: true },
};

/** Display names (the paper calls the baseline EfficientAD). */
export const METHOD_LABELS: Record<Method, string> = {
  baseline: "baseline (EfficientAD)",
  nmfe: "NMFE only",
  atdr: "ATDR only",
  ad2: "AD²",
};

const METHOD_COLORS: Record<Method, string> = {
  baseline: "#555555",
  nmfe: "#1f77b4",
  atdr: "#ff7f0e",
  ad2: "#d62728",
};

/** Mean and per-class AUROC for every (ratio, method) of the grid. */
export function summarise(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): MethodRatioSummary[] {
  return grid.ratios.flatMap((ratio) =>
    grid.methods.map((method) => {
      const perClass = grid.classes.map((normalClass) =>
        results.find((r) =>
          r.ratio === ratio && r.method === method && r.normalClass === normalClass
        )?.auroc ?? null
      );
      return { ratio, method, perClass, mean: meanOf(perClass) };
    })
  );
}

/**
 * ATDR precision per (ratio, ATDR method), pooled over classes; skipped where nothing was picked
 * or no batch held an injected anomaly (r = 0).
 */
export function atdrPrecisions(
  results: readonly AccuracyJobResult[],
  grid: AccuracyGrid,
): AtdrPrecisionSummary[] {
  const out: AtdrPrecisionSummary[] = [];
  for (const ratio of grid.ratios) {
    for (const method of grid.methods.filter((m) => SWITCHES[m].atdr)) {
      const counts = addOutlierCounts(
        results.filter((r) => r.ratio === ratio && r.method === method && r.atdrPicks)
          .map((r) => r.atdrPicks!),
      );
      // Without injected anomalies in the batches (r = 0) precision is 0 by construction.
      if (counts.picks > 0 && counts.expectedInjectedPicks > 0) {
        out.push({ ratio, method, ...counts, ...outlierPrecision(counts) });
      }
    }
  }
  return out;
}

/**
 * Paper Table 4's layout for every method: per ratio one row per method and a "Gap ↑" row
 * (AD² − baseline, when both ran); columns are the classes and their mean.
 */
export function perClassTable(summary: readonly MethodRatioSummary[], grid: AccuracyGrid): Table {
  const headers = [
    "noise ratio",
    "method",
    ...grid.classes.map((c) => FASHION_MNIST_CLASSES[c]),
    "mean",
  ];
  const rows: string[][] = [];
  for (const ratio of grid.ratios) {
    const at = summary.filter((s) => s.ratio === ratio);
    at.forEach((s, i) =>
      rows.push([
        i === 0 ? ratio.toFixed(1) : "",
        METHOD_LABELS[s.method],
        ...s.perClass.map((v) => fixed(v)),
        fixed(s.mean),
      ])
    );
    const base = at.find((s) => s.method === "baseline");
    const ad2 = at.find((s) => s.method === "ad2");
    if (base && ad2) {
      rows.push([
        "",
        "Gap ↑ (AD² − baseline)",
        ...base.perClass.map((b, i) => signed(difference(ad2.perClass[i], b))),
        signed(difference(ad2.mean, base.mean)),
      ]);
    }
  }
  return { headers, rows, align: headers.map((_, i) => (i < 2 ? "left" : "right")) };
}

/** Paper Table 3's layout: NMFE/ATDR switches per row, mean AUROC per noise ratio. */
export function ablationTable(summary: readonly MethodRatioSummary[], grid: AccuracyGrid): Table {
  const headers = ["NMFE", "ATDR", "method", ...grid.ratios.map((r) => `r = ${r.toFixed(1)}`)];
  const rows = grid.methods.map((method) => [
    SWITCHES[method].nmfe ? "✓" : "−",
    SWITCHES[method].atdr ? "✓" : "−",
    METHOD_LABELS[method],
    ...grid.ratios.map((ratio) =>
      fixed(summary.find((s) => s.ratio === ratio && s.method === method)?.mean)
    ),
  ]);
  return { headers, rows, align: headers.map((_, i) => (i < 3 ? "left" : "right")) };
}

/** ATDR precision table: per ratio and method, picks, precision, chance and lift. */
export function precisionTable(precisions: readonly AtdrPrecisionSummary[]): Table {
  return {
    headers: [
      "noise ratio",
      "method",
      "picks",
      "injected picks",
      "precision",
      "chance",
      "lift",
    ],
    rows: precisions.map((p) => [
      p.ratio.toFixed(1),
      METHOD_LABELS[p.method],
      String(p.picks),
      String(p.injectedPicks),
      fixed(p.precision),
      fixed(p.chance),
      p.lift === null ? "—" : `${p.lift.toFixed(2)}×`,
    ]),
    align: ["left", "left", "right", "right", "right", "right", "right"],
  };
}

/** Mean AUROC against noise ratio, one line per method. */
export function aurocChart(
  summary: readonly MethodRatioSummary[],
  grid: AccuracyGrid,
  title: string,
): LineChart {
  return {
    title,
    xLabel: "noise ratio r (injected anomalies / clean training images)",
    yLabel: "mean image AUROC",
    x: grid.ratios,
    series: grid.methods.map((method) => ({
      name: METHOD_LABELS[method],
      color: METHOD_COLORS[method],
      dashed: method === "nmfe" || method === "atdr",
      values: grid.ratios.map((ratio) =>
        summary.find((s) => s.ratio === ratio && s.method === method)?.mean ?? null
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
