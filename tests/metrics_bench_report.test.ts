import { strict as assert } from "node:assert";
import {
  fixed,
  lineChartSvg,
  markdownTable,
  niceRange,
  signed,
  svgToPng,
  textTable,
} from "../bench/report.ts";
import {
  ablationTable,
  type AccuracyGrid,
  atdrPrecisions,
  perClassTable,
  pollutionLossTable,
  rejectionSummaries,
  rejectionTable,
  summarise,
} from "../bench/accuracy_summary.ts";
import { ACCURACY_VARIANTS, type VariantName } from "../bench/accuracy_variants.ts";
import type { AccuracyJobResult } from "../bench/accuracy_job.ts";
import { parsePeerLine } from "../bench/torch_peer.ts";
import { median, timeAdaptive } from "../bench/timing.ts";
import { memoryVerdict } from "../bench/speed.ts";

Deno.test("tables render aligned text and escaped markdown", () => {
  const table = { headers: ["name", "value"], rows: [["a|b", "1.5"], ["longer", "10"]] };
  assert.equal(textTable(table), "name    value\n------  -----\na|b       1.5\nlonger     10");
  assert.equal(
    markdownTable(table),
    "| name | value |\n|:---|---:|\n| a\\|b | 1.5 |\n| longer | 10 |",
  );
  assert.throws(() => markdownTable({ headers: ["x"], rows: [["1", "2"]] }), /row 0 has 2 cells/);
  assert.equal(fixed(0.12345), "0.123");
  assert.equal(fixed(null), "—");
  assert.equal(signed(0.0124), "+0.012");
  assert.equal(signed(-0.004), "-0.004");
});

Deno.test("line chart: one polyline per unbroken run, a marker per value, legend per series", async () => {
  const svg = lineChartSvg({
    title: "t <&>",
    xLabel: "x",
    yLabel: "y",
    x: [0, 1, 2, 3],
    series: [
      { name: "a", color: "red", values: [0.5, 0.6, null, 0.7] },
      { name: "b", color: "blue", values: [0.4, 0.45, 0.5, 0.55] },
    ],
  });
  assert.equal(svg.match(/<polyline /g)?.length, 2, "series a's lone last point draws no line");
  assert.equal(svg.match(/<circle /g)?.length, 7);
  assert.ok(svg.includes("t &lt;&amp;&gt;"), "title is escaped");
  assert.throws(
    () =>
      lineChartSvg({
        title: "",
        xLabel: "",
        yLabel: "",
        x: [0, 1],
        series: [{ name: "c", color: "k", values: [1] }],
      }),
    /has 1 values for 2 x values/,
  );
  const path = await Deno.makeTempFile({ suffix: ".png" });
  try {
    await svgToPng(svg, path);
    const bytes = await Deno.readFile(path);
    assert.deepEqual([...bytes.subarray(1, 4)], [0x50, 0x4e, 0x47], "a PNG file");
  } finally {
    await Deno.remove(path);
  }
});

Deno.test("niceRange widens to tidy ticks and gives a flat range some height", () => {
  assert.deepEqual(niceRange([0.62, 0.91]), [0.6, 0.95]);
  const [lo, hi] = niceRange([0.8, 0.8]);
  assert.ok(lo < 0.8 && hi > 0.8);
});

function result(
  normalClass: number,
  ratio: number,
  variant: VariantName,
  auroc: number,
  picks?: [number, number, number, number],
): AccuracyJobResult {
  return {
    normalClass,
    ratio,
    variant,
    auroc,
    injected: 0,
    trainSize: 10,
    testSize: 10,
    atdrPicks: picks
      ? {
        picks: picks[0],
        injectedPicks: picks[1],
        expectedInjectedPicks: picks[2],
        injectedAppearances: picks[3],
      }
      : null,
    defectRate: null,
    rejection: null,
    finalLoss: 1,
    stepMs: 1,
    seconds: { setup: 0, train: 0, score: 0 },
  };
}

Deno.test("accuracy summary: means, gaps, missing jobs, pollution loss, pooled ATDR precision/recall", () => {
  const grid: AccuracyGrid = {
    classes: [3, 5],
    ratios: [0, 0.2],
    variants: ["baseline", "ad2", "robust"],
  };
  const results = [
    result(3, 0, "baseline", 0.9),
    result(5, 0, "baseline", 0.7),
    result(3, 0, "ad2", 0.92, [10, 0, 0, 0]), // picks, but nothing injected to find
    result(5, 0, "ad2", 0.66, [10, 0, 0, 0]),
    result(3, 0, "robust", 0.9, [12, 0, 0, 0]),
    result(5, 0, "robust", 0.69, [12, 0, 0, 0]),
    result(3, 0.2, "baseline", 0.6),
    // class 5, ratio 0.2, baseline failed: no result
    result(3, 0.2, "ad2", 0.75, [10, 4, 2, 16]),
    result(5, 0.2, "ad2", 0.7, [10, 2, 2, 14]),
    result(3, 0.2, "robust", 0.86, [20, 9, 4, 16]),
    result(5, 0.2, "robust", 0.66, [20, 9, 4, 14]),
  ];
  const summary = summarise(results, grid);
  assert.equal(summary.length, 6);
  const at = (ratio: number, variant: VariantName) =>
    summary.find((s) => s.ratio === ratio && s.variant === variant)!;
  assert.ok(Math.abs(at(0, "baseline").mean! - 0.8) < 1e-12);
  assert.deepEqual(at(0.2, "baseline").perClass, [0.6, null]);
  assert.equal(at(0.2, "baseline").mean, 0.6, "mean over the classes that ran");

  const table = perClassTable(summary, grid);
  assert.deepEqual(table.headers, ["noise ratio", "variant", "dress", "sandal", "mean"]);
  const ad2Gap = "Gap ↑ (AD² (paper) − baseline (EfficientAD))";
  const robustGap = `Gap ↑ (${ACCURACY_VARIANTS.robust.label} − AD² (paper))`;
  assert.deepEqual(table.rows[3], ["", ad2Gap, "+0.020", "-0.040", "-0.010"]);
  assert.deepEqual(table.rows[4], ["", robustGap, "-0.020", "+0.030", "+0.005"]);
  assert.deepEqual(table.rows[8], ["", ad2Gap, "+0.150", "—", "+0.125"]);
  assert.deepEqual(table.rows[9], ["", robustGap, "+0.110", "-0.040", "+0.035"]);
  const ablation = ablationTable(summary, grid);
  assert.deepEqual(ablation.rows[1], ["✓", "✓", "AD² (paper)", "0.790", "0.725"]);
  assert.deepEqual(ablation.rows[2].slice(0, 2), ["+", "+"], "beyond the paper's switches");

  // Loss from r = 0 over the classes with both ratios; cost at r = 0 against the baseline.
  const loss = pollutionLossTable(results, grid);
  assert.deepEqual(loss.headers, [
    "variant",
    "r = 0.0 − baseline",
    "r = 0.0 − AD²",
    "loss at r = 0.2",
  ]);
  assert.deepEqual(loss.rows[0], ["baseline (EfficientAD)", "+0.000", "+0.010", "0.300"]);
  assert.deepEqual(loss.rows[1], ["AD² (paper)", "-0.010", "+0.000", "0.065"]); // (0.17 − 0.04) / 2
  assert.deepEqual(loss.rows[2], [ACCURACY_VARIANTS.robust.label, "-0.005", "+0.005", "0.035"]);

  const precision = atdrPrecisions(results, grid);
  assert.equal(precision.length, 2, "r = 0 has nothing injected; baseline never picks");
  assert.equal(precision[0].variant, "ad2");
  assert.equal(precision[0].picks, 20);
  assert.equal(precision[0].precision, 6 / 20);
  assert.equal(precision[0].chance, 4 / 20);
  assert.equal(precision[0].recall, 6 / 30);
  assert.equal(precision[1].recall, 18 / 30);
});

Deno.test("hygiene rejections pool over classes into precision and recall per ratio", () => {
  const grid: AccuracyGrid = { classes: [0, 1], ratios: [0, 0.1], variants: ["ad2", "robust"] };
  const withRejection = (
    normalClass: number,
    ratio: number,
    rejected: number,
    truePositives: number,
    anomaliesSeen: number,
  ): AccuracyJobResult => ({
    ...result(normalClass, ratio, "robust", 0.8),
    rejection: { rejected, truePositives, anomaliesSeen, precision: null, recall: null },
  });
  const summaries = rejectionSummaries([
    result(0, 0.1, "ad2", 0.8), // no hygiene: no row
    withRejection(0, 0, 3, 0, 0),
    withRejection(1, 0, 1, 0, 0),
    withRejection(0, 0.1, 10, 6, 20),
    withRejection(1, 0.1, 10, 9, 20),
  ], grid);
  assert.deepEqual(summaries.map((s) => [s.ratio, s.variant]), [[0, "robust"], [0.1, "robust"]]);
  assert.deepEqual(
    [summaries[0].rejected, summaries[0].precision, summaries[0].recall],
    [4, 0, null],
    "a clean line: every rejection is a false one; no recall",
  );
  assert.equal(summaries[1].precision, 15 / 20);
  assert.equal(summaries[1].recall, 15 / 40);
  assert.deepEqual(rejectionTable(summaries).rows[1].slice(2), ["20", "15", "0.750", "0.375"]);
});

Deno.test("PyTorch peer output is parsed, anything else is not", () => {
  assert.deepEqual(
    parsePeerLine("torch1.13.0a0 threads=1 train small size=128 batch=8 median=3347 ms\n"),
    { torch: "1.13.0a0", threads: 1, medianMs: 3347 },
  );
  assert.equal(parsePeerLine("Traceback (most recent call last):"), undefined);
});

Deno.test("timeAdaptive: one timed call on a zero budget, at most maxCalls otherwise", () => {
  let calls = 0;
  const once = timeAdaptive(() => void calls++, { maxCalls: 5, budgetMs: 0 });
  assert.equal(calls, 2, "first call + one timed call");
  assert.equal(once.samplesMs.length, 1);
  calls = 0;
  const many = timeAdaptive(() => void calls++, { maxCalls: 4, budgetMs: 60_000 });
  assert.equal(calls, 5);
  assert.equal(many.samplesMs.length, 4);
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 2, 3]), 2.5);
});

Deno.test("memory verdict: flat needs no tensor or wasm growth and no new RSS high", () => {
  const sample = (imagesScored: number, rssMiB: number, numTensors = 205, wasm = 83) => ({
    imagesScored,
    rssMiB,
    numTensors,
    wasmMemoryMiB: wasm,
    jsHeapMiB: 0,
    tensorMiB: 0,
    seconds: 0,
  });
  // Saw-toothed RSS (garbage collection) whose second-half high is 30 MiB above the first's.
  const sawTooth = [
    sample(8, 200),
    sample(1000, 260),
    sample(3000, 330),
    sample(5000, 300),
    sample(7000, 360),
    sample(10000, 310),
  ];
  assert.deepEqual(memoryVerdict(sawTooth, 10000), {
    tensorGrowth: 0,
    wasmGrowthMiB: 0,
    rssNewHighMiB: 30,
    flat: true,
  });
  const leakingTensors = [...sawTooth.slice(0, -1), sample(10000, 310, 206)];
  assert.equal(memoryVerdict(leakingTensors, 10000).flat, false);
  const growingWasm = [...sawTooth.slice(0, -1), sample(10000, 310, 205, 99)];
  assert.equal(memoryVerdict(growingWasm, 10000).wasmGrowthMiB, 16);
  assert.equal(memoryVerdict(growingWasm, 10000).flat, false);
  const climbingRss = sawTooth.map((s) => ({ ...s, rssMiB: 200 + s.imagesScored / 50 }));
  assert.equal(memoryVerdict(climbingRss, 10000).rssNewHighMiB, 100);
  assert.equal(memoryVerdict(climbingRss, 10000).flat, false);
  assert.throws(() => memoryVerdict([], 10), /at least one sample/);
});
