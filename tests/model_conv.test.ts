import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import { conv2d, type ConvPadding, convWithForwardGrads } from "../src/model/conv.ts";

interface Case {
  x: [number, number, number, number];
  w: [number, number, number, number];
  stride: number;
  pad: ConvPadding;
}

const CASES: Case[] = [
  { x: [2, 9, 9, 3], w: [4, 4, 3, 5], stride: 1, pad: 3 }, // PDN conv1/conv2
  { x: [2, 7, 7, 4], w: [3, 3, 4, 6], stride: 1, pad: 1 }, // PDN conv3
  { x: [3, 8, 8, 5], w: [4, 4, 5, 4], stride: 1, pad: "valid" }, // PDN conv4
  { x: [2, 16, 16, 3], w: [4, 4, 3, 8], stride: 2, pad: 1 }, // AE encoder
  { x: [2, 9, 11, 3], w: [4, 4, 3, 2], stride: 2, pad: 1 }, // odd sizes: torch floor drops a row
  { x: [1, 10, 10, 2], w: [3, 3, 2, 3], stride: 2, pad: "same" },
  { x: [2, 6, 6, 3], w: [4, 4, 3, 4], stride: 1, pad: 2 }, // AE decoder (grows by one)
  { x: [2, 8, 8, 4], w: [8, 8, 4, 3], stride: 1, pad: "valid" }, // AE bottleneck to 1×1
  { x: [1, 7, 7, 2], w: [2, 2, 2, 2], stride: 1, pad: 3 }, // pad > k − 1: crops in dx
];

/** Values, dx and dW of sum(conv(x, w) · r) for a fixed random r. */
function gradients(
  c: Case,
  convolve: (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D,
): { y: Float32Array; dx: Float32Array; dw: Float32Array } {
  return tf.tidy(() => {
    const x = tf.randomNormal(c.x, 0, 1, "float32", 1) as tf.Tensor4D;
    const w = tf.randomNormal(c.w, 0, 1, "float32", 2) as tf.Tensor4D;
    const y = convolve(x, w);
    const r = tf.randomNormal(y.shape, 0, 1, "float32", 3);
    const [dx, dw] = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
      convolve(a as tf.Tensor4D, b as tf.Tensor4D).mul(r).sum()
    )([x, w]);
    return {
      y: y.dataSync() as Float32Array,
      dx: dx.dataSync() as Float32Array,
      dw: dw.dataSync() as Float32Array,
    };
  });
}

function assertClose(actual: Float32Array, expected: Float32Array, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  let scale = 0;
  for (const v of expected) scale = Math.max(scale, Math.abs(v));
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i] - expected[i]);
    assert.ok(diff <= 1e-4 * Math.max(1, scale), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test("custom conv gradient on wasm matches the cpu backend's stock gradient", async () => {
  for (const c of CASES) {
    await initBackend("cpu");
    const stock = gradients(c, (x, w) => tf.conv2d(x, w, c.stride, c.pad));
    await initBackend("wasm");
    const custom = gradients(c, (x, w) => conv2d(x, w, c.stride, c.pad));
    const what = JSON.stringify(c);
    assertClose(custom.y, stock.y, `${what} y`);
    assertClose(custom.dx, stock.dx, `${what} dx`);
    assertClose(custom.dw, stock.dw, `${what} dW`);
  }
});

Deno.test("forced custom gradient on cpu equals the stock gradient (same backend)", async () => {
  await initBackend("cpu");
  for (const c of CASES.slice(0, 4)) {
    const stock = gradients(c, (x, w) => tf.conv2d(x, w, c.stride, c.pad));
    const custom = gradients(c, (x, w) => convWithForwardGrads(x, w, c.stride, c.pad));
    assertClose(custom.dx, stock.dx, `${JSON.stringify(c)} dx`);
    assertClose(custom.dw, stock.dw, `${JSON.stringify(c)} dW`);
  }
});

Deno.test("conv2d rejects mismatched channels and bad padding clearly", async () => {
  await initBackend("wasm");
  const x = tf.zeros([1, 4, 4, 3]) as tf.Tensor4D;
  const w = tf.zeros([3, 3, 2, 1]) as tf.Tensor4D;
  assert.throws(() => conv2d(x, w, 1, 1), /3 channels but the filter expects 2/);
  const w3 = tf.zeros([3, 3, 3, 1]) as tf.Tensor4D;
  assert.throws(() => conv2d(x, w3, 1, -1), /non-negative integer/);
  assert.throws(() => conv2d(x, w3, 0, 1), /stride/);
  tf.dispose([x, w, w3]);
});

Deno.test("conv2d gradient leaks no tensors", async () => {
  await initBackend("wasm");
  const x = tf.randomNormal([2, 8, 8, 3]) as tf.Tensor4D;
  const w = tf.variable(tf.randomNormal([4, 4, 3, 4]));
  const before = tf.memory().numTensors;
  for (let i = 0; i < 3; i++) {
    const { value, grads } = tf.variableGrads(
      () => conv2d(x, w as tf.Variable<tf.Rank.R4>, 2, 1).square().mean(),
      [w],
    );
    tf.dispose([value, grads]);
  }
  assert.equal(tf.memory().numTensors, before);
  tf.dispose([x, w]);
});
