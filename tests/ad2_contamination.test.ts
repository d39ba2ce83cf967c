import { strict as assert } from "node:assert";
import {
  ContaminationEstimator,
  flaggedFraction,
  largestIndices,
  MAD_TO_SIGMA,
  outlierCountFor,
  robustZScores,
} from "../src/ad2/contamination.ts";
import { assertClose } from "./ad2_helpers.ts";

const OPTIONS = { zCut: 2.5, window: 10, maxFraction: 0.5, margin: 2 };

Deno.test("robustZScores: median/MAD z-scores (hand values, odd and even counts)", () => {
  // median 3, |deviations| [2,1,0,1,97] → MAD 1.
  assertClose(robustZScores([1, 2, 3, 4, 100]), [
    -2 / MAD_TO_SIGMA,
    -1 / MAD_TO_SIGMA,
    0,
    1 / MAD_TO_SIGMA,
    97 / MAD_TO_SIGMA,
  ]);
  // median 2.5, |deviations| [1.5,0.5,0.5,7.5] → MAD 1.
  assertClose(robustZScores([1, 2, 3, 10]), [-1.5, -0.5, 0.5, 7.5].map((d) => d / MAD_TO_SIGMA));
});

Deno.test("robustZScores: zero MAD sends values off the median to ±∞; bad input is refused", () => {
  assert.deepEqual(robustZScores([5, 5, 5, 9, 1]), [0, 0, 0, Infinity, -Infinity]);
  assert.throws(() => robustZScores([]), /no values/);
  assert.throws(() => robustZScores([1, NaN]), /finite/);
});

Deno.test("flaggedFraction: share above the cut", () => {
  assert.equal(flaggedFraction([1, 2, 3, 4, 100], 2.5), 0.2);
  assert.equal(flaggedFraction([1, 2, 3, 4, 5], 2.5), 0); // z(5) = 2 / 1.4826 ≈ 1.35
  assert.equal(flaggedFraction([5, 5, 5, 9], 2.5), 0.25);
});

Deno.test("outlierCountFor: round(margin · rate · b), capped at ⌊b · maxFraction⌋", () => {
  assert.equal(outlierCountFor(0, 8, 2, 0.5), 0);
  assert.equal(outlierCountFor(0.03, 8, 2, 0.5), 0); // 0.48
  assert.equal(outlierCountFor(0.032, 8, 2, 0.5), 1); // 0.512
  assert.equal(outlierCountFor(0.15, 8, 2, 0.5), 2); // 2.4
  assert.equal(outlierCountFor(0.3, 8, 2, 0.5), 4); // 4.8, capped at 4
  assert.equal(outlierCountFor(1, 2, 2, 0.99), 1); // never the whole batch
  assert.throws(() => outlierCountFor(0.1, 1, 2, 0.5), /batchSize/);
  assert.throws(() => outlierCountFor(1.5, 8, 2, 0.5), /rate/);
  assert.throws(() => outlierCountFor(0.1, 8, -1, 0.5), /margin/);
});

Deno.test("ContaminationEstimator: flagged share of the pooled, median-normalised sums drives k", () => {
  const estimator = new ContaminationEstimator(OPTIONS);
  assert.equal(estimator.rate, 0);
  assert.equal(estimator.outlierCount(8), 0);
  // Batch 1 ÷ median 3 → [1/3, 2/3, 1, 4/3, 100/3]: one flagged of five.
  assertClose(estimator.update([1, 2, 3, 4, 100]), 0.2);
  assert.equal(estimator.outlierCount(8), 3); // round(2 · 0.2 · 8) = round(3.2)
  // Batch 2 has 10× the scale (a student that moved) but the same shape: the pool of ten holds
  // the same ratios twice, still one flagged in five.
  assertClose(estimator.update([10, 20, 30, 40, 1000]), 0.2);
  // Batch 3, clean ([2, 4, 6, 8, 10] ÷ 6), replaces batch 1 in the window of ten: one in ten.
  assertClose(estimator.update([2, 4, 6, 8, 10]), 0.1);
  assert.equal(estimator.outlierCount(8), 2); // round(1.6)
  // A batch without scale (median 0) is counted but leaves the estimate alone.
  assertClose(estimator.update([0, 0, 0, 5]), 0.1);
  assert.equal(estimator.batches, 4);
});

Deno.test("ContaminationEstimator: refuses bad options", () => {
  assert.throws(() => new ContaminationEstimator({ ...OPTIONS, zCut: 0 }), /zCut/);
  assert.throws(() => new ContaminationEstimator({ ...OPTIONS, window: 4 }), /window/);
  assert.throws(() => new ContaminationEstimator({ ...OPTIONS, maxFraction: 2 }), /maxFraction/);
  assert.throws(() => new ContaminationEstimator({ ...OPTIONS, initialRate: -1 }), /initialRate/);
});

Deno.test("largestIndices: the round(fraction · n) largest, in index order, never all", () => {
  assert.deepEqual(largestIndices([0.3, 0.9, 0.1, 0.5], 0.5), [1, 3]);
  assert.deepEqual(largestIndices([0.3, 0.9, 0.1, 0.5], 0.25), [1]);
  assert.deepEqual(largestIndices([0.3, 0.9, 0.1, 0.5], 0.1), []); // round(0.4) = 0
  assert.deepEqual(largestIndices([2, 2, 1], 0.34), [0], "ties: the earlier index");
  assert.deepEqual(largestIndices([1, 2], 1), [1], "one sample always stays");
  assert.deepEqual(largestIndices([], 0.5), []);
  assert.throws(() => largestIndices([1, NaN], 0.5), /finite/);
  assert.throws(() => largestIndices([1, 2], 1.5), /fraction/);
});
