import { strict as assert } from "node:assert";
import {
  fastestBare,
  latencySummary,
  percentile,
  type PipelineBenchReport,
  pipelineMarkdown,
  pipelineTable,
  pipelineVerdicts,
  steadyThroughput,
  summarisePhase,
  throughputRatio,
} from "../bench/speed_pipeline.ts";
import type { ImageTiming } from "../bench/speed_pipeline_live.ts";
import { mergeSpeedReports, type SpeedReport } from "../bench/speed.ts";
import type { Environment } from "../bench/report.ts";

Deno.test("percentile is nearest-rank; latency summary gives p50, p99, max", () => {
  const values = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted
  assert.equal(percentile(values, 0.5), 50);
  assert.equal(percentile(values, 0.99), 99);
  assert.equal(percentile(values, 1), 100);
  assert.equal(percentile([7], 0.01), 7);
  assert.equal(percentile([], 0.5), null);
  assert.throws(() => percentile([1], 0), RangeError);
  assert.deepEqual(latencySummary([30, 10, 20]), { p50: 20, p99: 30, max: 30 });
  assert.equal(latencySummary([]), null);
});

Deno.test("steady throughput ignores the start-up and draining ends", () => {
  // 101 arrivals 100 ms apart: 10/s, whatever the trim.
  const even = Array.from({ length: 101 }, (_, i) => i * 100);
  assert.equal(steadyThroughput(even, 0), 10);
  assert.equal(steadyThroughput(even.slice().reverse()), 10);
  // A slow start (10 arrivals 1 s apart) then 91 at 10/s: trimming 10 % drops the slow part.
  const slowStart = [
    ...Array.from({ length: 10 }, (_, i) => i * 1000),
    ...Array.from({ length: 91 }, (_, i) => 10_000 + i * 100),
  ];
  assert.ok(steadyThroughput(slowStart, 0)! < 6);
  assert.equal(steadyThroughput(slowStart, 0.1), 10);
  assert.equal(steadyThroughput([5]), null);
  assert.equal(steadyThroughput([5, 5, 5]), null);
});

Deno.test("ratio to the bare model, the faster bare run being the reference", () => {
  assert.equal(
    fastestBare([
      { ok: true, backend: "wasm", imagesPerSecond: 30, medianBatchMs: 1, batches: 1, seconds: 1 },
      { ok: false, reason: "x" },
      { ok: true, backend: "wasm", imagesPerSecond: 35, medianBatchMs: 1, batches: 1, seconds: 1 },
    ]),
    35,
  );
  assert.equal(fastestBare([{ ok: false, reason: "x" }]), null);
  assert.equal(throughputRatio(45, 50), 0.9);
  assert.equal(throughputRatio(null, 50), null);
  assert.equal(throughputRatio(45, null), null);
  assert.equal(throughputRatio(45, 0), null);
});

Deno.test("a phase summary counts verdicts, rates, latency and model versions", () => {
  const timings: ImageTiming[] = Array.from({ length: 21 }, (_, i) => ({
    publishedMs: i * 10,
    arrivedMs: 1000 + i * 100,
    status: "scored",
    modelVersion: i < 10 ? 2 : 3,
  }));
  timings.push({ publishedMs: 210, arrivedMs: 3200, status: "rejected", modelVersion: null });
  timings.push({ publishedMs: 220, arrivedMs: null, status: null, modelVersion: null });
  const saturated = summarisePhase(
    {
      mode: "training",
      phase: "saturated",
      targetRate: null,
      timings,
      trainerSteps: 4,
      seconds: 3,
    },
    20,
  );
  assert.equal(saturated.published, 23);
  assert.equal(saturated.scored, 21);
  assert.deepEqual(saturated.otherVerdicts, { rejected: 1 });
  assert.equal(saturated.missing, 1);
  assert.equal(saturated.publishRate, 100); // 22 intervals over 220 ms
  assert.equal(saturated.throughput, 10);
  assert.equal(saturated.ratioToBare, 0.5);
  // Latency of image i: 1000 + 90 i ms.
  assert.deepEqual(saturated.latencyMs, { p50: 1900, p99: 2800, max: 2800 });
  assert.deepEqual(saturated.modelVersions, { first: 2, last: 3 });
  const paced = summarisePhase(
    { mode: "paused", phase: "paced", targetRate: 7, timings, trainerSteps: 0, seconds: 3 },
    20,
  );
  assert.equal(paced.ratioToBare, null);
});

function environmentStub(): Environment {
  return {
    date: "2026-01-01T00:00:00.000Z",
    deno: "2",
    tfjs: "4",
    os: "linux",
    cpu: "test CPU × 2",
    memoryGiB: 1,
    commit: "abc",
    loadAverage: [1, 1, 1],
    command: "deno task bench:speed --sections pipeline",
  };
}

function reportStub(throughput: number): PipelineBenchReport {
  const phase = (mode: "training" | "paused", ratio: number) => ({
    mode,
    phase: "saturated" as const,
    targetRate: null,
    published: 100,
    scored: 100,
    otherVerdicts: {},
    missing: 0,
    publishRate: 500,
    throughput,
    ratioToBare: ratio,
    latencyMs: { p50: 900, p99: 1800, max: 1900 },
    trainerSteps: 3,
    modelVersions: { first: 1, last: 2 },
    seconds: 5,
  });
  return {
    measured: true,
    environment: environmentStub(),
    wallSeconds: 60,
    options: {
      images: 100,
      rateFraction: 0.7,
      warmupSteps: 5,
      idleTimeoutSeconds: 60,
      bareSeconds: 20,
    },
    config: {
      file: "pipelines/demo.json",
      model: {
        backend: "wasm",
        imageSize: 64,
        teacher: { kind: "mobilenet_v2", taps: ["a"] },
        studentWidth: "tiny",
        aeLatent: 64,
        seed: 42,
      },
      scorerBatch: 8,
      trainingBatch: 8,
      publishEverySteps: 25,
      publishEverySeconds: 60,
    },
    payload: { stream: "fixtures/synthetic-line", distinct: 300, meanBytes: 2600, size: 128 },
    warmupSeconds: 12,
    bare: [
      {
        ok: true,
        backend: "wasm",
        imagesPerSecond: 40,
        medianBatchMs: 200,
        batches: 100,
        seconds: 20,
      },
      { ok: false, reason: "failed: test" },
    ],
    bareImagesPerSecond: 40,
    phases: [phase("training", 0.5), phase("paused", 0.95)],
  };
}

Deno.test("pipeline table and markdown show the ratio against the 90 % goal", () => {
  const report = reportStub(20);
  const table = pipelineTable(report);
  assert.equal(table.rows.length, 4);
  assert.deepEqual(table.rows[0].slice(3, 5), ["40.0", "reference"]);
  assert.equal(table.rows[1][3], "failed: test");
  assert.match(table.rows[2][4], /0\.50× \(below goal\)/);
  assert.match(table.rows[3][4], /0\.95× \(goal met\)/);
  const verdicts = pipelineVerdicts(report);
  assert.match(verdicts[0], /50 % of the bare model's 40\.0 → goal ≥ 90 % NOT met/);
  assert.match(verdicts[1], /95 % .* met/);
  const markdown = pipelineMarkdown(report);
  assert.match(markdown, /^## Pipeline throughput and latency/);
  assert.match(markdown, /2-core machine/);
  assert.match(pipelineMarkdown({ measured: false, reason: "not run" }), /Not measured: not run/);
});

Deno.test("a partial speed run keeps the other sections of the previous report", () => {
  const base = {
    benchmark: "speed" as const,
    options: {} as SpeedReport["options"],
    peer: [],
  };
  const previous: SpeedReport = {
    ...base,
    environment: { ...environmentStub(), date: "old" },
    entries: [{
      caseName: "default",
      backend: "wasm",
      metric: "pdnForward",
      batch: 8,
      ms: 40,
      firstCallMs: 100,
      calls: 3,
    }],
    memory: null,
    pipeline: { measured: false, reason: "not yet" },
    wallSeconds: 1800,
  };
  const fresh: SpeedReport = {
    ...base,
    environment: { ...environmentStub(), date: "new" },
    entries: [],
    memory: null,
    pipeline: reportStub(30),
    wallSeconds: 300,
  };
  const merged = mergeSpeedReports(fresh, previous, ["pipeline"]);
  assert.equal(merged.entries.length, 1);
  assert.equal(merged.environment.date, "old");
  assert.equal(merged.wallSeconds, 1800);
  assert.equal(merged.pipeline.measured, true);
  assert.equal(mergeSpeedReports(fresh, null, ["pipeline"]), fresh);
  assert.equal(
    mergeSpeedReports(fresh, previous, ["nets", "memory", "pipeline"]).entries.length,
    0,
  );
});

Deno.test("--keep-other-rows: rows measured now replace the same rows, the rest stay", () => {
  const entry = (caseName: string, metric: SpeedReport["entries"][0]["metric"], ms: number) => ({
    caseName,
    backend: "wasm" as const,
    metric,
    batch: 8,
    ms,
    firstCallMs: ms,
    calls: 1,
  });
  const options = {
    cases: [{ name: "default" }, { name: "paper" }],
    backends: ["wasm"],
  } as unknown as SpeedReport["options"];
  const previous: SpeedReport = {
    benchmark: "speed",
    options,
    peer: [{ caseName: "paper", mode: "train", timing: { ok: false, reason: "old" } }],
    environment: { ...environmentStub(), date: "old" },
    entries: [entry("default", "pdnForward", 50), entry("paper", "pdnTrainStep", NaN)],
    memory: null,
    pipeline: { measured: false, reason: "not yet" },
    wallSeconds: 1000,
  };
  const fresh: SpeedReport = {
    ...previous,
    peer: [],
    environment: { ...environmentStub(), date: "new" },
    entries: [entry("paper", "pdnTrainStep", 70_000)],
    wallSeconds: 100,
  };
  const merged = mergeSpeedReports(fresh, previous, ["nets"], true);
  assert.deepEqual(merged.entries.map((e) => [e.caseName, e.metric, e.ms]), [
    ["default", "pdnForward", 50],
    ["paper", "pdnTrainStep", 70_000],
  ]);
  assert.equal(merged.entries[0].remeasured, undefined);
  assert.match(merged.entries[1].remeasured!, /deno task bench:speed.*new/);
  assert.equal(merged.environment.date, "old", "the header is the earlier run's");
  assert.equal(merged.peer.length, 1, "peer timings not re-run stay");
});
