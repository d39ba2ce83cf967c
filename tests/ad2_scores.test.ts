import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { aeMap, combinedMap, heatmaps, imageScores, stMap } from "../src/ad2/scores.ts";
import { assertClose, assertNoLeak, useBackend } from "./ad2_helpers.ts";

Deno.test("stMap / aeMap: per-pixel channel mean of squared differences", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const student = tf.tensor4d([1, 2, 0, 0], [1, 1, 2, 2]);
    const teacher = tf.tensor4d([0, 0, 3, 4], [1, 1, 2, 2]);
    const st = stMap(student, teacher); // [(1+4)/2, (9+16)/2]
    assert.deepEqual(st.shape, [1, 1, 2]);
    assertClose(st.dataSync(), [2.5, 12.5]);
    const ae = aeMap(teacher, student);
    assertClose(ae.dataSync(), [2.5, 12.5]);
    const wrong = tf.zeros([1, 1, 2, 3]) as tf.Tensor4D;
    assert.throws(() => stMap(student, wrong), /differ in shape/);
    tf.dispose([student, teacher, st, ae, wrong]);
  });
});

Deno.test("combinedMap: weighted mean of the two normalised maps (EfficientAD: equal)", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const st = tf.tensor3d([10, 20], [1, 1, 2]);
    const ae = tf.tensor3d([2, 4], [1, 1, 2]);
    // st → 0.1·(st − 10)/10 = [0, 0.1]; ae → 0.1·(ae − 0)/4 = [0.05, 0.1]; mean → [0.025, 0.1].
    const combined = combinedMap(st, ae, { stA: 10, stB: 20, aeA: 0, aeB: 4 });
    assertClose(combined.dataSync(), [0.025, 0.1]);
    // Weighted: 0.75·[0, 0.1] + 0.25·[0.05, 0.1] = [0.0125, 0.1]; w = 0 is the ST map alone.
    const weighted = combinedMap(st, ae, { stA: 10, stB: 20, aeA: 0, aeB: 4 }, 0.25);
    assertClose(weighted.dataSync(), [0.0125, 0.1]);
    const stOnly = combinedMap(st, ae, { stA: 10, stB: 20, aeA: 0, aeB: 4 }, 0);
    assertClose(stOnly.dataSync(), [0, 0.1]);
    assert.throws(() => combinedMap(st, ae, { stA: 10, stB: 20, aeA: 0, aeB: 4 }, 1.5), /\[0, 1\]/);
    tf.dispose([st, ae, combined, weighted, stOnly]);
  });
});

Deno.test("imageScores: per-image maximum", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const map = tf.tensor3d([1, 5, 2, 3, -1, -4, -2, -3], [2, 2, 2]);
    const scores = imageScores(map);
    assert.deepEqual(Array.from(scores.dataSync()), [5, -1]);
    tf.dispose([map, scores]);
  });
});

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`heatmaps (${backend}): bilinear, half-pixel centres, edge-clamped`, async () => {
    await useBackend(backend);
    await assertNoLeak(() => {
      const map = tf.tensor3d([0, 1, 2, 3], [1, 2, 2]); // value = x + 2y
      const resized = heatmaps(map, 4);
      // Source coordinate of output i: (i + 0.5)/2 − 0.5 = −0.25, 0.25, 0.75, 1.25, clamped to
      // [0, 1] → 0, 0.25, 0.75, 1; the output is x_src + 2·y_src.
      const src = [0, 0.25, 0.75, 1];
      assert.deepEqual(resized.shape, [1, 4, 4]);
      assertClose(resized.dataSync(), src.flatMap((y) => src.map((x) => x + 2 * y)), 1e-6);
      assert.throws(() => heatmaps(map, 0), /positive integer/);
      tf.dispose([map, resized]);
    });
    await useBackend("cpu");
  });
}
