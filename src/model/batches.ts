/**
 * Turning decoded images (HWC float arrays) into NHWC batch tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Stacks `size × size × 3` pixel arrays into one `[n, size, size, 3]` tensor. */
export function toBatch(images: readonly Float32Array[], size: number): tf.Tensor4D {
  const per = size * size * 3;
  const data = new Float32Array(images.length * per);
  images.forEach((pixels, i) => {
    if (pixels.length !== per) {
      throw new Error(
        `image ${i} has ${pixels.length} values, expected ${per} (${size}×${size}×3)`,
      );
    }
    data.set(pixels, i * per);
  });
  return tf.tensor4d(data, [images.length, size, size, 3]);
}

/** Consecutive slices of at most `batchSize` images, as tensors made one at a time. */
export function* batchesOf(
  images: readonly Float32Array[],
  size: number,
  batchSize: number,
): Generator<tf.Tensor4D> {
  for (let start = 0; start < images.length; start += batchSize) {
    const batch = toBatch(images.slice(start, start + batchSize), size);
    try {
      yield batch;
    } finally {
      batch.dispose();
    }
  }
}
