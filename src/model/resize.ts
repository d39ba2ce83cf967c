/**
 * Bilinear resizing with torch's `F.interpolate(mode="bilinear", align_corners=False)`
 * semantics and a correct gradient on every backend.
 *
 * Why: tfjs 4.22's ResizeBilinearGrad kernels (cpu and wasm) ignore `halfPixelCenters`, so the
 * stock gradient of `tf.image.resizeBilinear(x, size, false, true)` is wrong. The forward pass
 * uses the backend kernel; the backward pass applies the transposed interpolation matrices
 * (bilinear resizing is separable: y = A_h · x · A_wᵀ per channel).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/**
 * Resizes NHWC `x` to `[height, width]` (half-pixel centres, edge-clamped, like torch).
 * Returns `x` itself when the size is unchanged. Differentiable with respect to `x`.
 */
export function resizeBilinear(x: tf.Tensor4D, size: readonly [number, number]): tf.Tensor4D {
  const [height, width] = size;
  if (!Number.isInteger(height) || !Number.isInteger(width) || height < 1 || width < 1) {
    throw new Error(`resizeBilinear: size must be positive integers, got [${height}, ${width}]`);
  }
  const [, inHeight, inWidth] = x.shape;
  if (inHeight === height && inWidth === width) return x;
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    return {
      value: tf.image.resizeBilinear(input, [height, width], false, true),
      gradFunc: (dy: tf.Tensor) => resizeBilinearBackward(dy as tf.Tensor4D, inHeight, inWidth),
    };
  });
  return op(x) as tf.Tensor4D;
}

/**
 * The interpolation matrix `[outSize, inSize]` of torch's 1-D linear resize with
 * `align_corners=False`: row i holds the weights of output sample i over the input samples.
 */
export function interpolationMatrix(inSize: number, outSize: number): Float32Array {
  const matrix = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let i = 0; i < outSize; i++) {
    const source = Math.max((i + 0.5) * scale - 0.5, 0);
    const lower = Math.min(Math.floor(source), inSize - 1);
    const upper = Math.min(lower + 1, inSize - 1);
    const fraction = source - lower;
    matrix[i * inSize + lower] += 1 - fraction;
    matrix[i * inSize + upper] += fraction;
  }
  return matrix;
}

/** dx = A_hᵀ · dy · A_w, applied one spatial axis at a time with plain matmuls. */
function resizeBilinearBackward(dy: tf.Tensor4D, inHeight: number, inWidth: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [batch, outHeight, outWidth, channels] = dy.shape;
    const rowsT = tf.tensor2d(interpolationMatrix(inHeight, outHeight), [outHeight, inHeight])
      .transpose();
    const colsT = tf.tensor2d(interpolationMatrix(inWidth, outWidth), [outWidth, inWidth])
      .transpose();
    // Height: [Ho, B·Wo·C] → [H, B·Wo·C].
    const byRows = tf.reshape(tf.transpose(dy, [1, 0, 2, 3]), [outHeight, -1]);
    const rowsDone = tf.reshape(tf.matMul(rowsT, byRows), [inHeight, batch, outWidth, channels]);
    // Width: [Wo, H·B·C] → [W, H·B·C].
    const byCols = tf.reshape(tf.transpose(rowsDone, [2, 0, 1, 3]), [outWidth, -1]);
    const colsDone = tf.reshape(tf.matMul(colsT, byCols), [inWidth, inHeight, batch, channels]);
    return tf.transpose(colsDone, [2, 1, 0, 3]) as tf.Tensor4D;
  });
}
