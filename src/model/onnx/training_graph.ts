/**
 * Training as two ONNX inference graphs (onnxruntime-node has no training API): a forward graph
 * that runs the trainable networks and returns, beside their outputs, the activations the
 * backward pass needs, and a backward graph that takes those activations and the gradients of
 * the loss w.r.t. the networks' outputs and returns every parameter's gradient. Weights are
 * graph inputs (tfjs layout `[kh, kw, in, out]`), so one pair of sessions serves every step.
 *
 * Both trainable networks (the PDN and the autoencoder) are chains, so each is described as a
 * list of layers and differentiated layer by layer:
 *  - conv: dW as a convolution of the input (batch and channels swapped) with dy as the
 *    kernel, dilated by the stride; dx as ConvTranspose with the same kernel (the exact adjoint
 *    of Conv); db as a sum of dy;
 *  - ReLU: dy · sign(output); dropout: dy · mask (the mask is an input, drawn by tfjs);
 *  - torch's padded 2×2 average pool: dy / 4 spread over each window, padding cropped;
 *  - bilinear resize (half-pixel centres): the transposed interpolation matrices of
 *    `src/model/resize.ts`, as two MatMuls.
 *
 * @module
 */
import { AUTOENCODER_DROPOUT_LAYERS, type AutoencoderParams } from "../autoencoder.ts";
import type { PdnParams } from "../pdn.ts";
import { interpolationMatrix } from "../resize.ts";
import { GraphBuilder } from "./graph.ts";
import { scalar } from "./ops.ts";

/** One layer of a chain network. `kernel`/`bias` index the trainable parameter list. */
export type ChainLayer =
  | {
    kind: "conv";
    kernel: number;
    bias: number;
    size: number;
    inChannels: number;
    outChannels: number;
    stride: number;
    pad: number;
  }
  | { kind: "relu" }
  | { kind: "avgpool" }
  | { kind: "resize"; side: number }
  | { kind: "dropout"; mask: number };

/** A chain network and the shape of its input `[C, H, W]` (batch left dynamic). */
export interface Chain {
  /** Name prefix of its values (e.g. `student`). */
  name: string;
  /** Its layers, input side first. */
  layers: ChainLayer[];
  /** Input `[C, H, W]`. */
  input: [number, number, number];
}

/** Shape `[C, H, W]` after each layer of `chain` (index 0 is the input). */
export function chainShapes(chain: Chain): [number, number, number][] {
  const shapes: [number, number, number][] = [chain.input];
  for (const layer of chain.layers) {
    const [c, h, w] = shapes[shapes.length - 1];
    switch (layer.kind) {
      case "conv": {
        if (c !== layer.inChannels) {
          throw new Error(`${chain.name}: conv expects ${layer.inChannels} channels, got ${c}`);
        }
        const out = (n: number) => Math.floor((n + 2 * layer.pad - layer.size) / layer.stride) + 1;
        shapes.push([layer.outChannels, out(h), out(w)]);
        break;
      }
      case "avgpool":
        shapes.push([c, Math.floor(h / 2) + 1, Math.floor(w / 2) + 1]);
        break;
      case "resize":
        shapes.push([c, layer.side, layer.side]);
        break;
      default:
        shapes.push([c, h, w]);
    }
  }
  return shapes;
}

/** The PDN of `src/model/pdn.ts` as a chain; its eight variables start at `paramBase`. */
export function pdnChain(
  p: PdnParams,
  name: string,
  imageSize: number,
  paramBase: number,
): Chain {
  const pads = [3, 3, 1, 0];
  const conv = (i: number): ChainLayer => {
    const [size, , inChannels, outChannels] = p.kernels[i].shape;
    return {
      kind: "conv",
      kernel: paramBase + 2 * i,
      bias: paramBase + 2 * i + 1,
      size,
      inChannels,
      outChannels,
      stride: 1,
      pad: pads[i],
    };
  };
  return {
    name,
    input: [3, imageSize, imageSize],
    layers: [
      conv(0),
      { kind: "relu" },
      { kind: "avgpool" },
      conv(1),
      { kind: "relu" },
      { kind: "avgpool" },
      conv(2),
      { kind: "relu" },
      conv(3),
    ],
  };
}

/**
 * The autoencoder of `src/model/autoencoder.ts` in training mode (dropout masks 0…5 as inputs)
 * as a chain; its 28 variables start at `paramBase`. A resize to the side it already has is
 * left out, as `resizeBilinear` returns its input then.
 */
export function autoencoderChain(p: AutoencoderParams, paramBase: number): Chain {
  const layers: ChainLayer[] = [];
  const all = [...p.encoder, ...p.decoder];
  const conv = (index: number, stride: number, pad: number) => {
    const [size, , inChannels, outChannels] = all[index].kernel.shape;
    layers.push({
      kind: "conv",
      kernel: paramBase + 2 * index,
      bias: paramBase + 2 * index + 1,
      size,
      inChannels,
      outChannels,
      stride,
      pad,
    });
  };
  p.encoder.forEach((_, i) => {
    if (i === p.encoder.length - 1) conv(i, 1, 0);
    else {
      conv(i, 2, 1);
      layers.push({ kind: "relu" });
    }
  });
  const chain: Chain = { name: "ae", input: [3, p.imageSize, p.imageSize], layers };
  const resizeTo = (side: number) => {
    const shapes = chainShapes(chain);
    if (shapes[shapes.length - 1][1] !== side) layers.push({ kind: "resize", side });
  };
  for (let i = 0; i < AUTOENCODER_DROPOUT_LAYERS; i++) {
    resizeTo(p.upsampleSizes[i]);
    conv(p.encoder.length + i, 1, 2);
    layers.push({ kind: "relu" }, { kind: "dropout", mask: i });
  }
  resizeTo(p.upsampleSizes[6]);
  conv(p.encoder.length + 6, 1, 1);
  layers.push({ kind: "relu" });
  conv(p.encoder.length + 7, 1, 1);
  return chain;
}

/** The NHWC shapes `[H, W, C]` of a chain's dropout masks, in mask order. */
export function dropoutMaskShapes(chain: Chain): [number, number, number][] {
  const shapes = chainShapes(chain);
  const masks: [number, number, number][] = [];
  chain.layers.forEach((layer, i) => {
    if (layer.kind === "dropout") {
      const [c, h, w] = shapes[i];
      masks[layer.mask] = [h, w, c];
    }
  });
  return masks;
}

/** Graph value names shared by a forward and a backward graph. */
export interface TrainingNames {
  /** Parameter inputs, in parameter order (tfjs layout). */
  params: string[];
  /** Dropout mask inputs (NHWC), in mask order. */
  masks: string[];
}

/** Declares the parameter inputs (tfjs layout) and returns the ONNX-layout (OIHW) kernels. */
export function declareParams(
  g: GraphBuilder,
  shapes: readonly (readonly number[])[],
): { names: string[]; onnx: string[] } {
  const names = shapes.map((shape, i) => g.input(`param_${i}`, [...shape]));
  const onnx = names.map((name, i) =>
    shapes[i].length === 4 ? g.node("Transpose", [name], { perm: [3, 2, 0, 1] }) : name
  );
  return { names, onnx };
}

/** Declares NHWC mask inputs and returns them as NCHW values. */
export function declareMasks(
  g: GraphBuilder,
  shapes: readonly [number, number, number][],
): { names: string[]; nchw: string[] } {
  const names = shapes.map((shape, i) => g.input(`mask_${i}`, ["batch", ...shape]));
  return {
    names,
    nchw: names.map((name) => g.node("Transpose", [name], { perm: [0, 3, 1, 2] })),
  };
}

/** Name of the saved activation after layer `index` of `chain` (index 0: the input). */
function savedName(chain: Chain, index: number): string {
  return `${chain.name}_saved_${index}`;
}

/** Names of the activations a chain's forward graph returns for its backward graph. */
export function savedValues(chain: Chain): string[] {
  return savedIndices(chain).map((index) => savedName(chain, index));
}

/** The activations the backward pass reads: conv inputs (but the chain's input) and ReLU outputs. */
function savedIndices(chain: Chain): number[] {
  const saved = new Set<number>();
  chain.layers.forEach((layer, i) => {
    if (layer.kind === "conv" && i > 0) saved.add(i);
    if (layer.kind === "relu") saved.add(i + 1);
  });
  return [...saved].sort((a, b) => a - b);
}

/**
 * Appends the chain's forward pass on `input` (NCHW) and declares every saved activation a
 * graph output. Returns the chain's output value.
 */
export function chainForward(
  g: GraphBuilder,
  chain: Chain,
  input: string,
  params: readonly string[],
  masks: readonly string[],
): string {
  const shapes = chainShapes(chain);
  const saved = new Set(savedIndices(chain));
  let value = input;
  chain.layers.forEach((layer, i) => {
    const out = saved.has(i + 1) ? savedName(chain, i + 1) : undefined;
    switch (layer.kind) {
      case "conv":
        value = g.node("Conv", [value, params[layer.kernel], params[layer.bias]], {
          kernel_shape: [layer.size, layer.size],
          strides: [layer.stride, layer.stride],
          pads: [layer.pad, layer.pad, layer.pad, layer.pad],
        }, out);
        break;
      case "relu":
        value = g.node("Relu", [value], {}, out);
        break;
      case "avgpool":
        value = g.node("AveragePool", [value], {
          kernel_shape: [2, 2],
          strides: [2, 2],
          pads: [1, 1, 1, 1],
          count_include_pad: 1,
        }, out);
        break;
      case "resize":
        value = g.node("Resize", [value, "", "", g.ints("size", [layer.side, layer.side])], {
          axes: [2, 3],
          mode: "linear",
          coordinate_transformation_mode: "half_pixel",
        }, out);
        break;
      case "dropout":
        value = g.node("Mul", [value, masks[layer.mask]], {}, out);
        break;
    }
  });
  for (const index of saved) {
    g.output(savedName(chain, index), savedName(chain, index), dims(shapes[index]));
  }
  return value;
}

/** Declares the chain's saved activations as inputs of a backward graph. */
export function declareSaved(g: GraphBuilder, chain: Chain): void {
  const shapes = chainShapes(chain);
  for (const index of savedIndices(chain)) g.input(savedName(chain, index), dims(shapes[index]));
}

/**
 * Appends the chain's backward pass from `gradOut` (dL/d output, NCHW) and returns the
 * gradient value of every parameter it uses, keyed by parameter index, in tfjs layout. `input`
 * is the chain's input (read by the first convolution's filter gradient); no gradient flows
 * into it.
 */
export function chainBackward(
  g: GraphBuilder,
  chain: Chain,
  input: string,
  gradOut: string,
  params: readonly string[],
  masks: readonly string[],
): Map<number, string> {
  const shapes = chainShapes(chain);
  const grads = new Map<number, string>();
  let dy = gradOut;
  for (let i = chain.layers.length - 1; i >= 0; i--) {
    const layer = chain.layers[i];
    const inShape = shapes[i];
    const outShape = shapes[i + 1];
    switch (layer.kind) {
      case "conv": {
        const x = i === 0 ? input : savedName(chain, i);
        grads.set(layer.kernel, convFilterGrad(g, x, dy, layer, inShape, outShape));
        grads.set(
          layer.bias,
          g.node("ReduceSum", [dy, g.ints("axes", [0, 2, 3])], { keepdims: 0 }),
        );
        if (i > 0) dy = convInputGrad(g, dy, params[layer.kernel], layer, inShape, outShape);
        break;
      }
      case "relu": {
        // ReLU's gradient: dy where the output is > 0 (faster in ORT than dy · sign(output)).
        const zero = scalar(g, "zero", 0);
        dy = g.node("Where", [g.node("Greater", [savedName(chain, i + 1), zero]), dy, zero]);
        break;
      }
      case "dropout":
        dy = g.node("Mul", [dy, masks[layer.mask]]);
        break;
      case "avgpool":
        dy = avgPoolGrad(g, dy, inShape, outShape);
        break;
      case "resize":
        dy = resizeGrad(g, dy, inShape, outShape);
        break;
    }
    if (i === 0) break;
  }
  return grads;
}

type ConvLayer = Extract<ChainLayer, { kind: "conv" }>;

/**
 * dL/dW[o, c, u, v] = Σ_{n,y,x} xpad[n, c, y·s + u, x·s + v] · dy[n, o, y, x]: a convolution
 * of x as `[C, N, H, W]` with dy as an `[O, N, Ho, Wo]` kernel dilated by the stride, then
 * `[C, O, k, k]` → tfjs `[k, k, C, O]`.
 */
function convFilterGrad(
  g: GraphBuilder,
  x: string,
  dy: string,
  layer: ConvLayer,
  inShape: readonly number[],
  outShape: readonly number[],
): string {
  const [, h, w] = inShape;
  const [, ho, wo] = outShape;
  const { size: k, stride: s, pad: p } = layer;
  // End padding that makes the correlation exactly k × k; negative means rows of x the
  // filter never met (torch's floor in the output size), cropped instead.
  const bottom = k - h - p + (ho - 1) * s;
  const right = k - w - p + (wo - 1) * s;
  let source = g.node("Transpose", [x], { perm: [1, 0, 2, 3] });
  if (bottom < 0 || right < 0) {
    source = g.node("Slice", [
      source,
      g.ints("starts", [0, 0]),
      g.ints("ends", [h + Math.min(bottom, 0), w + Math.min(right, 0)]),
      g.ints("axes", [2, 3]),
    ]);
  }
  const kernel = g.node("Transpose", [dy], { perm: [1, 0, 2, 3] });
  const corr = g.node("Conv", [source, kernel], {
    dilations: [s, s],
    strides: [1, 1],
    pads: [p, p, Math.max(bottom, 0), Math.max(right, 0)],
    kernel_shape: [ho, wo],
  });
  return g.node("Transpose", [corr], { perm: [2, 3, 0, 1] });
}

/**
 * dL/dx of a convolution. Stride 1: a convolution of dy, padded by k − 1 − pad, with the kernel
 * flipped in space and its in/out channels swapped (ORT runs it about twice as fast as
 * ConvTranspose); larger strides: ConvTranspose with the same OIHW kernel, strides and pads
 * (the exact adjoint of Conv).
 */
function convInputGrad(
  g: GraphBuilder,
  dy: string,
  kernel: string,
  layer: ConvLayer,
  inShape: readonly number[],
  outShape: readonly number[],
): string {
  const { size: k, stride: s, pad: p } = layer;
  if (s === 1 && p <= k - 1) {
    const swapped = g.node("Transpose", [kernel], { perm: [1, 0, 2, 3] });
    const flipped = g.node("Slice", [
      swapped,
      g.ints("starts", [-1, -1]),
      g.ints("ends", [-k - 1, -k - 1]),
      g.ints("axes", [2, 3]),
      g.ints("steps", [-1, -1]),
    ]);
    const q = k - 1 - p;
    return g.node("Conv", [dy, flipped], {
      kernel_shape: [k, k],
      strides: [1, 1],
      pads: [q, q, q, q],
    });
  }
  const extra = (n: number, o: number) => n - ((o - 1) * s + k - 2 * p);
  const extraH = extra(inShape[1], outShape[1]);
  const extraW = extra(inShape[2], outShape[2]);
  if (extraH < 0 || extraW < 0 || extraH >= s || extraW >= s) {
    throw new Error(`conv input gradient: unsupported geometry ${JSON.stringify(layer)}`);
  }
  return g.node("ConvTranspose", [dy, kernel], {
    kernel_shape: [k, k],
    strides: [s, s],
    pads: [p, p, p, p],
    output_padding: [extraH, extraW],
  });
}

/**
 * Gradient of torch's `AvgPool2d(2, 2, padding=1)` (`count_include_pad`): each output's dy / 4
 * on its 2 × 2 window (the windows tile the padded input), the padding cropped off.
 */
function avgPoolGrad(
  g: GraphBuilder,
  dy: string,
  inShape: readonly number[],
  outShape: readonly number[],
): string {
  // A depthwise 2 × 2 ConvTranspose of constant 1/4 (stride 2) spreads each dy over its window;
  // its pads crop the zero padding: 1 at the start, 2·Ho − 1 − H at the end.
  const [c, h, w] = inShape;
  const [, ho, wo] = outShape;
  const quarter = g.floats("pool_grad", new Float32Array(c * 4).fill(0.25), [c, 1, 2, 2]);
  return g.node("ConvTranspose", [dy, quarter], {
    kernel_shape: [2, 2],
    strides: [2, 2],
    group: c,
    pads: [1, 1, 2 * ho - 1 - h, 2 * wo - 1 - w],
  });
}

/** Gradient of a half-pixel bilinear resize: dx = A_hᵀ · dy · A_w (per sample and channel). */
function resizeGrad(
  g: GraphBuilder,
  dy: string,
  inShape: readonly number[],
  outShape: readonly number[],
): string {
  const [, h, w] = inShape;
  const [, ho, wo] = outShape;
  const rows = interpolationMatrix(h, ho); // [ho, h]
  const rowsT = new Float32Array(h * ho);
  for (let i = 0; i < ho; i++) for (let j = 0; j < h; j++) rowsT[j * ho + i] = rows[i * h + j];
  const cols = interpolationMatrix(w, wo); // [wo, w]
  const byRows = g.node("MatMul", [g.floats("resize_rows_t", rowsT, [h, ho]), dy]);
  return g.node("MatMul", [byRows, g.floats("resize_cols", cols, [wo, w])]);
}

function dims(shape: readonly number[]): (number | string)[] {
  return ["batch", ...shape];
}

/** A chain in a training graph pair, and what it reads. */
export interface TrainedChain {
  /** The network. */
  chain: Chain;
  /** `raw`: the NCHW images in [0, 1]; `network`: mapped to [-1, 1] (the detector's input). */
  input: "raw" | "network";
}

/** What to build: the trainable chains, their parameters, and an optional frozen teacher. */
export interface TrainingGraphSpec {
  /** Input side S. */
  imageSize: number;
  /** Every trainable parameter's tfjs shape, in parameter order. */
  paramShapes: readonly (readonly number[])[];
  /** The chains (their layers index `paramShapes`). */
  chains: readonly TrainedChain[];
  /**
   * A frozen network on the raw NCHW images whose NHWC output `teacher_out` the forward graph
   * also returns (the teacher's features), with its output `[C, H, W]`.
   */
  teacher?: { append: (g: GraphBuilder, raw: string) => string; shape: [number, number, number] };
  /** Name written into the models. */
  label: string;
}

/** A forward/backward graph pair and the names that connect them. */
export interface TrainingGraphs {
  /** Serialised forward model: images, params, masks → chain outputs, saved activations. */
  forward: Uint8Array;
  /** Serialised backward model: images, params, masks, saved, output gradients → param gradients. */
  backward: Uint8Array;
  /** Image input of both (`[B, S, S, 3]` NHWC in [0, 1]). */
  images: string;
  /** Parameter inputs of both, in parameter order. */
  params: string[];
  /** Dropout mask inputs of both (NHWC), in mask order, with their `[H, W, C]` shapes. */
  masks: { name: string; shape: [number, number, number] }[];
  /** Per chain, in spec order: its NHWC output (forward) and that output's gradient (backward). */
  outputs: { output: string; gradient: string; shape: [number, number, number] }[];
  /** The teacher's NHWC output, when the spec has a teacher. */
  teacherOut: string | null;
  /** Forward outputs the backward graph takes as inputs, under the same names. */
  saved: string[];
  /** Backward outputs: one gradient per parameter, in parameter order (tfjs layout). */
  gradients: string[];
}

/** Builds the forward and backward graphs of `spec`. */
export function buildTrainingGraphs(spec: TrainingGraphSpec): TrainingGraphs {
  const graph = () => new GraphBuilder();
  const size = spec.imageSize;
  const maskShapes: [number, number, number][] = [];
  for (const { chain } of spec.chains) {
    dropoutMaskShapes(chain).forEach((shape, i) => (maskShapes[i] = shape));
  }
  const inputsOf = (g: GraphBuilder) => {
    const images = g.input("images", ["batch", size, size, 3]);
    const raw = g.node("Transpose", [images], { perm: [0, 3, 1, 2] });
    const network = g.node("Sub", [g.node("Mul", [raw, scalar(g, "two", 2)]), scalar(g, "one", 1)]);
    const params = declareParams(g, spec.paramShapes);
    const masks = declareMasks(g, maskShapes);
    return { images, raw, network, params, masks };
  };
  const toNhwc = (g: GraphBuilder, value: string) =>
    g.node("Transpose", [value], { perm: [0, 2, 3, 1] });
  const outShapes = spec.chains.map(({ chain }) => {
    const shapes = chainShapes(chain);
    return shapes[shapes.length - 1];
  });

  const fg = graph();
  const f = inputsOf(fg);
  const outputs = spec.chains.map(({ chain, input }, i) => {
    const out = chainForward(
      fg,
      chain,
      input === "raw" ? f.raw : f.network,
      f.params.onnx,
      f.masks.nchw,
    );
    const [c, h, w] = outShapes[i];
    const name = `${chain.name}_out`;
    fg.output(toNhwc(fg, out), name, ["batch", h, w, c]);
    return {
      output: name,
      gradient: `grad_${chain.name}`,
      shape: [h, w, c] as [number, number, number],
    };
  });
  let teacherOut: string | null = null;
  if (spec.teacher) {
    const [c, h, w] = spec.teacher.shape;
    teacherOut = "teacher_out";
    fg.output(toNhwc(fg, spec.teacher.append(fg, f.raw)), teacherOut, ["batch", h, w, c]);
  }

  const bg = graph();
  const b = inputsOf(bg);
  const gradients = new Map<number, string>();
  spec.chains.forEach(({ chain, input }, i) => {
    declareSaved(bg, chain);
    const [h, w, c] = outputs[i].shape;
    const gradOut = bg.node("Transpose", [bg.input(outputs[i].gradient, ["batch", h, w, c])], {
      perm: [0, 3, 1, 2],
    });
    const grads = chainBackward(
      bg,
      chain,
      input === "raw" ? b.raw : b.network,
      gradOut,
      b.params.onnx,
      b.masks.nchw,
    );
    for (const [index, value] of grads) {
      if (gradients.has(index)) throw new Error(`parameter ${index} is used by two chains`);
      gradients.set(index, value);
    }
  });
  const gradientNames = spec.paramShapes.map((shape, i) => {
    const value = gradients.get(i);
    if (!value) throw new Error(`parameter ${i} has no gradient (used by no chain)`);
    const name = `grad_param_${i}`;
    bg.output(value, name, [...shape]);
    return name;
  });
  return {
    forward: fg.encode(`${spec.label}_forward`, `${spec.label}: training forward pass`),
    backward: bg.encode(`${spec.label}_backward`, `${spec.label}: training backward pass`),
    images: f.images,
    params: f.params.names,
    masks: f.masks.names.map((name, i) => ({ name, shape: maskShapes[i] })),
    outputs,
    teacherOut,
    saved: spec.chains.flatMap(({ chain }) => savedValues(chain)),
    gradients: gradientNames,
  };
}
