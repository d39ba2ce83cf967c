/**
 * The frozen teacher as ONNX nodes: input mapping, the network up to its taps (a Keras
 * LayersModel such as nsfwjs's MobileNetV2, or the `random_pdn`), each tap resized to the
 * student's grid and concatenated — `Teacher.extract` of `src/model/teacher.ts`, node for node.
 *
 * Keras layers translate one to one (ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization,
 * ReLU, Activation, Add); a batch normalisation directly after a convolution whose output nothing
 * else reads is folded into that convolution's weights. A layer of another class is a clear
 * error naming it.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import { IMAGENET_MEAN, IMAGENET_STD, type InputRange, type Teacher } from "../teacher.ts";
import { pdnOutputSize } from "../pdn.ts";
import type { GraphBuilder } from "./graph.ts";
import { channelConstant, conv, type Pads, resizeBilinear, scalar } from "./ops.ts";
import { pdnGraph } from "./student_graph.ts";

/** Appends the teacher to `g`: NCHW images in [0,1] → features `[B, C, S/4, S/4]`. */
export function teacherGraph(
  g: GraphBuilder,
  teacher: Teacher,
  images: string,
  imageSize: number,
): string {
  const network = teacher.network;
  if (network.kind === "opaque") {
    throw new Error(`ONNX export: teacher ${teacher.name} cannot be exported: ${network.reason}`);
  }
  const mapped = mapInput(g, images, network.range);
  const grid = pdnOutputSize(imageSize);
  const taps: { value: string; side: [number, number] }[] = network.kind === "pdn"
    ? [{ value: pdnGraph(g, network.params, mapped, "teacher"), side: [grid, grid] }]
    : kerasGraph(g, network.model, mapped);
  const resized = taps.map((tap) => resizeBilinear(g, tap.value, tap.side, [grid, grid]));
  return resized.length === 1 ? resized[0] : g.node("Concat", resized, { axis: 1 });
}

function mapInput(g: GraphBuilder, x: string, range: InputRange): string {
  switch (range) {
    case "minus1to1":
      return g.node("Sub", [g.node("Mul", [x, scalar(g, "two", 2)]), scalar(g, "one", 1)]);
    case "zero1":
      return x;
    case "imagenet":
      return g.node("Div", [
        g.node("Sub", [x, channelConstant(g, "imagenet_mean", IMAGENET_MEAN)]),
        channelConstant(g, "imagenet_std", IMAGENET_STD),
      ]);
  }
}

/** The subset of a tfjs Keras layer's `getConfig()` (camelCase) this translation reads. */
interface KerasLayerConfig {
  padding?: string | number | [[number, number], [number, number]] | [number, number];
  strides?: [number, number];
  dilationRate?: number | [number, number];
  useBias?: boolean;
  activation?: string;
  maxValue?: number | null;
  epsilon?: number;
  center?: boolean;
  scale?: boolean;
  axis?: number | number[];
  dataFormat?: string;
}

/** A convolution whose output may still absorb a batch normalisation. */
interface FoldableConv {
  kernel: string;
  bias: string;
  channels: number;
}

/** Translates the LayersModel; returns its outputs (the taps) with their spatial sides. */
function kerasGraph(
  g: GraphBuilder,
  model: tf.LayersModel,
  input: string,
): { value: string; side: [number, number] }[] {
  const outputs = model.outputs.map((o) => o.sourceLayer.name);
  const readers = new Map<string, number>();
  for (const layer of model.layers) {
    for (const from of inboundNames(layer)) readers.set(from, (readers.get(from) ?? 0) + 1);
  }
  const values = new Map<string, string>();
  const foldable = new Map<string, FoldableConv>();
  for (const layer of model.layers) {
    const cls = layer.getClassName();
    const config = layer.getConfig() as KerasLayerConfig;
    const inbound = inboundNames(layer).map((name) => {
      const value = values.get(name);
      if (value === undefined) throw new Error(`ONNX export: layer ${layer.name} reads ${name}`);
      return value;
    });
    const x = inbound[0];
    const where = `ONNX export: teacher layer ${layer.name} (${cls})`;
    if (config.dataFormat && config.dataFormat !== "channelsLast") {
      throw new Error(`${where}: only channels_last layers are supported`);
    }
    let out: string;
    switch (cls) {
      case "InputLayer":
        out = input;
        break;
      case "ZeroPadding2D": {
        const [[top, bottom], [left, right]] = zeroPadding(config.padding, where);
        out = g.node("Pad", [x, g.ints("pads", [0, 0, top, left, 0, 0, bottom, right])], {
          mode: "constant",
        });
        break;
      }
      case "Conv2D":
      case "DepthwiseConv2D": {
        const depthwise = cls === "DepthwiseConv2D";
        const dilation = config.dilationRate ?? 1;
        if ([dilation].flat().some((d) => d !== 1)) throw new Error(`${where}: dilation ≠ 1`);
        const [kernelTensor, biasTensor] = layer.getWeights();
        const shape = kernelTensor.shape as [number, number, number, number];
        const stride = (config.strides ?? [1, 1])[0];
        if ((config.strides ?? [1, 1])[1] !== stride) throw new Error(`${where}: unequal strides`);
        const made = conv(g, x, {
          kernel: kernelTensor.dataSync() as Float32Array,
          shape,
          bias: config.useBias && biasTensor ? biasTensor.dataSync() as Float32Array : null,
        }, {
          stride,
          pads: convPads(config.padding, inputSide(layer), shape, stride, where),
          depthwise,
          name: layer.name,
        });
        out = activation(g, made.output, config, where);
        if (out === made.output) {
          foldable.set(layer.name, {
            kernel: made.kernel,
            bias: made.bias,
            channels: depthwise ? shape[2] * shape[3] : shape[3],
          });
        }
        break;
      }
      case "BatchNormalization": {
        const axis = [config.axis ?? -1].flat();
        if (axis.length !== 1 || (axis[0] !== -1 && axis[0] !== 3)) {
          throw new Error(`${where}: only channel-axis batch normalisation is supported`);
        }
        const weights = layer.getWeights().map((w) => w.dataSync() as Float32Array);
        let at = 0;
        const gamma = config.scale === false ? null : weights[at++];
        const beta = config.center === false ? null : weights[at++];
        const [mean, variance] = [weights[at], weights[at + 1]];
        const epsilon = config.epsilon ?? 1e-3;
        const scale = mean.map((_, c) => (gamma ? gamma[c] : 1) / Math.sqrt(variance[c] + epsilon));
        const shift = mean.map((m, c) => (beta ? beta[c] : 0) - m * scale[c]);
        const source = inboundNames(layer)[0];
        const conv = foldable.get(source);
        if (conv && readers.get(source) === 1 && !outputs.includes(source)) {
          foldBatchNorm(g, conv, scale, shift);
          out = x;
        } else {
          out = g.node("Add", [
            g.node("Mul", [x, channelConstant(g, `${layer.name}_scale`, scale)]),
            channelConstant(g, `${layer.name}_shift`, shift),
          ]);
        }
        break;
      }
      case "ReLU":
        out = reluMax(g, x, config.maxValue ?? null);
        break;
      case "Activation":
        out = activation(g, x, config, where);
        break;
      case "Add":
        out = inbound.slice(1).reduce((sum, term) => g.node("Add", [sum, term]), x);
        break;
      default:
        throw new Error(
          `${where}: this layer class has no ONNX translation (supported: InputLayer, ` +
            "ZeroPadding2D, Conv2D, DepthwiseConv2D, BatchNormalization, ReLU, Activation, Add)",
        );
    }
    values.set(layer.name, out);
  }
  return model.outputs.map((o, i) => {
    const shape = o.shape;
    if (shape.length !== 4 || typeof shape[1] !== "number" || typeof shape[2] !== "number") {
      throw new Error(`ONNX export: teacher output ${outputs[i]} has shape [${shape}]`);
    }
    return { value: values.get(outputs[i])!, side: [shape[1], shape[2]] };
  });
}

function inboundNames(layer: tf.layers.Layer): string[] {
  const node = layer.inboundNodes[0];
  return node ? node.inboundLayers.map((l) => l.name) : [];
}

function inputSide(layer: tf.layers.Layer): [number, number] {
  const shape = layer.inboundNodes[0]?.inputTensors[0]?.shape ?? [];
  if (typeof shape[1] !== "number" || typeof shape[2] !== "number") {
    throw new Error(`ONNX export: layer ${layer.name} has no fixed input size`);
  }
  return [shape[1], shape[2]];
}

/** Keras ZeroPadding2D's padding as `[[top, bottom], [left, right]]`. */
function zeroPadding(
  padding: KerasLayerConfig["padding"],
  where: string,
): [[number, number], [number, number]] {
  if (typeof padding === "number") return [[padding, padding], [padding, padding]];
  if (Array.isArray(padding) && padding.length === 2) {
    const [rows, cols] = padding;
    if (typeof rows === "number" && typeof cols === "number") return [[rows, rows], [cols, cols]];
    if (Array.isArray(rows) && Array.isArray(cols)) return [rows, cols];
  }
  throw new Error(`${where}: unreadable padding ${JSON.stringify(padding)}`);
}

/** tfjs's convolution padding: "valid" none; "same" puts the odd pixel bottom/right. */
function convPads(
  padding: KerasLayerConfig["padding"],
  [height, width]: [number, number],
  [kh, kw]: readonly number[],
  stride: number,
  where: string,
): Pads {
  if (padding === "valid") return [0, 0, 0, 0];
  if (padding !== "same") throw new Error(`${where}: padding ${JSON.stringify(padding)}`);
  const along = (size: number, k: number) =>
    Math.max((Math.ceil(size / stride) - 1) * stride + k - size, 0);
  const ph = along(height, kh);
  const pw = along(width, kw);
  return [Math.floor(ph / 2), Math.floor(pw / 2), ph - Math.floor(ph / 2), pw - Math.floor(pw / 2)];
}

function activation(g: GraphBuilder, x: string, config: KerasLayerConfig, where: string): string {
  switch (config.activation ?? "linear") {
    case "linear":
      return x;
    case "relu":
      return g.node("Relu", [x]);
    case "relu6":
      return reluMax(g, x, 6);
    default:
      throw new Error(`${where}: activation ${config.activation} has no ONNX translation`);
  }
}

function reluMax(g: GraphBuilder, x: string, max: number | null): string {
  if (max === null) return g.node("Relu", [x]);
  return g.node("Clip", [x, scalar(g, "clip_min", 0), scalar(g, "clip_max", max)]);
}

/** W' = W · scale (per output channel), b' = b · scale + shift. */
function foldBatchNorm(
  g: GraphBuilder,
  conv: FoldableConv,
  scale: Float32Array,
  shift: Float32Array,
): void {
  const kernel = g.floatData(conv.kernel)!;
  const bias = g.floatData(conv.bias)!;
  const perChannel = kernel.length / conv.channels;
  for (let c = 0; c < conv.channels; c++) {
    for (let k = 0; k < perChannel; k++) kernel[c * perChannel + k] *= scale[c];
    bias[c] = bias[c] * scale[c] + shift[c];
  }
}
