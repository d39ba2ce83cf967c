/**
 * EfficientAD's autoencoder (anomalib `AutoEncoder`, padded variant), generalised to any input
 * side S that is a multiple of 32:
 *
 *  - encoder: five conv 4×4 stride 2 pad 1 (32, 32, 64, 64, 64 channels, ReLU) take S to S/32,
 *    then a valid conv with kernel S/32 (8 at S = 256) to `latent` channels at 1×1;
 *  - decoder: six × [bilinear upsample → conv 4×4 pad 2 (64 ch, +1 px) → ReLU → dropout 0.2],
 *    at the reference sizes 3, 8, 15, 32, 63, 127 (S = 256) scaled by S/256 and rounded (≥ 1),
 *    then upsample to the PDN output side S/4 → conv 3×3 pad 1 → ReLU → conv 3×3 pad 1 to
 *    `outChannels`.
 *
 * Upsampling is torch's bilinear `align_corners=False` with a correct gradient (`resize.ts`).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { conv2d } from "./conv.ts";
import { torchDefaultConvInit } from "./init.ts";
import { pdnOutputSize } from "./pdn.ts";
import { resizeBilinear } from "./resize.ts";

/** Options of {@link createAutoencoder}. */
export interface AutoencoderOptions {
  /** Input side S (multiple of 32). */
  imageSize: number;
  /** Output channels (the teacher's). */
  outChannels: number;
  /** Bottleneck channels (EfficientAD: 64). */
  latent: number;
  /** Initialisation seed (same seed, same weights). */
  seed: number;
}

/** One convolution's variables. */
export interface ConvLayer {
  /** `[k, k, in, out]`. */
  kernel: tf.Variable<tf.Rank.R4>;
  /** `[out]`. */
  bias: tf.Variable<tf.Rank.R1>;
}

/** The autoencoder's variables and the geometry they were built for. */
export interface AutoencoderParams {
  /** Input side the weights were built for (the bottleneck kernel depends on it). */
  imageSize: number;
  /** Six encoder convs (the last one is the S/32 × S/32 bottleneck). */
  encoder: ConvLayer[];
  /** Eight decoder convs (six 4×4 after upsamplings, then two 3×3). */
  decoder: ConvLayer[];
  /** Upsampling sides before decoder convs 1–7 (the seventh is the PDN output side). */
  upsampleSizes: number[];
}

/** Encoder widths; the bottleneck conv adds `latent`. */
const ENCODER_CHANNELS = [32, 32, 64, 64, 64] as const;
/** Decoder hidden width. */
const DECODER_CHANNELS = 64;
/** anomalib's upsampling sides at S = 256 (S/64 − 1, S/32, S/16 − 1, S/8, S/4 − 1, S/2 − 1). */
const REFERENCE_SIZES_AT_256 = [3, 8, 15, 32, 63, 127] as const;
/** Dropout rate after each upsampling conv during training. */
const DROPOUT = 0.2;

/** Builds an autoencoder with torch-default initialisation drawn from `opts.seed`. */
export function createAutoencoder(opts: AutoencoderOptions): AutoencoderParams {
  const { imageSize, outChannels, latent, seed } = opts;
  if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize % 32 !== 0) {
    throw new Error(`autoencoder imageSize must be a multiple of 32 (>= 32), got ${imageSize}`);
  }
  for (const [name, value] of [["outChannels", outChannels], ["latent", latent]] as const) {
    if (!Number.isInteger(value) || value < 1) {
      throw new Error(`autoencoder ${name} must be a positive integer, got ${value}`);
    }
  }
  let layerSeed = seed * 32;
  const layer = (kernel: number, inC: number, outC: number): ConvLayer => {
    const { weight, bias } = torchDefaultConvInit(kernel, inC, outC, layerSeed++);
    const made = { kernel: tf.variable(weight), bias: tf.variable(bias) };
    tf.dispose([weight, bias]);
    return made;
  };
  const encoderIn = [3, ...ENCODER_CHANNELS];
  const encoder = ENCODER_CHANNELS.map((c, i) => layer(4, encoderIn[i], c));
  encoder.push(layer(imageSize / 32, ENCODER_CHANNELS[4], latent));
  const decoder: ConvLayer[] = [];
  for (let i = 0; i < REFERENCE_SIZES_AT_256.length; i++) {
    decoder.push(layer(4, i === 0 ? latent : DECODER_CHANNELS, DECODER_CHANNELS));
  }
  decoder.push(layer(3, DECODER_CHANNELS, DECODER_CHANNELS));
  decoder.push(layer(3, DECODER_CHANNELS, outChannels));
  const upsampleSizes = REFERENCE_SIZES_AT_256.map((r) =>
    Math.max(1, Math.round((r * imageSize) / 256))
  );
  upsampleSizes.push(pdnOutputSize(imageSize));
  return { imageSize, encoder, decoder, upsampleSizes };
}

/** Dropout layers of the decoder (each takes `dropoutSeed + its index`). */
export const AUTOENCODER_DROPOUT_LAYERS = 6;

/**
 * Runs the autoencoder on NHWC `x` `[B, S, S, 3]` → `[B, S/4, S/4, outChannels]`.
 * `training` enables dropout; with `dropoutSeed` its masks are reproducible (without it tfjs
 * draws them from `Math.random`, and reruns of a training differ).
 */
export function autoencoderForward(
  p: AutoencoderParams,
  x: tf.Tensor4D,
  training: boolean,
  dropoutSeed?: number,
): tf.Tensor4D {
  const [, h, w, c] = x.shape;
  if (h !== p.imageSize || w !== p.imageSize || c !== 3) {
    throw new Error(
      `autoencoder built for [*, ${p.imageSize}, ${p.imageSize}, 3] input, got [${x.shape}]`,
    );
  }
  return tf.tidy(() => {
    const apply = (h: tf.Tensor4D, l: ConvLayer, stride: number, pad: number) =>
      tf.add(conv2d(h, l.kernel, stride, pad), l.bias) as tf.Tensor4D;
    let hidden = x;
    p.encoder.forEach((l, i) => {
      const last = i === p.encoder.length - 1;
      hidden = last ? apply(hidden, l, 1, 0) : tf.relu(apply(hidden, l, 2, 1));
    });
    for (let i = 0; i < AUTOENCODER_DROPOUT_LAYERS; i++) {
      const side = p.upsampleSizes[i];
      hidden = tf.relu(apply(resizeBilinear(hidden, [side, side]), p.decoder[i], 1, 2));
      if (training) {
        const seed = dropoutSeed === undefined ? undefined : dropoutSeed + i;
        hidden = tf.mul(hidden, autoencoderDropoutMask(hidden.shape, seed));
      }
    }
    const side = p.upsampleSizes[6];
    hidden = tf.relu(apply(resizeBilinear(hidden, [side, side]), p.decoder[6], 1, 1));
    return apply(hidden, p.decoder[7], 1, 1);
  });
}

/**
 * The multiplier one dropout layer applies to an NHWC activation of `shape` (0 or 1 / 0.8):
 * `tf.dropout` of ones, so `x · mask` is `tf.dropout(x, 0.2, undefined, seed)` exactly. The ONNX
 * Runtime training engine feeds the same masks to its graphs.
 */
export function autoencoderDropoutMask(shape: readonly number[], seed?: number): tf.Tensor4D {
  return tf.tidy(() => tf.dropout(tf.ones([...shape]), DROPOUT, undefined, seed) as tf.Tensor4D);
}

/** All 28 variables in a fixed order (encoder then decoder, kernel then bias per layer). */
export function autoencoderVariables(p: AutoencoderParams): tf.Variable[] {
  return [...p.encoder, ...p.decoder].flatMap((l) => [l.kernel, l.bias] as tf.Variable[]);
}
