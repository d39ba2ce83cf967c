/**
 * EfficientAD's patch description network (PDN), the student (and the `random_pdn` teacher):
 *
 *   conv 4×4 pad 3 → ReLU → avgpool 2 stride 2 pad 1 → conv 4×4 pad 3 → ReLU →
 *   avgpool 2 stride 2 pad 1 → conv 3×3 pad 1 → ReLU → conv 4×4 (valid)
 *
 * the padded EfficientAD-S network, layer for layer the same as the PyTorch peer
 * (`nn.AvgPool2d(padding=1)` counts the zero padding, so we pad with zeros and pool "valid").
 * For an input of side S (a multiple of 4) the output side is S/4.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { PdnWidth } from "../config/schema.ts";
import { backendNeedsConvGradWorkaround } from "./backend.ts";
import { conv2d } from "./conv.ts";
import { torchDefaultConvInit } from "./init.ts";

/** Channel widths of the three hidden convolutions per preset (`full` = EfficientAD-S). */
export const PDN_WIDTHS: Readonly<Record<PdnWidth, readonly [number, number, number]>> = {
  full: [128, 256, 256],
  small: [64, 128, 128],
  tiny: [32, 64, 64],
};

/** Kernel sizes and paddings of the four convolutions. */
const LAYERS = [
  { kernel: 4, pad: 3 },
  { kernel: 4, pad: 3 },
  { kernel: 3, pad: 1 },
  { kernel: 4, pad: 0 },
] as const;

/** The PDN's weights: four conv kernels `[kh, kw, in, out]` and their biases. */
export interface PdnParams {
  /** Four conv kernels `[k, k, in, out]`, input side first. */
  kernels: tf.Variable<tf.Rank.R4>[];
  /** The four matching biases `[out]`. */
  biases: tf.Variable<tf.Rank.R1>[];
}

/**
 * A PDN with torch-default (Kaiming-uniform, a = √5) weights drawn from `seed`: the same seed
 * gives the same weights. `trainable = false` makes frozen variables (teachers).
 */
export function createPdn(
  width: PdnWidth,
  outChannels: number,
  seed: number,
  trainable = true,
): PdnParams {
  const widths = PDN_WIDTHS[width];
  if (!widths) throw new Error(`unknown PDN width "${width}" (full, small or tiny)`);
  if (!Number.isInteger(outChannels) || outChannels < 1) {
    throw new Error(`PDN outChannels must be a positive integer, got ${outChannels}`);
  }
  const channels = [3, ...widths, outChannels];
  const params: PdnParams = { kernels: [], biases: [] };
  LAYERS.forEach(({ kernel }, i) => {
    const { weight, bias } = torchDefaultConvInit(
      kernel,
      channels[i],
      channels[i + 1],
      seed * 16 + i,
    );
    params.kernels.push(tf.variable(weight, trainable));
    params.biases.push(tf.variable(bias, trainable));
    tf.dispose([weight, bias]);
  });
  return params;
}

/** Runs the PDN on NHWC `x` `[B, S, S, 3]`; returns `[B, S/4, S/4, outChannels]`. */
export function pdnForward(p: PdnParams, x: tf.Tensor4D): tf.Tensor4D {
  if (x.shape[3] !== 3) throw new Error(`PDN input must have 3 channels, got ${x.shape[3]}`);
  return tf.tidy(() => {
    const convAt = (h: tf.Tensor4D, i: number) =>
      tf.add(conv2d(h, p.kernels[i], 1, LAYERS[i].pad), p.biases[i]) as tf.Tensor4D;
    let h = tf.relu(convAt(x, 0));
    h = avgPoolPadded(h);
    h = tf.relu(convAt(h, 1));
    h = avgPoolPadded(h);
    h = tf.relu(convAt(h, 2));
    return convAt(h, 3);
  });
}

/** Output side of the PDN for input side `inputSize` (torch's floor arithmetic). */
export function pdnOutputSize(inputSize: number): number {
  let size = inputSize + 2 * 3 - 4 + 1; // conv 4×4 pad 3
  size = Math.floor((size + 2 - 2) / 2) + 1; // avgpool 2/2 pad 1
  size = size + 2 * 3 - 4 + 1;
  size = Math.floor((size + 2 - 2) / 2) + 1;
  size = size + 2 - 3 + 1; // conv 3×3 pad 1
  return size - 4 + 1; // conv 4×4 valid
}

/** All eight variables in a fixed order (kernel, bias per layer), for optimisers/checkpoints. */
export function pdnVariables(p: PdnParams): tf.Variable[] {
  return p.kernels.flatMap((kernel, i) => [kernel, p.biases[i]] as tf.Variable[]);
}

/**
 * torch `AvgPool2d(2, 2, padding=1)` with `count_include_pad=True`: zero-pad, pool "valid".
 * On wasm the backward pass skips the pad's gradient (a slow strided Slice of the padded
 * gradient): tfjs's AvgPoolGrad kernel with `pad = 1` spreads dy / 4 over the window cells
 * that exist, which is exactly torch's count_include_pad gradient, at the unpadded size.
 */
export function avgPoolPadded(x: tf.Tensor4D): tf.Tensor4D {
  const forward = (input: tf.Tensor4D) =>
    tf.avgPool(tf.pad(input, [[0, 0], [1, 1], [1, 1], [0, 0]]), 2, 2, "valid");
  if (!backendNeedsConvGradWorkaround()) return forward(x);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const input = args[0] as tf.Tensor4D;
    (args[1] as tf.GradSaveFunc)([input]);
    return {
      value: forward(input),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) =>
        tf.engine().runKernel(
          "AvgPoolGrad",
          { dy, input: saved[0] },
          { filterSize: [2, 2], strides: [2, 2], pad: 1 },
        ) as tf.Tensor4D,
    };
  });
  return op(x) as tf.Tensor4D;
}
