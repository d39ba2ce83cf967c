/**
 * The speed bench's PDN-only step on ONNX Runtime (`OrtPdnPair`) computes the tfjs `PdnPair`'s
 * step — same networks, loss and Adam — so the two columns and the PyTorch peer time the same
 * work.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { initBackend } from "../src/model/backend.ts";
import { loadOnnxRuntime } from "../src/model/onnx/runtime.ts";
import { OrtPdnPair, PdnPair } from "../bench/pdn_step.ts";
import { pdnVariables } from "../src/model/pdn.ts";

Deno.test("OrtPdnPair's training steps give PdnPair's losses and weights", async () => {
  await initBackend("wasm");
  const loaded = await loadOnnxRuntime();
  assert.ok(loaded.ok, "ORT loads here");
  const size = 32;
  const x = tf.randomUniform([4, size, size, 3], 0, 1, "float32", 5) as tf.Tensor4D;
  const pixels = x.dataSync() as Float32Array;
  const reference = new PdnPair("tiny");
  const ort = await OrtPdnPair.create(loaded.ort, "tiny", size, 1);
  try {
    for (let step = 0; step < 3; step++) {
      const expected = reference.trainStep(x);
      const actual = await ort.trainStep(pixels, 4);
      assert.ok(
        Math.abs(actual - expected) <= 1e-4 * Math.abs(expected),
        `step ${step}: ${actual} vs ${expected}`,
      );
    }
    // Adam's steps (lr 1e-4) moved the weights alike: within 5 % of one step, element-wise.
    const a = pdnVariables(reference.student);
    const b = pdnVariables(ort.student);
    a.forEach((variable, i) => {
      const before = variable.dataSync();
      const after = b[i].dataSync();
      const worst = Math.max(...Array.from(before, (v, j) => Math.abs(v - after[j])));
      assert.ok(worst <= 0.05 * 1e-4, `student variable ${i}: largest difference ${worst}`);
    });
  } finally {
    reference.dispose();
    await ort.dispose();
    x.dispose();
  }
});
