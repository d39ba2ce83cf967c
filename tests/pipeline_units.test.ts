import { strict as assert } from "node:assert";
import { ThresholdPolicySchema } from "../src/config/schema.ts";
import { ImageBuffer } from "../src/stages/image_buffer.ts";
import { ScoreWindow, standardNormalQuantile } from "../src/stages/threshold.ts";
import { bytesToPixels, pixelsToBytes } from "../src/bus/decoded_image.ts";
import { progressLine } from "../src/pipeline/progress.ts";
import type { StageStatus } from "../src/stages/stage.ts";

const pixels = (value: number) => new Float32Array(3).fill(value);

Deno.test("threshold never flags a whole defect-free line, and bounds the flagged share", () => {
  const window = new ScoreWindow(
    ThresholdPolicySchema.parse({
      method: "quantile",
      targetFalseAlarmRate: 0.05,
      window: 200,
      floor: 0,
    }),
  );
  // Identical scores: nothing is strictly above the quantile.
  window.add(new Array(100).fill(0.3));
  assert.equal(window.threshold(), 0.3);
  // A smooth spread: at most 5 % of the window lies above the threshold.
  const fresh = new ScoreWindow(window.policy);
  const scores = Array.from({ length: 200 }, (_, i) => i / 200);
  fresh.add(scores);
  const flagged = scores.filter((s) => s > fresh.threshold()).length;
  assert.ok(flagged <= 10, `flagged ${flagged} of 200`);
  assert.ok(flagged >= 9, `flagged ${flagged} of 200 (the quantile is not the max)`);
  // Fewer than 1/rate scores: the quantile is the maximum, nothing is flagged.
  const small = new ScoreWindow(window.policy);
  small.add([0.1, 0.9, 0.2]);
  assert.equal(small.threshold(), 0.9);
});

Deno.test("threshold floor and window length", () => {
  const window = new ScoreWindow(
    ThresholdPolicySchema.parse({
      method: "quantile",
      targetFalseAlarmRate: 0.5,
      window: 10,
      floor: 0.25,
    }),
  );
  assert.equal(window.threshold(), 0.25);
  window.add([0.01, 0.02, 0.03, 0.04]);
  assert.equal(window.threshold(), 0.25, "floor wins over low scores");
  window.add(Array.from({ length: 10 }, (_, i) => 1 + i)); // pushes the small ones out
  assert.equal(window.size, 10);
  assert.equal(window.threshold(), 5, "median (nearest rank) of 1..10");
  window.add([NaN, Infinity]);
  assert.equal(window.size, 10, "non-finite scores are ignored");
});

Deno.test("robust threshold: median + z·MAD flags every defect at a 20 % defect rate", async (t) => {
  await t.step("standard normal quantiles", () => {
    assert.ok(Math.abs(standardNormalQuantile(0.99) - 2.3263478740) < 1e-8);
    assert.ok(Math.abs(standardNormalQuantile(0.5)) < 1e-12);
    assert.ok(Math.abs(standardNormalQuantile(0.001) + 3.0902323062) < 1e-8);
    assert.throws(() => standardNormalQuantile(1), RangeError);
  });
  const policy = ThresholdPolicySchema.parse({ targetFalseAlarmRate: 0.01, window: 500, floor: 0 });
  assert.equal(policy.method, "robust");
  // Normal scores 0.05 ± a deterministic spread (median 0.05, MAD 0.01 by construction).
  const normal = Array.from({ length: 400 }, (_, i) => 0.05 + (i % 2 === 0 ? 0.01 : -0.01));
  const clean = new ScoreWindow(policy);
  clean.add(normal);
  // Hand value: 0.05 + 2.3263479 × 1.4826 × 0.01 = 0.0844904...
  assert.ok(Math.abs(clean.threshold() - 0.08449043) < 1e-6, String(clean.threshold()));
  assert.equal(normal.filter((s) => s > clean.threshold()).length, 0, "defect-free: none flagged");
  // 100 defects (20 %) with scores far above: all flagged, threshold barely moves.
  const defects = new Array(100).fill(0.5);
  const polluted = new ScoreWindow(policy);
  polluted.add([...normal, ...defects]);
  // Sorted: 200 × 0.04, 200 × 0.06, 100 × 0.5 → median 0.06, MAD 0.02 (hand value below);
  // the defects themselves sit far above it.
  assert.ok(Math.abs(polluted.threshold() - 0.12898087) < 1e-6, String(polluted.threshold()));
  assert.equal(defects.filter((s) => s > polluted.threshold()).length, 100);
  // Below minScores (1 / 0.01 = 100) the window maximum: nothing flagged yet.
  const young = new ScoreWindow(policy);
  young.add([0.01, 0.9, 0.02]);
  assert.equal(young.threshold(), 0.9);
});

Deno.test("image buffer: a replay batch draws from the whole buffer, trained or not", () => {
  const buffer = new ImageBuffer(6, 1);
  for (let i = 0; i < 3; i++) buffer.add(`i${i}`, pixels(i));
  assert.equal(buffer.takeReplayBatch(4), null, "fewer images than a batch");
  buffer.takeBatch(3);
  assert.equal(buffer.takeBatch(3), null, "no new image");
  const replay = buffer.takeReplayBatch(3)!;
  assert.deepEqual(replay.map((b) => b.imageId).sort(), ["i0", "i1", "i2"]);
  assert.ok(replay.every((b) => b.trained === 2), "a replay counts as training");
  buffer.add("i3", pixels(3));
  assert.ok(buffer.takeReplayBatch(2)!.length === 2);
  assert.equal(buffer.takeBatch(2)![0].imageId, "i3", "a new image still comes first");
});

Deno.test("image buffer: newest untrained first, replay top-up, eviction, outlier removal", () => {
  const buffer = new ImageBuffer(6, 1);
  assert.equal(buffer.takeBatch(2), null, "empty");
  for (let i = 0; i < 4; i++) buffer.add(`i${i}`, pixels(i));
  const first = buffer.takeBatch(3)!;
  assert.deepEqual(first.map((b) => b.imageId), ["i1", "i2", "i3"]);
  // One untrained left: it comes first, the rest are replays.
  const second = buffer.takeBatch(3)!;
  assert.equal(second[0].imageId, "i0");
  assert.equal(new Set(second.map((b) => b.imageId)).size, 3);
  assert.equal(buffer.takeBatch(3), null, "no new image: no step");
  for (let i = 4; i < 10; i++) buffer.add(`i${i}`, pixels(i));
  assert.equal(buffer.size, 6);
  assert.deepEqual(buffer.recent(2).map((b) => b.imageId), ["i8", "i9"]);
  assert.equal(buffer.skipped, 0, "i0..i3 were trained before eviction");
  buffer.add("i10", pixels(10)); // evicts the untrained i4
  assert.equal(buffer.skipped, 1);
  assert.equal(buffer.remove(["i9", "i10", "nope"]), 2);
  assert.deepEqual(buffer.recent(10).map((b) => b.imageId), ["i5", "i6", "i7", "i8"]);
});

Deno.test("decoded image bytes round-trip the decoder's values exactly", () => {
  const original = new Float32Array(256);
  for (let i = 0; i < 256; i++) original[i] = i / 255;
  assert.deepEqual(bytesToPixels(pixelsToBytes(original)), original);
});

Deno.test("progress line reports rates, step, loss, version and backlog", () => {
  const status = (stage: StageStatus["stage"], extra: Partial<StageStatus>): StageStatus => ({
    stage,
    line: "demo",
    imagesIn: 0,
    imagesOut: 0,
    backlog: 0,
    step: null,
    loss: null,
    modelVersion: null,
    warm: false,
    paused: false,
    details: {},
    ...extra,
  });
  const before = {
    atMs: 0,
    stages: {
      ingest: status("ingest", { imagesIn: 10, details: { rejected: 1 } }),
      trainer: status("trainer", { step: 5 }),
      scorer: status("scorer", { imagesOut: 8 }),
    },
  };
  const after = {
    atMs: 2000,
    stages: {
      ingest: status("ingest", { imagesIn: 30, backlog: 3, details: { rejected: 1 } }),
      trainer: status("trainer", { step: 9, loss: 0.125, modelVersion: 2, warm: true }),
      scorer: status("scorer", { imagesOut: 26, modelVersion: 2 }),
    },
  };
  assert.equal(
    progressLine("demo", before, after),
    "[demo] in 10.0/s | out 9.0/s | step 9 loss 0.1250 model v2 | scoring with v2 | " +
      "backlog ingest 3, trainer 0, scorer 0",
  );
});
