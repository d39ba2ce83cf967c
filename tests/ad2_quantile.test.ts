import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import {
  quantileOf,
  quantileOfSampleGroups,
  quantilesOf,
  quantilesOfValues,
} from "../src/ad2/quantile.ts";
import {
  assertClose,
  assertNoLeak,
  naiveQuantile,
  seededRandom,
  useBackend,
} from "./ad2_helpers.ts";

Deno.test("quantileOf: hand values with linear interpolation (torch semantics)", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const t = tf.tensor1d([5, 1, 4, 2, 3]); // sorted 1..5, n − 1 = 4
    assert.equal(quantileOf(t, 0), 1);
    assert.equal(quantileOf(t, 1), 5);
    assert.equal(quantileOf(t, 0.5), 3); // position 2
    assert.equal(quantileOf(t, 0.25), 2); // position 1
    assertClose(quantileOf(t, 0.1), 1.4, 1e-12); // position 0.4 → 1 + 0.4·(2 − 1)
    assertClose(quantileOf(t, 0.999), 4.996, 1e-12); // position 3.996 → 4 + 0.996·1
    const u = tf.tensor2d([[10, 0], [20, 30]]); // sorted 0,10,20,30
    assertClose(quantileOf(u, 0.9), 27, 1e-12); // position 2.7 → 20 + 0.7·10
    const single = tf.scalar(7);
    assert.equal(quantileOf(single, 0.3), 7);
    tf.dispose([t, u, single]);
  });
});

Deno.test("quantileOf: only the first maxElements elements count", async () => {
  await useBackend("cpu");
  const t = tf.tensor1d([3, 1, 2, 100, 200]);
  assert.equal(quantileOf(t, 1, 3), 3); // max of [3,1,2]
  assert.equal(quantileOf(t, 0.5, 3), 2);
  assert.equal(quantileOf(t, 1), 200);
  t.dispose();
});

Deno.test("quantileOf: NaN propagates, bad input throws", async () => {
  await useBackend("cpu");
  const withNaN = tf.tensor1d([1, NaN, 3]);
  assert.ok(Number.isNaN(quantileOf(withNaN, 0.5)));
  assert.throws(() => quantileOf(withNaN, 1.5), /quantile must be in \[0, 1\]/);
  assert.throws(() => quantileOf(withNaN, -0.1), /quantile must be in \[0, 1\]/);
  assert.throws(() => quantileOf(withNaN, 0.5, 0), /maxElements/);
  const empty = tf.tensor1d([]);
  assert.throws(() => quantileOf(empty, 0.5), /empty/);
  tf.dispose([withNaN, empty]);
});

Deno.test("quantilesOf: several quantiles keep the requested order", async () => {
  await useBackend("cpu");
  const t = tf.tensor1d([0, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]);
  // positions 9.95, 9, 5 → 99.5, 90, 50
  assertClose(quantilesOf(t, [0.995, 0.9, 0.5]), [99.5, 90, 50], 1e-9);
  t.dispose();
  assertClose(quantilesOfValues([4, 3, 2, 1], [0.5, 0]), [2.5, 1], 1e-12);
});

Deno.test("quantilesOfValues: leaves its input untouched", () => {
  const values = new Float32Array([9, 8, 7, 6, 5, 4, 3, 2, 1]);
  const copy = values.slice();
  quantilesOfValues(values, [0.3, 0.7]);
  assert.deepEqual(values, copy);
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`quantileOf (${backend}): matches a full sort on random data`, async () => {
    await useBackend(backend);
    const random = seededRandom(11);
    // Large enough for Floyd–Rivest's sampling recursion; rounding makes many ties.
    for (const n of [1, 2, 7, 601, 5000, 100_003]) {
      const values = Float32Array.from({ length: n }, () => Math.round(random() * 5000) / 100);
      const t = tf.tensor1d(values);
      await assertNoLeak(() => {
        for (const q of [0, 0.001, 0.1, 0.5, 0.87, 0.9, 0.995, 0.999, 1]) {
          assert.equal(quantileOf(t, q), naiveQuantile(values, q), `n=${n} q=${q}`);
        }
        // maxElements on both the tail (topk) and the selection paths
        const m = Math.max(1, Math.floor(n / 2));
        for (const q of [0.001, 0.5, 0.999]) {
          assert.equal(quantileOf(t, q, m), naiveQuantile(values.subarray(0, m), q));
        }
      });
      t.dispose();
    }
    await useBackend("cpu");
  });
}

Deno.test("quantileOf (wasm): NaN is detected on the topk tail path too", async () => {
  await useBackend("wasm");
  const values = new Float32Array(1000).fill(1);
  values[500] = NaN;
  const t = tf.tensor1d(values);
  await assertNoLeak(() => {
    assert.ok(Number.isNaN(quantileOf(t, 0.999)));
    assert.ok(Number.isNaN(quantileOf(t, 0.001)));
  });
  t.dispose();
  await useBackend("cpu");
});

Deno.test("quantileOfSampleGroups: hand values per group of samples", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    // 3 samples of 2 values: [1, 2], [10, 20], [3, 4].
    const t = tf.tensor3d([1, 2, 10, 20, 3, 4], [3, 1, 2]);
    // Group {0, 2} = 1, 2, 3, 4 → 0.5 at position 1.5 → 2.5; group {1} = 10, 20 → 15.
    assertClose(quantileOfSampleGroups(t, [[0, 2], [1]], 0.5), [2.5, 15], 1e-12);
    // Only the first 3 elements of group {2, 0} (3, 4, 1) count: max 4.
    assert.deepEqual(quantileOfSampleGroups(t, [[2, 0]], 1, 3), [4]);
    assert.throws(() => quantileOfSampleGroups(t, [[]], 0.5), /must not be empty/);
    assert.throws(() => quantileOfSampleGroups(t, [[3]], 0.5), /outside a batch of 3/);
    t.dispose();
  });
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`quantileOfSampleGroups (${backend}): matches a full sort`, async () => {
    await useBackend(backend);
    const random = seededRandom(21);
    const [b, rowSize] = [6, 4000];
    const values = Float32Array.from(
      { length: b * rowSize },
      () => Math.round(random() * 3000) / 100,
    );
    for (let e = 0; e < 300; e++) values[4 * rowSize + e] += 100; // one sample holds the top
    const t = tf.tensor2d(values, [b, rowSize]);
    const groups = [[0, 1, 2, 3, 5], [4], [5, 1]];
    const rows = (group: number[]) =>
      group.flatMap((i) => Array.from(values.subarray(i * rowSize, (i + 1) * rowSize)));
    await assertNoLeak(() => {
      for (const q of [0.999, 0.99, 0.9, 0.5, 0.01]) {
        assert.deepEqual(
          quantileOfSampleGroups(t, groups, q),
          groups.map((g) => naiveQuantile(rows(g), q)),
          `q=${q}`,
        );
      }
    });
    const withNaN = tf.tensor2d([1, 2, NaN, 4], [2, 2]);
    const [clean, dirty] = quantileOfSampleGroups(withNaN, [[0], [1]], 0.999);
    assertClose(clean, 1.999, 1e-9); // 1 + 0.999·(2 − 1)
    assert.ok(Number.isNaN(dirty));
    tf.dispose([t, withNaN]);
    await useBackend("cpu");
  });
}
