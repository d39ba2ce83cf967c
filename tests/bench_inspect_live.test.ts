import { strict as assert } from "node:assert";
import type { Verdict } from "../src/bus/verdict.ts";
import { NO_LOCALISATION } from "../src/bus/verdict.ts";
import { renderSplitSample } from "../src/data/inspect_split.ts";
import { demoConfigWith } from "../src/harness/line.ts";
import {
  LIVE_DEFAULTS,
  liveInspectTables,
  parseLiveInspectArgs,
  runLiveInspect,
} from "../bench/inspect_live.ts";
import { liveLineConfig, statusCounts, testSetScores } from "../bench/inspect_live_run.ts";
import { loadPipelineConfig } from "../src/pipeline/config.ts";

Deno.test("bench:inspect --live arguments: the issue's protocol by default, clear errors", async () => {
  const parsed = parseLiveInspectArgs([]);
  assert.equal(parsed.config.rate, 10);
  assert.equal(parsed.config.durationSeconds, 600);
  assert.deepEqual(parsed.config.points, [60, 120, 300, 600]);
  assert.equal(parsed.lineConfig, "pipelines/demo.json");
  assert.equal(parsed.name, LIVE_DEFAULTS.name);
  // Ratios outermost, so a run stopped early has every surface at the first ratio.
  assert.deepEqual(parsed.jobs.slice(0, 2), [
    { surface: "brick", ratio: 0.1 },
    { surface: "metal", ratio: 0.1 },
  ]);
  const short = parseLiveInspectArgs(["--surfaces", "pcb", "--ratios", "0.3", "--duration", "90"]);
  assert.deepEqual(short.jobs, [{ surface: "pcb", ratio: 0.3 }]);
  assert.deepEqual(short.config.points, [60], "default points beyond --duration are dropped");
  const sideBySide = parseLiveInspectArgs([
    "--surfaces=wood",
    "--ratios=0.1",
    "--variants=ad2,baseline",
  ]);
  assert.deepEqual(sideBySide.jobs, [
    { surface: "wood", ratio: 0.1, variant: "ad2" },
    { surface: "wood", ratio: 0.1, variant: "baseline" },
  ]);
  const baseline = liveLineConfig(await loadPipelineConfig("pipelines/demo.json"), "baseline");
  assert.equal(baseline.training.method, "baseline");
  assert.equal(baseline.line, "inspect-live");
  assert.equal(baseline.metrics.enabled, false);
  assert.throws(() => parseLiveInspectArgs(["--surfaces", "marble"]), /unknown surface/);
  assert.throws(() => parseLiveInspectArgs(["--points", "30,700"]), /--points/);
  assert.throws(() => parseLiveInspectArgs(["--format", "bmp"]), /png or jpeg/);
});

Deno.test("bench:inspect --live scores: AUROC only when every test image was scored", () => {
  const test = [
    renderSplitSample({ surface: "metal", side: 64 }, { seed: 1 }),
    renderSplitSample({ surface: "metal", side: 64 }, { seed: 2 }),
    renderSplitSample({ surface: "metal", side: 64 }, {
      seed: 3,
      defect: { kind: "hole", size: "large" },
    }),
  ];
  const scored = (imageId: string, score: number, modelStep: number): Verdict => ({
    status: "scored",
    imageId,
    line: "l",
    imageSeq: 1,
    capturedAt: null,
    scoredAt: new Date(0).toISOString(),
    anomalous: false,
    score,
    stScore: score,
    aeScore: -score,
    threshold: 1,
    modelVersion: modelStep === 10 ? 1 : 2,
    modelStep,
    ...NO_LOCALISATION,
  });
  const all = testSetScores(test, [
    scored("a", 0.1, 10),
    scored("b", 0.3, 20),
    scored("c", 0.2, 20),
  ]);
  assert.equal(all.auroc, 0.5); // the defect beats one of two normal images
  assert.equal(all.aurocAe, 0.5);
  assert.deepEqual(all.modelVersions, [1, 2]);
  assert.deepEqual(all.modelSteps, [10, 20]);
  assert.deepEqual(all.cells.map((c) => [c.kind, c.size, c.auroc]), [["hole", "large", 0.5]]);
  const warming: Verdict = {
    status: "warming_up",
    imageId: "b",
    line: "l",
    imageSeq: 2,
    capturedAt: null,
    scoredAt: new Date(0).toISOString(),
    anomalous: null,
    score: null,
    threshold: null,
    modelVersion: null,
  };
  const partly = testSetScores(test, [scored("a", 0.1, 10), warming, undefined]);
  assert.equal(partly.auroc, null);
  assert.deepEqual(partly.modelSteps, [10, 10]);
  const byId = new Map([["a", scored("a", 0.1, 10)], ["b", warming]]);
  assert.deepEqual(statusCounts(["a", "b", "c"], byId), {
    scored: 1,
    warming_up: 1,
    rejected: 0,
    missing: 1,
  });
});

Deno.test({
  name: "bench:inspect --live end to end: a tiny line, test sets answered, never trained on",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    // The demo line, warmed up fast so the short run can reach a version.
    const pipeline = await demoConfigWith("inspect-live-test", {
      trainer: {
        warmupSteps: 2,
        publishEverySteps: 2,
        statsImages: 16,
        normalisationImages: 16,
        bufferSize: 64,
        maturity: { criterion: "steps" },
      },
    });
    const dir = await Deno.makeTempDir({ prefix: "inspect-live-test-" });
    try {
      const lineConfig = `${dir}/line.json`;
      await Deno.writeTextFile(lineConfig, JSON.stringify(pipeline));
      const parsed = parseLiveInspectArgs([
        "--surfaces=pcb",
        "--ratios=0.3",
        "--duration=10",
        "--points=3,10",
        "--rate=8",
        "--test-normal=4",
        "--test-per-cell=1",
        `--config=${lineConfig}`,
      ]);
      const report = await runLiveInspect(parsed, () => {});
      assert.deepEqual(report.failures, []);
      assert.equal(report.partial, undefined);
      assert.equal(report.results.length, 1);
      const [cell] = report.results;
      assert.equal(cell.cameraImages, 80);
      assert.equal(cell.injected, 24);
      assert.deepEqual(cell.points.map((p) => p.atSeconds), [3, 10]);
      const testSize = 4 + 6 * 3;
      for (const point of cell.points) {
        // Every held-out image got its verdict: scored or warming up, none refused or lost.
        assert.equal(point.verdicts.scored + point.verdicts.warming_up, testSize);
        assert.equal(point.verdicts.rejected + point.verdicts.missing, 0);
        assert.ok(
          point.answeredSeconds !== null && point.answeredSeconds >= point.publishedSeconds,
        );
        if (point.verdicts.scored === testSize) {
          assert.ok(point.auroc !== null && point.auroc >= 0 && point.auroc <= 1);
          assert.ok(point.modelSteps !== null && point.modelSteps[0] >= 2);
          // The version's map weight is recorded, with the explained variance behind it.
          const { aeExplained, aeMapWeight } = point.trainer ?? {};
          assert.ok(typeof aeExplained === "number" && aeExplained <= 1, `${aeExplained}`);
          assert.ok(typeof aeMapWeight === "number" && aeMapWeight >= 0 && aeMapWeight <= 1);
        } else {
          assert.equal(point.auroc, null);
        }
      }
      assert.ok(cell.points[0].imagesSeen <= cell.points[1].imagesSeen);
      assert.equal(cell.points[1].imagesSeen, 80);
      // Image-Train: no kept the test sets out of every training batch.
      assert.equal(cell.testImagesTrainedOn, 0);
      assert.ok((cell.finalTrainer?.heldOut ?? 0) > 0, "the trainer saw held-out images");
      const tables = liveInspectTables(report);
      assert.equal(tables.length, 5);
      assert.equal(tables[0].table.rows.length, 2, "the surface and the mean");
      assert.equal(tables[2].table.rows.length, 2, "one row per point");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
