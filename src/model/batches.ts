/**
 * Turning decoded images (HWC float arrays) into NHWC batch tensors.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Stacks `size × size × 3` pixel arrays into one `[n, size, size, 3]` tensor. */
export function toBatch(images: readonly Float32Array[], size: number): tf.Tensor4D {
  return tf.tensor4d(packImages(images, size), [images.length, size, size, 3]);
}

/**
 * Stacks `size × size × 3` pixel arrays into one NHWC array (the layout of {@link toBatch}
 * and of the exported ONNX graphs' input).
 *
 * @throws if an image has another number of values
 */
export function packImages(images: readonly Float32Array[], size: number): Float32Array {
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
  return data;
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
