/**
 * The detector's building blocks as ONNX nodes (NCHW), each the exact counterpart of the tfjs
 * op it replaces: convolutions from tfjs `[kh, kw, in, out]` kernels, torch-style padded
 * average pooling, and bilinear resizing with half-pixel centres (tfjs
 * `resizeBilinear(…, halfPixelCenters = true)`, torch `align_corners=False`).
 *
 * @module
 */
import type { GraphBuilder } from "./graph.ts";

/** Explicit zero padding `[top, left, bottom, right]` (ONNX's order). */
export type Pads = [number, number, number, number];

/** A convolution's weights in tfjs layout. */
export interface ConvWeights {
  /** `[kh, kw, in, out]` (or `[kh, kw, in, multiplier]` when depthwise). */
  kernel: Float32Array;
  /** The kernel's shape. */
  shape: readonly [number, number, number, number];
  /** `[out]`, or null for none. */
  bias: Float32Array | null;
}

/** Options of {@link conv}. */
export interface ConvOptions {
  /** Stride on both axes. */
  stride?: number;
  /** Zero padding `[top, left, bottom, right]`. */
  pads?: Pads;
  /** Depthwise: one group per input channel, `multiplier` outputs each. */
  depthwise?: boolean;
  /** Name prefix of the weights and the output. */
  name?: string;
}

/**
 * A convolution node. The kernel becomes ONNX `[out, in/group, kh, kw]`; a depthwise kernel's
 * output channel `c · multiplier + m` is tfjs's order. Returns the output and the weight names
 * (so a following batch normalisation can be folded into them).
 */
export function conv(
  g: GraphBuilder,
  x: string,
  weights: ConvWeights,
  options: ConvOptions = {},
): { output: string; kernel: string; bias: string } {
  const [kh, kw, cin, cout] = weights.shape;
  const depthwise = options.depthwise ?? false;
  const outChannels = depthwise ? cin * cout : cout;
  const oihw = new Float32Array(weights.kernel.length);
  for (let i = 0; i < kh; i++) {
    for (let j = 0; j < kw; j++) {
      for (let c = 0; c < cin; c++) {
        for (let o = 0; o < cout; o++) {
          const from = ((i * kw + j) * cin + c) * cout + o;
          const to = depthwise
            ? ((c * cout + o) * kh + i) * kw + j // [cin·mult, 1, kh, kw]
            : ((o * cin + c) * kh + i) * kw + j; // [out, in, kh, kw]
          oihw[to] = weights.kernel[from];
        }
      }
    }
  }
  const prefix = options.name ?? "conv";
  const kernel = g.floats(
    `${prefix}_w`,
    oihw,
    depthwise ? [outChannels, 1, kh, kw] : [
      cout,
      cin,
      kh,
      kw,
    ],
  );
  const bias = g.floats(`${prefix}_b`, weights.bias ?? new Float32Array(outChannels), [
    outChannels,
  ]);
  const [top, left, bottom, right] = options.pads ?? [0, 0, 0, 0];
  const stride = options.stride ?? 1;
  const output = g.node("Conv", [x, kernel, bias], {
    kernel_shape: [kh, kw],
    strides: [stride, stride],
    pads: [top, left, bottom, right],
    group: depthwise ? cin : 1,
  }, g.fresh(prefix));
  return { output, kernel, bias };
}

/** Symmetric padding `pad` on every side. */
export function same(pad: number): Pads {
  return [pad, pad, pad, pad];
}

/** torch `AvgPool2d(2, 2, padding=1)` (`count_include_pad`), as the PDN uses it. */
export function avgPoolPadded(g: GraphBuilder, x: string): string {
  return g.node("AveragePool", [x], {
    kernel_shape: [2, 2],
    strides: [2, 2],
    pads: [1, 1, 1, 1],
    count_include_pad: 1,
  });
}

/**
 * Bilinear resize of the two spatial axes to `[height, width]` with half-pixel centres and
 * edge clamping (tfjs `resizeBilinear(x, size, false, true)`). Returns `x` when `from` equals
 * the target, as `src/model/resize.ts` does.
 */
export function resizeBilinear(
  g: GraphBuilder,
  x: string,
  from: readonly [number, number],
  to: readonly [number, number],
): string {
  if (from[0] === to[0] && from[1] === to[1]) return x;
  return g.node("Resize", [x, "", "", g.ints("size", [to[0], to[1]])], {
    axes: [2, 3],
    mode: "linear",
    coordinate_transformation_mode: "half_pixel",
  });
}

/** A per-channel constant `[1, C, 1, 1]` for broadcasting over NCHW. */
export function channelConstant(
  g: GraphBuilder,
  prefix: string,
  values: ArrayLike<number>,
): string {
  return g.floats(prefix, Float32Array.from(values), [1, values.length, 1, 1]);
}

/** A scalar float constant. */
export function scalar(g: GraphBuilder, prefix: string, value: number): string {
  return g.floats(prefix, [value], []);
}

/** `x[:, from:to]` along the channel axis. */
export function channelSlice(g: GraphBuilder, x: string, from: number, to: number): string {
  return g.node("Slice", [x, g.ints("starts", [from]), g.ints("ends", [to]), g.ints("axes", [1])]);
}
