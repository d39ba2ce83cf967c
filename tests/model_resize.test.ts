import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import { interpolationMatrix, resizeBilinear } from "../src/model/resize.ts";

/** y = A_h · x · A_wᵀ with plain tf ops: the reference forward (and, via tf.grad, backward). */
function resizeViaMatrices(x: tf.Tensor4D, height: number, width: number): tf.Tensor4D {
  const [b, h, w, c] = x.shape;
  const rows = tf.tensor2d(interpolationMatrix(h, height), [height, h]);
  const cols = tf.tensor2d(interpolationMatrix(w, width), [width, w]);
  const byRows = tf.matMul(rows, tf.reshape(tf.transpose(x, [1, 0, 2, 3]), [h, -1]));
  const byCols = tf.matMul(
    cols,
    tf.reshape(tf.transpose(tf.reshape(byRows, [height, b, w, c]), [2, 0, 1, 3]), [w, -1]),
  );
  return tf.transpose(tf.reshape(byCols, [width, height, b, c]), [2, 1, 0, 3]);
}

Deno.test("interpolationMatrix follows torch align_corners=False (half-pixel, clamped)", () => {
  // 2 → 4: sources −0.25, 0.25, 0.75, 1.25 → clamp, 0.75/0.25, 0.25/0.75, clamp.
  assert.deepEqual(
    Array.from(interpolationMatrix(2, 4)),
    [1, 0, 0.75, 0.25, 0.25, 0.75, 0, 1],
  );
  // 4 → 2: the mean of each pair (no antialiasing, like torch).
  assert.deepEqual(Array.from(interpolationMatrix(4, 2)), [0.5, 0.5, 0, 0, 0, 0, 0.5, 0.5]);
  // 1 → 3: everything from the single sample.
  assert.deepEqual(Array.from(interpolationMatrix(1, 3)), [1, 1, 1]);
});

Deno.test("resizeBilinear forward and gradient match the matrix formulation", async () => {
  for (const backend of ["wasm", "cpu"] as const) {
    await initBackend(backend);
    for (const [from, to] of [[1, 3], [4, 8], [9, 15], [33, 63], [16, 8], [13, 5]]) {
      tf.tidy(() => {
        const x = tf.randomNormal([2, from, from + 1, 3], 0, 1, "float32", 1) as tf.Tensor4D;
        const r = tf.randomNormal([2, to, to + 2, 3], 0, 1, "float32", 2);
        const y = resizeBilinear(x, [to, to + 2]);
        const yRef = resizeViaMatrices(x, to, to + 2);
        const g = tf.grad((t) => resizeBilinear(t as tf.Tensor4D, [to, to + 2]).mul(r).sum())(x);
        const gRef = tf.grad((t) => resizeViaMatrices(t as tf.Tensor4D, to, to + 2).mul(r).sum())(
          x,
        );
        const what = `${backend} ${from}→${to}`;
        assert.ok(tf.abs(y.sub(yRef)).max().dataSync()[0] < 1e-4, `${what} forward`);
        assert.ok(tf.abs(g.sub(gRef)).max().dataSync()[0] < 1e-4, `${what} gradient`);
      });
    }
  }
});

Deno.test("tf's own resizeBilinear gradient ignores halfPixelCenters (why resize.ts exists)", async () => {
  await initBackend("cpu");
  tf.tidy(() => {
    const x = tf.randomNormal([1, 4, 4, 1], 0, 1, "float32", 1) as tf.Tensor4D;
    const stock = tf.grad((t) =>
      tf.image.resizeBilinear(t as tf.Tensor4D, [8, 8], false, true).sum()
    )(x);
    const ours = tf.grad((t) => resizeBilinear(t as tf.Tensor4D, [8, 8]).sum())(x);
    // Each input pixel of a 2× half-pixel upsample feeds exactly 4 outputs' worth of weight.
    assert.ok(tf.abs(ours.sub(4)).max().dataSync()[0] < 1e-5);
    assert.ok(tf.abs(stock.sub(ours)).max().dataSync()[0] > 0.1);
  });
});

Deno.test("resizeBilinear to the same size is the identity", async () => {
  await initBackend("wasm");
  const x = tf.randomNormal([1, 5, 5, 2]) as tf.Tensor4D;
  assert.equal(resizeBilinear(x, [5, 5]), x);
  assert.throws(() => resizeBilinear(x, [0, 5]), /positive integers/);
  x.dispose();
});
