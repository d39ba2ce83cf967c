import { strict as assert } from "node:assert";
import type { TrainingEvent } from "../src/bus/training_event.ts";
import { NO_LOCALISATION, type Verdict } from "../src/bus/verdict.ts";
import { HygieneSchema, TrainingSchema } from "../src/config/schema.ts";
import { DEFAULT_ACCURACY_CONFIG } from "../bench/accuracy.ts";
import { ACCURACY_VARIANTS } from "../bench/accuracy_variants.ts";
import { parseStreamArgs } from "../bench/stream.ts";
import {
  STREAM_LINE,
  streamPipelineConfig,
  testImageId,
  trainImageId,
  trainSampleOf,
} from "../bench/stream_live.ts";
import {
  liveTestAuroc,
  meanRows,
  rejectionMetrics,
  type StreamCellResult,
  streamTable,
  testScores,
} from "../bench/stream_summary.ts";

Deno.test("stream args: defaults follow the issue and the offline benchmark", () => {
  const args = parseStreamArgs([]);
  assert.deepEqual(args.grid, { classes: [0, 7], ratios: [0.1, 0.3], variants: ["ad2", "robust"] });
  assert.deepEqual(args.config, DEFAULT_ACCURACY_CONFIG);
  assert.equal(args.name, "stream");
  assert.equal(args.repeats, 1);
  assert.equal(args.help, false);
});

Deno.test("stream args: overrides, sorting and errors", () => {
  const args = parseStreamArgs([
    "--classes=3",
    "--ratios=0.3,0.1",
    "--variants=baseline,ad2",
    "--steps=20",
    "--train-count=40",
    "--name=stream-dev",
    "--repeats=3",
  ]);
  assert.equal(args.repeats, 3);
  assert.deepEqual(args.grid, { classes: [3], ratios: [0.1, 0.3], variants: ["baseline", "ad2"] });
  assert.equal(args.config.steps, 20);
  assert.equal(args.config.trainCount, 40);
  assert.equal(args.config.testCount, DEFAULT_ACCURACY_CONFIG.testCount);
  assert.equal(parseStreamArgs(["--help"]).help, true);
  assert.throws(() => parseStreamArgs(["--classes=10"]), /class id/);
  assert.throws(() => parseStreamArgs(["--variants=nope"]), /unknown variant/);
  assert.throws(() => parseStreamArgs(["--steps=0"]), /--steps/);
  assert.throws(() => parseStreamArgs(["--name=../x"]), /--name/);
  assert.throws(() => parseStreamArgs(["--bogus"]));
});

Deno.test("stream line config: offline model and training, one version at the step count", () => {
  const config = { ...DEFAULT_ACCURACY_CONFIG, steps: 40 };
  const line = streamPipelineConfig({ normalClass: 0, ratio: 0.3, variant: "robust" }, config, 260);
  assert.equal(line.line, STREAM_LINE);
  assert.deepEqual(
    [line.model.imageSize, line.model.studentWidth, line.model.aeLatent, line.model.seed],
    [32, "tiny", 64, 1],
  );
  const expected = TrainingSchema.parse({
    ...ACCURACY_VARIANTS.robust.training,
    learningRate: DEFAULT_ACCURACY_CONFIG.learningRate,
  });
  assert.deepEqual(line.training, expected);
  assert.equal(line.training.learningRate, 1e-3);
  assert.equal(line.trainer.warmupSteps, 40);
  assert.ok(line.trainer.publishEverySteps > 1000);
  assert.equal(line.trainer.bufferSize, 260);
  assert.equal(line.trainer.statsImages, 64);
  assert.deepEqual(line.trainer.hygiene, HygieneSchema.parse(ACCURACY_VARIANTS.robust.hygiene!));
  // The paper's AD² has no hygiene: nothing may leave the live trainer's buffer either.
  const paper = streamPipelineConfig({ normalClass: 0, ratio: 0.3, variant: "ad2" }, config, 260);
  assert.equal(paper.trainer.hygiene.maxRejectedFraction, 0);
});

Deno.test("stream image ids: passes map back to their training sample", () => {
  const labels = [false, true];
  assert.equal(trainImageId(1, 1), "train-1");
  assert.equal(trainImageId(1, 3), "train-1-p3");
  assert.deepEqual(trainSampleOf("train-1-p3", labels), { key: "train-1", anomalous: true });
  assert.deepEqual(trainSampleOf("train-0", labels), { key: "train-0", anomalous: false });
  assert.equal(trainSampleOf("train-2", labels), undefined);
  assert.equal(trainSampleOf(testImageId(0), labels), undefined);
});

/** A training event with just the fields the metrics read. */
function event(
  step: number,
  batch: string[],
  downWeighted: string[],
  rejected: string[] = downWeighted,
): TrainingEvent {
  return {
    line: STREAM_LINE,
    step,
    losses: { total: 1 },
    batch,
    downWeighted,
    rejected,
    modelVersion: null,
    at: "2024-05-01T00:00:00.000Z",
  };
}

Deno.test("rejection metrics: appearances for down-weighting, distinct images for recall", () => {
  // Training set: 0, 1 normal; 2, 3 injected anomalies.
  const labels = [false, false, true, true];
  const events = [
    event(1, ["train-0", "train-1", "train-2", "train-3"], ["train-2"]),
    event(2, ["train-0", "train-1", "train-3", "train-2-p2"], ["train-0"]),
    event(3, ["train-1", "train-3", "train-2-p2", "train-0-p2"], ["train-2-p2"]),
    // Past the frozen step: ignored.
    event(4, ["train-1", "train-3", "train-0-p2", "train-1-p2"], ["train-3"]),
  ];
  const metrics = rejectionMetrics(events, (id) => trainSampleOf(id, labels), 2, 3);
  assert.equal(metrics.events, 3);
  assert.deepEqual(metrics.downWeight, {
    picks: 3,
    injectedPicks: 2,
    expectedInjectedPicks: 1.5,
    injectedAppearances: 6,
  });
  assert.equal(metrics.downWeightPrecision, 2 / 3);
  assert.equal(metrics.downWeightRecall, 2 / 6);
  assert.equal(metrics.downWeightChance, 0.5);
  // Rejected: train-2 and train-2-p2 (both image 2), train-0; image 3 never.
  assert.deepEqual(metrics.hygiene, {
    rejected: 3,
    rejectedAnomalous: 2,
    distinctRejected: 2,
    distinctAnomalousRejected: 1,
    injected: 2,
    precision: 2 / 3,
    recall: 1 / 2,
  });
  assert.throws(
    () => rejectionMetrics([event(1, ["test-0"], [])], (id) => trainSampleOf(id, labels), 2, 1),
    /no training image/,
  );
});

Deno.test("rejection metrics: no rejections and a clean set give nulls, not NaN", () => {
  const labels = [false, false];
  const metrics = rejectionMetrics(
    [event(1, ["train-0", "train-1"], [], [])],
    (id) => trainSampleOf(id, labels),
    0,
    1,
  );
  assert.equal(metrics.downWeightPrecision, null);
  assert.equal(metrics.downWeightRecall, null);
  assert.equal(metrics.hygiene.precision, null);
  assert.equal(metrics.hygiene.recall, null);
});

function scored(imageId: string, score: number, modelVersion = 1): Verdict {
  return {
    status: "scored",
    imageId,
    line: STREAM_LINE,
    imageSeq: 1,
    capturedAt: null,
    scoredAt: "2024-05-01T00:00:00.000Z",
    anomalous: false,
    score,
    stScore: score,
    aeScore: score,
    threshold: 1,
    modelVersion,
    modelStep: 25 * modelVersion,
    ...NO_LOCALISATION,
  };
}

Deno.test("live AUROC: test verdicts of the frozen version only", () => {
  const ids = ["test-0", "test-1", "test-2", "test-3"];
  const verdicts = [
    scored("train-0", 9),
    scored("test-0", 0.1),
    scored("test-1", 0.9),
    scored("test-2", 0.2),
    scored("test-3", 0.8),
  ];
  assert.deepEqual(testScores(verdicts, ids, 1), [0.1, 0.9, 0.2, 0.8]);
  assert.equal(liveTestAuroc(verdicts, ids, [false, true, false, true], 1), 1);
  assert.equal(liveTestAuroc(verdicts, ids, [true, false, true, false], 1), 0);
  assert.throws(() => testScores(verdicts, [...ids, "test-4"], 1), /test-4 has no verdict/);
  assert.throws(() => testScores([scored("test-0", 0.1, 2)], ["test-0"], 1), /by v2/);
  const warming: Verdict = {
    ...scored("test-0", 0),
    status: "warming_up",
    anomalous: null,
    score: null,
    threshold: null,
    modelVersion: null,
  } as Verdict;
  assert.throws(() => testScores([warming], ["test-0"], 1), /not scored: warming_up/);
});

function cellResult(
  normalClass: number,
  repeat: number,
  liveAuroc: number,
  offlineAuroc: number,
  counts: { picks: number; injectedPicks: number; appearances: number; rejected: number },
): StreamCellResult {
  const downWeight = {
    picks: counts.picks,
    injectedPicks: counts.injectedPicks,
    expectedInjectedPicks: counts.picks / 10,
    injectedAppearances: counts.appearances,
  };
  return {
    normalClass,
    repeat,
    ratio: 0.1,
    variant: "ad2",
    liveAuroc,
    offlineAuroc,
    gap: liveAuroc - offlineAuroc,
    live: {
      events: 100,
      downWeight,
      downWeightPrecision: counts.injectedPicks / counts.picks,
      downWeightRecall: counts.injectedPicks / counts.appearances,
      downWeightChance: 0.1,
      hygiene: {
        rejected: counts.picks,
        rejectedAnomalous: counts.injectedPicks,
        distinctRejected: counts.picks,
        distinctAnomalousRejected: counts.rejected,
        injected: 20,
        precision: counts.injectedPicks / counts.picks,
        recall: counts.rejected / 20,
      },
    },
    offlineDownWeight: downWeight,
    stepsTrained: 104,
    modelVersion: 1,
    modelStep: 100,
    passes: 4,
    imagesPublished: 1080,
    trainSize: 220,
    injected: 20,
    testSize: 200,
    seconds: { live: 60, offline: 30 },
  };
}

Deno.test("mean rows average AUROC and pool precision and recall", () => {
  const results = [
    cellResult(0, 1, 0.9, 0.88, { picks: 100, injectedPicks: 30, appearances: 60, rejected: 10 }),
    cellResult(7, 1, 0.8, 0.84, { picks: 100, injectedPicks: 10, appearances: 40, rejected: 6 }),
  ];
  const [mean] = meanRows(results);
  assert.equal(mean.runs, 2);
  assert.equal(mean.classes, 2);
  assert.equal(mean.liveSpread, null);
  assert.ok(Math.abs(mean.liveAuroc - 0.85) < 1e-12);
  assert.ok(Math.abs(mean.gap - (-0.01)) < 1e-12);
  assert.ok(Math.abs(mean.maxAbsGap - 0.04) < 1e-12);
  assert.equal(mean.downWeightPrecision, 40 / 200);
  assert.equal(mean.downWeightRecall, 40 / 100);
  assert.equal(mean.offlineDownWeightPrecision, 40 / 200);
  assert.equal(mean.rejectionPrecision, 40 / 200);
  assert.equal(mean.rejectionRecall, 16 / 40);
  const table = streamTable(results);
  assert.equal(table.rows.length, 3);
  assert.equal(table.rows[2][0], "mean (2)");
  assert.equal(table.rows[0][5], "+0.020");
  assert.ok(table.rows.every((row) => row.length === table.headers.length));
  assert.equal(table.rows[0][10], "100");
});

Deno.test("mean rows: repeats of a class give the live spread", () => {
  const counts = { picks: 10, injectedPicks: 5, appearances: 10, rejected: 5 };
  const results = [
    cellResult(0, 1, 0.9, 0.88, counts),
    cellResult(0, 2, 0.85, 0.88, counts),
    cellResult(7, 1, 0.7, 0.72, counts),
    cellResult(7, 2, 0.71, 0.72, counts),
  ];
  const [mean] = meanRows(results);
  assert.equal(mean.runs, 4);
  assert.equal(mean.classes, 2);
  assert.ok(Math.abs(mean.liveSpread! - 0.05) < 1e-12);
  assert.equal(streamTable(results).rows[1][0], "0 #2");
});
