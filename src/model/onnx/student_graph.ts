/**
 * The trainable networks as ONNX nodes, from their live tfjs variables: the PDN (student, and
 * the `random_pdn` teacher) of `src/model/pdn.ts` and the autoencoder of
 * `src/model/autoencoder.ts` at inference (no dropout).
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import {
  AUTOENCODER_DROPOUT_LAYERS,
  type AutoencoderParams,
  type ConvLayer,
} from "../autoencoder.ts";
import type { PdnParams } from "../pdn.ts";
import type { GraphBuilder } from "./graph.ts";
import { avgPoolPadded, conv, resizeBilinear, same } from "./ops.ts";

/** The PDN's convolution paddings (see `src/model/pdn.ts`). */
const PDN_PADS = [3, 3, 1, 0] as const;

/** Appends a PDN: NCHW `[B, 3, S, S]` → `[B, out, S/4, S/4]`. */
export function pdnGraph(g: GraphBuilder, p: PdnParams, x: string, name: string): string {
  const layer = (h: string, i: number) =>
    conv(g, h, weightsOf(p.kernels[i], p.biases[i]), {
      pads: same(PDN_PADS[i]),
      name: `${name}_conv${i}`,
    }).output;
  let h = g.node("Relu", [layer(x, 0)]);
  h = avgPoolPadded(g, h);
  h = g.node("Relu", [layer(h, 1)]);
  h = avgPoolPadded(g, h);
  h = g.node("Relu", [layer(h, 2)]);
  return layer(h, 3);
}

/** Appends the autoencoder (inference): NCHW `[B, 3, S, S]` → `[B, out, S/4, S/4]`. */
export function autoencoderGraph(g: GraphBuilder, p: AutoencoderParams, x: string): string {
  const apply = (h: string, l: ConvLayer, stride: number, pad: number, name: string) =>
    conv(g, h, weightsOf(l.kernel, l.bias), { stride, pads: same(pad), name }).output;
  let hidden = x;
  let side = p.imageSize;
  p.encoder.forEach((l, i) => {
    const last = i === p.encoder.length - 1;
    if (last) {
      hidden = apply(hidden, l, 1, 0, `ae_enc${i}`);
      side = side - l.kernel.shape[0] + 1;
    } else {
      hidden = g.node("Relu", [apply(hidden, l, 2, 1, `ae_enc${i}`)]);
      side = Math.floor((side + 2 - 4) / 2) + 1;
    }
  });
  for (let i = 0; i <= AUTOENCODER_DROPOUT_LAYERS; i++) {
    const target = p.upsampleSizes[i];
    hidden = resizeBilinear(g, hidden, [side, side], [target, target]);
    const pad = i < AUTOENCODER_DROPOUT_LAYERS ? 2 : 1;
    const kernel = p.decoder[i].kernel.shape[0];
    hidden = g.node("Relu", [apply(hidden, p.decoder[i], 1, pad, `ae_dec${i}`)]);
    side = target + 2 * pad - kernel + 1;
  }
  return apply(hidden, p.decoder[7], 1, 1, "ae_dec7");
}

function weightsOf(kernel: tf.Variable<tf.Rank.R4>, bias: tf.Variable<tf.Rank.R1>) {
  return {
    kernel: kernel.dataSync() as Float32Array,
    shape: kernel.shape as [number, number, number, number],
    bias: bias.dataSync() as Float32Array,
  };
}
