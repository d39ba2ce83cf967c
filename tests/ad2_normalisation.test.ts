import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import {
  AUTO_AE_EXPLAINED_HIGH,
  AUTO_AE_EXPLAINED_LOW,
  autoAeMapWeight,
  ChannelStatsAccumulator,
  explainedVariance,
  mapQuantilesFrom,
  normaliseFeatures,
  normaliseMap,
} from "../src/ad2/normalisation.ts";
import { assertClose, assertNoLeak, useBackend } from "./ad2_helpers.ts";

Deno.test("ChannelStatsAccumulator: channel mean/std over batches of different shapes", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const accumulator = new ChannelStatsAccumulator();
    assert.equal(accumulator.count, 0);
    assert.throws(() => accumulator.finish(), /no features/);
    // Channel 0 sees 1, 3, 5, 7: mean 4, population variance (9+1+1+9)/4 = 5.
    // Channel 1 sees 10, 20, 30, 40: mean 25, variance (225+25+25+225)/4 = 125.
    const first = tf.tensor4d([1, 10, 3, 20], [1, 1, 2, 2]);
    const second = tf.tensor4d([5, 30, 7, 40], [2, 1, 1, 2]);
    accumulator.add(first);
    accumulator.add(second);
    assert.equal(accumulator.count, 3);
    const { mean, std } = accumulator.finish();
    assertClose(mean.dataSync(), [4, 25]);
    assertClose(std.dataSync(), [Math.sqrt(5), Math.sqrt(125)]);
    const wrong = tf.zeros([1, 1, 1, 3]) as tf.Tensor4D;
    assert.throws(() => accumulator.add(wrong), /expected 2 channels, got 3/);
    tf.dispose([first, second, mean, std, wrong]);
  });
});

Deno.test("ChannelStatsAccumulator: no cancellation with a large offset", async () => {
  await useBackend("cpu");
  const accumulator = new ChannelStatsAccumulator();
  // 1e6 + {1, 3, 5, 7}: a float32 E[x²] − E[x]² would lose the variance 5 entirely.
  for (const v of [1, 3, 5, 7]) {
    const batch = tf.tensor4d([1e6 + v], [1, 1, 1, 1]);
    accumulator.add(batch);
    batch.dispose();
  }
  const { mean, std } = accumulator.finish();
  assertClose(mean.dataSync(), [1e6 + 4], 1e-3);
  assertClose(std.dataSync(), [Math.sqrt(5)], 1e-5);
  tf.dispose([mean, std]);
});

Deno.test("normaliseFeatures: per-channel standardisation, zero std floored", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const t = tf.tensor4d([1, 10, 7, 3, 20, 7], [1, 1, 2, 3]);
    const stats = { mean: tf.tensor1d([2, 15, 7]), std: tf.tensor1d([1, 5, 0]) };
    const normalised = normaliseFeatures(t, stats);
    // (1−2)/1, (10−15)/5, (7−7)/1e-6 | (3−2)/1, (20−15)/5, 0
    assertClose(normalised.dataSync(), [-1, -1, 0, 1, 1, 0]);
    const twoChannels = tf.zeros([1, 1, 1, 2]) as tf.Tensor4D;
    assert.throws(() => normaliseFeatures(twoChannels, stats), /2 channels/);
    tf.dispose([t, stats.mean, stats.std, normalised, twoChannels]);
  });
});

Deno.test("mapQuantilesFrom: quantile values of both maps", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const st = tf.tensor3d([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11], [1, 1, 11]);
    const ae = tf.tensor3d([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100], [1, 11, 1]);
    // 11 values: 0.9 → position 9, 0.995 → position 9.95.
    const q = mapQuantilesFrom(st, ae, 0.9, 0.995);
    assertClose([q.stA, q.stB, q.aeA, q.aeB], [10, 10.95, 90, 99.5], 1e-9);
    assert.throws(() => mapQuantilesFrom(st, ae, 0.995, 0.9), /qa <= qb/);
    tf.dispose([st, ae]);
  });
});

Deno.test("normaliseMap: 0.1·(map − qa)/(qb − qa), guarded spread", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const map = tf.tensor1d([0, 5, 10, 20]);
    const normalised = normaliseMap(map, 10, 20);
    assertClose(normalised.dataSync(), [-0.1, -0.05, 0, 0.1]);
    const flat = tf.tensor1d([3, 3.5]);
    const guarded = normaliseMap(flat, 3, 3); // spread floored at 1e-8: 0.1·0.5/1e-8 = 5e6
    assertClose(guarded.dataSync(), [0, 5e6], 1);
    assert.throws(() => normaliseMap(map, 20, 10), /qb >= qa/);
    assert.throws(() => normaliseMap(map, NaN, 10), /finite/);
    tf.dispose([map, normalised, flat, guarded]);
  });
});

Deno.test("explainedVariance: 1 − residual / spread around each channel's mean", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    // Two channels over 2 positions: channel 0 = [1, 3] (mean 2), channel 1 = [0, 4] (mean 2).
    // Spread Σ(t − t̄)² = 1 + 1 + 4 + 4 = 10.
    const target = tf.tensor4d([1, 0, 3, 4], [1, 1, 2, 2]);
    // Residual (1−1)² + (0−1)² + (3−2)² + (4−4)² = 2 → 1 − 2/10 = 0.8.
    const prediction = tf.tensor4d([1, 1, 2, 4], [1, 1, 2, 2]);
    assertClose([explainedVariance(target, prediction)], [0.8]);
    // Predicting each channel's mean explains nothing; a perfect prediction everything.
    const means = tf.tensor4d([2, 2, 2, 2], [1, 1, 2, 2]);
    assertClose([explainedVariance(target, means)], [0]);
    assertClose([explainedVariance(target, target)], [1]);
    const wrong = tf.zeros([1, 2, 1, 2]) as tf.Tensor4D;
    assert.throws(() => explainedVariance(target, wrong), /equal NHWC shapes/);
    assert.throws(() => explainedVariance(means, target), /constant target/);
    tf.dispose([target, prediction, means, wrong]);
  });
});

Deno.test("autoAeMapWeight: 0 below the low mark, EfficientAD's 0.5 above the high, linear between", () => {
  assert.equal(autoAeMapWeight(-0.2), 0);
  assert.equal(autoAeMapWeight(AUTO_AE_EXPLAINED_LOW), 0);
  assert.equal(autoAeMapWeight(AUTO_AE_EXPLAINED_HIGH), 0.5);
  assert.equal(autoAeMapWeight(0.99), 0.5);
  const middle = (AUTO_AE_EXPLAINED_LOW + AUTO_AE_EXPLAINED_HIGH) / 2;
  assertClose([autoAeMapWeight(middle)], [0.25]);
  assert.equal(autoAeMapWeight(NaN), 0.5);
});
