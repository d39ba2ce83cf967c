import assert from "node:assert/strict";
import { LossPlateau, matureStep, type MaturityOptions } from "../src/stages/maturity.ts";
import { TrainerStageSchema } from "../src/config/schema.ts";

const plateau: MaturityOptions = {
  criterion: "loss_plateau",
  minSteps: 10,
  window: 5,
  tolerance: 0.05,
  maxSteps: 1000,
};

/** A loss that halves every 10 steps down to a floor of 1 (then flat). */
const decaying = Array.from({ length: 200 }, (_, i) => 1 + 100 * 0.5 ** (i / 10));

Deno.test("steps criterion: mature exactly at minSteps (the old fixed warm-up)", () => {
  assert.equal(matureStep(decaying, { ...plateau, criterion: "steps" }), 10);
});

Deno.test("loss plateau: not while the loss falls, mature once it flattens", () => {
  const step = matureStep(decaying, plateau)!;
  assert.ok(step > 40, `fired at ${step} while the loss still fell`);
  // By then the windowed fall is within tolerance: later than the steps criterion, not never.
  assert.ok(step < 120, `fired only at ${step}`);
  const before = new LossPlateau(plateau);
  for (const loss of decaying.slice(0, step - 1)) before.add(loss);
  assert.equal(before.mature, false);
  assert.ok(before.recentImprovement! > plateau.tolerance);
});

Deno.test("loss plateau: never before minSteps, always by maxSteps, stays mature", () => {
  const flat = Array.from({ length: 50 }, () => 2);
  assert.equal(matureStep(flat, { ...plateau, minSteps: 30 }), 30);
  const falling = Array.from({ length: 100 }, (_, i) => 100 - i);
  assert.equal(matureStep(falling, { ...plateau, maxSteps: 60 }), 60);
  const tracker = new LossPlateau({ ...plateau, minSteps: 1 });
  for (const loss of [...flat.slice(0, 10), 50, 80, 90]) tracker.add(loss);
  assert.equal(tracker.mature, true);
  assert.equal(tracker.matureAt, 10);
  assert.equal(tracker.steps, 13);
});

Deno.test("loss plateau: non-finite losses are not evidence", () => {
  const tracker = new LossPlateau({ ...plateau, minSteps: 1 });
  for (let i = 0; i < 20; i++) tracker.add(NaN);
  assert.equal(tracker.mature, false);
  assert.equal(tracker.recentImprovement, null);
});

Deno.test("trainer.maturity: defaults keep the fixed warm-up; bad fields are named", () => {
  const trainer = TrainerStageSchema.parse({});
  assert.equal(trainer.maturity.criterion, "steps");
  const bad = TrainerStageSchema.safeParse({ maturity: { criterion: "vibes" } });
  assert.ok(!bad.success);
  assert.deepEqual(bad.error.issues[0].path, ["maturity", "criterion"]);
});

Deno.test("maturity counts the model's own steps (a trainer resumed at step N)", () => {
  const resumed = new LossPlateau({ ...plateau, criterion: "steps", minSteps: 25 });
  resumed.add(3, 40);
  assert.equal(resumed.mature, true);
  assert.equal(resumed.matureAt, 40);
  const capped = new LossPlateau({ ...plateau, maxSteps: 60 });
  capped.add(100, 61);
  assert.equal(capped.mature, true);
});
