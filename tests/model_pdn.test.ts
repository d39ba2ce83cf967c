import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import {
  avgPoolPadded,
  createPdn,
  PDN_WIDTHS,
  pdnForward,
  pdnOutputSize,
  pdnVariables,
} from "../src/model/pdn.ts";
import type { PdnWidth } from "../src/config/schema.ts";

const WIDTHS = Object.keys(PDN_WIDTHS) as PdnWidth[];

Deno.test("pdnOutputSize is S/4 for multiples of 32", () => {
  for (let s = 32; s <= 1024; s += 32) assert.equal(pdnOutputSize(s), s / 4);
});

Deno.test("PDN output is [b, S/4, S/4, out] for S = 64, 128, 256 and every width", async () => {
  await initBackend("wasm");
  for (const width of WIDTHS) {
    const pdn = createPdn(width, 8, 1);
    for (const size of [64, 128, 256]) {
      const shape = tf.tidy(() => pdnForward(pdn, tf.zeros([1, size, size, 3])).shape);
      assert.deepEqual(shape, [1, size / 4, size / 4, 8], `${width} at ${size}`);
    }
    tf.dispose(pdnVariables(pdn));
  }
});

Deno.test("PDN layer shapes follow the width presets and torch's default init bound", async () => {
  await initBackend("wasm");
  const pdn = createPdn("small", 10, 3);
  assert.deepEqual(pdn.kernels.map((k) => k.shape), [
    [4, 4, 3, 64],
    [4, 4, 64, 128],
    [3, 3, 128, 128],
    [4, 4, 128, 10],
  ]);
  assert.deepEqual(pdn.biases.map((b) => b.shape), [[64], [128], [128], [10]]);
  pdn.kernels.forEach((kernel, i) => {
    const [kh, kw, cin] = kernel.shape;
    const bound = 1 / Math.sqrt(kh * kw * cin);
    const max = Array.from(kernel.dataSync()).reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    assert.ok(max <= bound && max > 0.9 * bound, `layer ${i}: max ${max}, bound ${bound}`);
    assert.ok(Array.from(pdn.biases[i].dataSync()).every((v) => Math.abs(v) <= bound));
  });
  assert.equal(pdnVariables(pdn).length, 8);
  assert.ok(pdnVariables(pdn).every((v) => v.trainable));
  tf.dispose(pdnVariables(pdn));
});

Deno.test("createPdn is reproducible per seed and frozen when asked", async () => {
  await initBackend("wasm");
  const a = createPdn("tiny", 4, 11);
  const b = createPdn("tiny", 4, 11);
  const c = createPdn("tiny", 4, 12, false);
  const values = (p: typeof a) => pdnVariables(p).map((v) => Array.from(v.dataSync()));
  assert.deepEqual(values(a), values(b));
  assert.notDeepEqual(values(a), values(c));
  assert.ok(pdnVariables(c).every((v) => !v.trainable));
  tf.dispose([...pdnVariables(a), ...pdnVariables(b), ...pdnVariables(c)]);
});

Deno.test("PDN avg-pool counts zero padding like torch (count_include_pad)", async () => {
  await initBackend("wasm");
  // conv1 = bias 1 everywhere; conv2/conv3/conv4 pass channel 0 through unchanged (one-hot
  // taps that undo their padding), so the output is pool2(pool1(ones)) with each pool
  // zero-padded. Counting the zeros (torch) gives corner 1/4 · 1/4, edge 2/4 · 2/4 … interior 1;
  // not counting them would give 1 everywhere.
  const pdn = createPdn("tiny", 1, 5);
  const oneHot = (shape: number[], row: number, col: number) => {
    const buffer = tf.buffer(shape);
    buffer.set(1, row, col, 0, 0);
    return buffer.toTensor();
  };
  pdn.kernels[0].assign(tf.zerosLike(pdn.kernels[0]));
  pdn.biases[0].assign(tf.onesLike(pdn.biases[0]));
  pdn.kernels[1].assign(oneHot(pdn.kernels[1].shape, 3, 3) as tf.Tensor4D);
  pdn.kernels[2].assign(oneHot(pdn.kernels[2].shape, 1, 1) as tf.Tensor4D);
  pdn.kernels[3].assign(oneHot(pdn.kernels[3].shape, 0, 0) as tf.Tensor4D);
  for (const bias of pdn.biases.slice(1)) bias.assign(tf.zerosLike(bias));
  const out = tf.tidy(() => pdnForward(pdn, tf.zeros([1, 32, 32, 3])).dataSync());
  assert.equal(out.length, 8 * 8);
  assert.ok(Math.abs(out[0] - 0.25 / 4) < 1e-6, `corner ${out[0]}`);
  assert.ok(Math.abs(out[1] - (0.5 + 0.5) / 4) < 1e-6, `edge ${out[1]}`);
  assert.ok(Math.abs(out[8 + 1] - 1) < 1e-6, `interior ${out[9]}`);
  tf.dispose(pdnVariables(pdn));
});

Deno.test("padded avg-pool gradient on wasm equals the cpu backend's pad + pool gradient", async () => {
  const gradient = async (backend: "wasm" | "cpu", size: number) => {
    await initBackend(backend);
    return tf.tidy(() => {
      const x = tf.randomNormal([2, size, size, 3], 0, 1, "float32", 1) as tf.Tensor4D;
      const r = tf.randomNormal(
        [2, Math.floor(size / 2) + 1, Math.floor(size / 2) + 1, 3],
        0,
        1,
        "float32",
        2,
      );
      const g = tf.grad((t) => avgPoolPadded(t as tf.Tensor4D).mul(r).sum())(x);
      return Array.from(g.dataSync());
    });
  };
  for (const size of [6, 7]) {
    const [onWasm, onCpu] = [await gradient("wasm", size), await gradient("cpu", size)];
    onCpu.forEach((v, i) => assert.ok(Math.abs(onWasm[i] - v) < 1e-6, `S=${size} [${i}]`));
  }
});

Deno.test("PDN training steps keep the tensor count flat", async () => {
  await initBackend("wasm");
  const pdn = createPdn("tiny", 4, 2);
  const optimizer: tf.Optimizer = tf.train.adam(1e-3);
  const x = tf.randomUniform([2, 32, 32, 3]) as tf.Tensor4D;
  const target = tf.randomUniform([2, 8, 8, 4]) as tf.Tensor4D;
  const step = () =>
    tf.tidy(() => {
      const { value, grads } = tf.variableGrads(
        () => tf.losses.meanSquaredError(target, pdnForward(pdn, x)) as tf.Scalar,
        pdnVariables(pdn),
      );
      optimizer.applyGradients(grads);
      return value.dataSync()[0];
    });
  const first = step(); // creates the optimiser's slots
  const before = tf.memory().numTensors;
  let last = first;
  for (let i = 0; i < 5; i++) last = step();
  assert.equal(tf.memory().numTensors, before);
  assert.ok(last < first, `loss ${first} → ${last}`);
  tf.dispose([x, target, ...pdnVariables(pdn)]);
  optimizer.dispose();
});
