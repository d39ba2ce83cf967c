/**
 * 2-D convolution (NHWC, filter `[kh, kw, in, out]`) with torch-style padding and, on the wasm
 * backend, a gradient built only from forward convolutions.
 *
 * Why: tfjs-backend-wasm has no Conv2DBackpropFilter kernel, so tfjs's stock conv gradient
 * fails there, and its Conv2DBackpropInput is slower than a plain XNNPACK forward conv. Both
 * gradients are re-expressed as forward convolutions:
 *  - dW: correlate the input with dy, treating the batch as channels and the input channels as
 *    the batch (input `[Cin, H, W, B]`, "filter" dy as `[Ho, Wo, B, Cout]`, dilated by the
 *    stride), which yields `[Cin, kh, kw, Cout]`.
 *  - dx: correlate dy (zero-dilated by the stride and zero-padded) with the spatially flipped,
 *    in/out-swapped filter.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { backendNeedsConvGradWorkaround } from "./backend.ts";

/** Padding: a number is explicit symmetric zero padding (torch `padding=n`). */
export type ConvPadding = number | "valid" | "same";

/** Zero padding of the two spatial dimensions, in pixels. */
interface SpatialPadding {
  top: number;
  bottom: number;
  left: number;
  right: number;
}

/**
 * Convolves `x` `[B, H, W, Cin]` with `w` `[kh, kw, Cin, Cout]` at `stride` (both axes).
 * The output size follows torch: `floor((H + 2·pad − kh) / stride) + 1` for numeric `pad`.
 * On wasm the gradient is the forward-conv formulation above; elsewhere this is `tf.conv2d`.
 */
export function conv2d(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: ConvPadding,
): tf.Tensor4D {
  validate(x, w, stride, pad);
  if (!backendNeedsConvGradWorkaround()) return tf.conv2d(x, w, stride, pad);
  return convWithForwardGrads(x, w, stride, pad);
}

/**
 * The custom-gradient convolution, usable on any backend (the tests compare it with the cpu
 * backend's stock gradient). Prefer {@link conv2d}, which picks it only where needed.
 */
export function convWithForwardGrads(
  x: tf.Tensor4D,
  w: tf.Tensor4D,
  stride: number,
  pad: ConvPadding,
): tf.Tensor4D {
  validate(x, w, stride, pad);
  const padding = spatialPadding(x.shape, w.shape, stride, pad);
  const op = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const [input, filter] = args as tf.Tensor4D[];
    const save = args[2] as tf.GradSaveFunc;
    save([input, filter]);
    return {
      value: tf.conv2d(input, filter, stride, explicit(padding)),
      gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
        const [savedX, savedW] = saved as tf.Tensor4D[];
        const dy4 = dy as tf.Tensor4D;
        return [
          inputGradient(dy4, savedW, savedX.shape, stride, padding),
          filterGradient(dy4, savedX, savedW.shape, stride, padding),
        ];
      },
    };
  });
  return op(x, w) as tf.Tensor4D;
}

/**
 * dL/dW as a forward conv: out[ci, u, v, co] = Σ_{b,i,j} xpad[b, i·s+u, j·s+v, ci]·dy[b,i,j,co],
 * i.e. x (as `[Cin, H, W, B]`) correlated with dy (as a `[Ho, Wo, B, Cout]` filter) at dilation s.
 */
function filterGradient(
  dy: tf.Tensor4D,
  x: tf.Tensor4D,
  filterShape: [number, number, number, number],
  stride: number,
  p: SpatialPadding,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = filterShape;
    const [, h, w] = x.shape;
    const [, ho, wo] = dy.shape;
    // Bottom/right padding that makes the correlation exactly kh × kw; negative means rows of
    // x that never met the filter (torch's floor in the output size) and are cropped instead.
    const bottom = kh + (ho - 1) * stride - h - p.top;
    const right = kw + (wo - 1) * stride - w - p.left;
    let xT = tf.transpose(x, [3, 1, 2, 0]) as tf.Tensor4D; // [Cin, H, W, B]
    if (bottom < 0 || right < 0) {
      xT = tf.slice(xT, [0, 0, 0, 0], [-1, h + Math.min(bottom, 0), w + Math.min(right, 0), -1]);
    }
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D; // [Ho, Wo, B, Cout]
    const pads: [[0, 0], [number, number], [number, number], [0, 0]] = [
      [0, 0],
      [p.top, Math.max(bottom, 0)],
      [p.left, Math.max(right, 0)],
      [0, 0],
    ];
    const corr = tf.conv2d(xT, dyT, 1, pads, "NHWC", stride); // [Cin, kh, kw, Cout]
    return tf.transpose(corr, [1, 2, 0, 3]) as tf.Tensor4D;
  });
}

/**
 * dL/dx as a forward conv of dy, dilated by the stride (zeros between samples) and padded by
 * `k − 1 − pad`, with the filter flipped in space and its in/out channels swapped.
 */
function inputGradient(
  dy: tf.Tensor4D,
  w: tf.Tensor4D,
  inputShape: [number, number, number, number],
  stride: number,
  p: SpatialPadding,
): tf.Tensor4D {
  return tf.tidy(() => {
    const [kh, kw] = w.shape;
    const [, h, wd] = inputShape;
    const [, ho, wo] = dy.shape;
    const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) as tf.Tensor4D;
    // Dilation leaves (stride − 1) trailing zero rows/cols; the bottom/right padding accounts
    // for them so the result is exactly H × W.
    const dilated = stride > 1 ? dilate(dy, stride) : dy;
    const extra = stride - 1;
    let top = kh - 1 - p.top;
    let left = kw - 1 - p.left;
    let bottom = h + p.top - (ho - 1) * stride - 1 - extra;
    let right = wd + p.left - (wo - 1) * stride - 1 - extra;
    let source = dilated;
    if (top < 0 || left < 0 || bottom < 0 || right < 0) {
      // Padding larger than k − 1 (or rows dropped by the floor): crop instead of padding.
      const [, dh, dw] = dilated.shape;
      const cropTop = Math.max(-top, 0);
      const cropLeft = Math.max(-left, 0);
      source = tf.slice(dilated, [0, cropTop, cropLeft, 0], [
        -1,
        dh - cropTop - Math.max(-bottom, 0),
        dw - cropLeft - Math.max(-right, 0),
        -1,
      ]);
      top = Math.max(top, 0);
      left = Math.max(left, 0);
      bottom = Math.max(bottom, 0);
      right = Math.max(right, 0);
    }
    return tf.conv2d(source, flipped, 1, [[0, 0], [top, bottom], [left, right], [0, 0]]);
  });
}

/** Inserts `stride − 1` zeros after every row and column of `dy` (trailing ones included). */
function dilate(dy: tf.Tensor4D, stride: number): tf.Tensor4D {
  const [b, ho, wo, c] = dy.shape;
  const spread = tf.pad(tf.reshape(dy, [b, ho, 1, wo, 1, c]), [
    [0, 0],
    [0, 0],
    [0, stride - 1],
    [0, 0],
    [0, stride - 1],
    [0, 0],
  ]);
  return tf.reshape(spread, [b, ho * stride, wo * stride, c]);
}

/** The concrete padding tfjs/torch apply for `pad` (tfjs "same" puts the odd pixel last). */
function spatialPadding(
  xShape: [number, number, number, number],
  wShape: [number, number, number, number],
  stride: number,
  pad: ConvPadding,
): SpatialPadding {
  if (typeof pad === "number") return { top: pad, bottom: pad, left: pad, right: pad };
  if (pad === "valid") return { top: 0, bottom: 0, left: 0, right: 0 };
  const along = (size: number, k: number) =>
    Math.max((Math.ceil(size / stride) - 1) * stride + k - size, 0);
  const ph = along(xShape[1], wShape[0]);
  const pw = along(xShape[2], wShape[1]);
  return {
    top: Math.floor(ph / 2),
    bottom: ph - Math.floor(ph / 2),
    left: Math.floor(pw / 2),
    right: pw - Math.floor(pw / 2),
  };
}

function explicit(p: SpatialPadding): [[0, 0], [number, number], [number, number], [0, 0]] {
  return [[0, 0], [p.top, p.bottom], [p.left, p.right], [0, 0]];
}

function validate(x: tf.Tensor4D, w: tf.Tensor4D, stride: number, pad: ConvPadding): void {
  if (x.rank !== 4 || w.rank !== 4) {
    throw new Error(`conv2d: x and w must be rank 4, got ${x.rank} and ${w.rank}`);
  }
  if (x.shape[3] !== w.shape[2]) {
    throw new Error(
      `conv2d: input has ${x.shape[3]} channels but the filter expects ${w.shape[2]}`,
    );
  }
  if (!Number.isInteger(stride) || stride < 1) {
    throw new Error(`conv2d: stride must be a positive integer, got ${stride}`);
  }
  if (typeof pad === "number" && (!Number.isInteger(pad) || pad < 0)) {
    throw new Error(`conv2d: numeric padding must be a non-negative integer, got ${pad}`);
  }
}
