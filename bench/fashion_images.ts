/**
 * Fashion-MNIST images as detector input: 28×28 greyscale bytes → `size × size × 3` float
 * pixels in [0, 1] (bilinear upscaling, grey copied to R, G and B).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { FASHION_MNIST_SIDE } from "../src/data/fashion_mnist.ts";

/** Images converted per tensor op (bounds the temporary memory). */
const CHUNK = 256;

/** Converts greyscale Fashion-MNIST images to RGB float arrays of side `size`. */
export function greyToRgbImages(greys: readonly Uint8Array[], size: number): Float32Array[] {
  const side = FASHION_MNIST_SIDE;
  const out: Float32Array[] = [];
  for (let start = 0; start < greys.length; start += CHUNK) {
    const chunk = greys.slice(start, start + CHUNK);
    const bytes = new Uint8Array(chunk.length * side * side);
    chunk.forEach((grey, i) => {
      if (grey.length !== side * side) {
        throw new RangeError(`image ${start + i} has ${grey.length} pixels, expected ${side ** 2}`);
      }
      bytes.set(grey, i * side * side);
    });
    const pixels = tf.tidy(() => {
      const grey = tf.tensor4d(bytes, [chunk.length, side, side, 1], "int32").toFloat().div(255);
      const resized = size === side
        ? grey
        : tf.image.resizeBilinear(grey as tf.Tensor4D, [size, size], false, true);
      return tf.tile(tf.clipByValue(resized, 0, 1), [1, 1, 1, 3]);
    });
    const data = pixels.dataSync() as Float32Array;
    pixels.dispose();
    const per = size * size * 3;
    for (let i = 0; i < chunk.length; i++) out.push(data.slice(i * per, (i + 1) * per));
  }
  return out;
}
