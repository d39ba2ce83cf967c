/**
 * Seeded weight initialisation matching PyTorch's `nn.Conv2d` default.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** Freshly drawn (not yet variable) conv weights; the caller owns and disposes them. */
export interface ConvInit {
  /** `[k, k, inChannels, outChannels]`. */
  weight: tf.Tensor4D;
  /** `[outChannels]`. */
  bias: tf.Tensor1D;
}

/**
 * torch's default conv init: Kaiming-uniform with a = √5, i.e. weights and biases uniform in
 * ±1/√fanIn with fanIn = inChannels·k². Deterministic for a given `seed`.
 */
export function torchDefaultConvInit(
  kernel: number,
  inChannels: number,
  outChannels: number,
  seed: number,
): ConvInit {
  const bound = 1 / Math.sqrt(inChannels * kernel * kernel);
  return {
    weight: tf.randomUniform(
      [kernel, kernel, inChannels, outChannels],
      -bound,
      bound,
      "float32",
      `${seed}:weight`,
    ) as tf.Tensor4D,
    bias: tf.randomUniform([outChannels], -bound, bound, "float32", `${seed}:bias`) as tf.Tensor1D,
  };
}
