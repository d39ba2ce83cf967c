import { strict as assert } from "node:assert";
import { addOutlierCounts, countOutlierPicks, outlierPrecision } from "../src/metrics/outliers.ts";

const T = true;
const F = false;

Deno.test("outlier picks: precision against the chance of uniform picks from the same batches", () => {
  const counts = countOutlierPicks([
    { injected: [F, T, F, F], outliers: [1] }, // hit; chance 1/4
    { injected: [T, T, F, F], outliers: [2] }, // miss; chance 2/4
    { injected: [F, F, F, F], outliers: [0] }, // miss; chance 0
    { injected: [F, F, T, F], outliers: [2, 0] }, // one hit of two; chance 2 × 1/4
  ]);
  assert.deepEqual(counts, {
    picks: 5,
    injectedPicks: 2,
    expectedInjectedPicks: 1.25,
    injectedAppearances: 4,
  });
  const { precision, chance, lift, recall } = outlierPrecision(counts);
  assert.equal(precision, 2 / 5);
  assert.equal(chance, 1.25 / 5);
  assert.equal(lift, 1.6);
  assert.equal(recall, 2 / 4, "two of the four injected appearances were picked");
});

Deno.test("outlier counts add up across runs; no picks or a clean set give no ratio", () => {
  const a = countOutlierPicks([{ injected: [T, F], outliers: [0] }]);
  const b = countOutlierPicks([{ injected: [F, F], outliers: [1] }]);
  assert.deepEqual(addOutlierCounts([a, b]), {
    picks: 2,
    injectedPicks: 1,
    expectedInjectedPicks: 0.5,
    injectedAppearances: 1,
  });
  assert.deepEqual(outlierPrecision(countOutlierPicks([])), {
    precision: null,
    chance: null,
    lift: null,
    recall: null,
  });
  assert.deepEqual(outlierPrecision(b), { precision: 0, chance: 0, lift: null, recall: null });
});

Deno.test("outlier picks reject indices outside the batch and empty batches", () => {
  assert.throws(() => countOutlierPicks([{ injected: [F, T], outliers: [2] }]), /outlier 2/);
  assert.throws(() => countOutlierPicks([{ injected: [F, T], outliers: [0.5] }]), /outlier 0.5/);
  assert.throws(() => countOutlierPicks([{ injected: [], outliers: [] }]), /batch 0 is empty/);
});
