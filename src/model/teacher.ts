/**
 * Frozen teachers: networks whose feature maps (on the stride-4 grid of the PDN student) the
 * student learns to predict. Three sources (see {@link TeacherConfig}):
 *
 *  - `mobilenet_v2`: the Keras MobileNetV2 shipped inside `npm:nsfwjs@4.3.0` (no network),
 *    cut below `block_11`. nsfwjs froze every layer up to `block_10_project_BN` while
 *    fine-tuning for its classifier (their `trainable` flags are false), so those are the
 *    ImageNet weights; later layers are NSFW-specific and are refused.
 *  - `path`: any tfjs LayersModel or GraphModel directory on disk (e.g. a converted EfficientAD
 *    teacher), read with `Deno.readFile`.
 *  - `random_pdn`: an untrained PDN, only for tests.
 *
 * Every teacher maps NHWC images in [0,1] `[B, S, S, 3]` to `[B, S/4, S/4, channels]`: each
 * tapped map is bilinearly resized to S/4 and the maps are concatenated on channels.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { Buffer } from "node:buffer";
import { MobileNetV2Model } from "nsfwjs/models/mobilenet_v2";
import type { PdnWidth, TeacherConfig } from "../config/schema.ts";
import { createPdn, pdnForward, pdnOutputSize, type PdnParams, pdnVariables } from "./pdn.ts";
import { resizeBilinear } from "./resize.ts";
import { withoutGradient } from "./stop_gradient.ts";

/** A frozen feature extractor. */
export interface Teacher {
  /** Human-readable identity, e.g. `mobilenet_v2 (nsfwjs, ImageNet layers)`. */
  readonly name: string;
  /** Channels of {@link Teacher.extract}'s output. */
  readonly channels: number;
  /** The tapped layers/nodes, in concatenation order. */
  readonly taps: string[];
  /**
   * Images NHWC in [0,1] at the configured size `[B, S, S, 3]` → features
   * `[B, S/4, S/4, channels]`. Gradients do not flow through it; the caller owns the result.
   */
  extract(images: tf.Tensor4D): tf.Tensor4D;
  /** The network behind the taps, for exporting the teacher to another engine (ONNX). */
  readonly network: TeacherNetwork;
  /** Frees the teacher's weights. */
  dispose(): void;
}

/** Pixel mapping applied before a teacher network. */
export type InputRange = "minus1to1" | "zero1" | "imagenet";

/**
 * What a teacher runs, as exporters need it: a Keras LayersModel whose outputs are the taps,
 * the PDN of `random_pdn`, or a network no exporter reads (a GraphModel), with the reason.
 */
export type TeacherNetwork =
  | { kind: "layers"; model: tf.LayersModel; range: InputRange }
  | { kind: "pdn"; params: PdnParams; range: InputRange }
  | { kind: "opaque"; reason: string };

/**
 * The default MobileNetV2 taps: `block_2_add` (stride 4, 24 ch: edges/texture at the
 * student's own resolution), `block_5_add` (stride 8, 32 ch) and `block_10_project_BN`
 * (stride 16, 96 ch: the deepest ImageNet layer nsfwjs left untouched) — local detail plus
 * context, 152 channels in all.
 */
export const DEFAULT_MOBILENET_TAPS = ["block_2_add", "block_5_add", "block_10_project_BN"];

/** Output channels of the `random_pdn` teacher per width (`full` = EfficientAD's 384). */
export const RANDOM_PDN_CHANNELS: Readonly<Record<PdnWidth, number>> = {
  tiny: 64,
  small: 128,
  full: 384,
};

/** First MobileNetV2 layer nsfwjs fine-tuned; it and everything after it are refused. */
const FIRST_FINE_TUNED_LAYER = "block_11_expand";

/** Loads the teacher `cfg` for square inputs of side `imageSize` (a multiple of 32). */
export async function loadTeacher(cfg: TeacherConfig, imageSize: number): Promise<Teacher> {
  if (!Number.isInteger(imageSize) || imageSize < 32 || imageSize % 32 !== 0) {
    throw new Error(`teacher imageSize must be a multiple of 32 (>= 32), got ${imageSize}`);
  }
  switch (cfg.kind) {
    case "mobilenet_v2":
      return await loadMobileNetTeacher(cfg.taps, imageSize);
    case "path":
      return await loadPathTeacher(cfg.path, cfg.taps, cfg.inputRange, imageSize);
    case "random_pdn":
      return randomPdnTeacher(cfg.width, cfg.seed, imageSize);
    default: {
      const unknown: never = cfg;
      throw new Error(`unknown teacher kind in ${JSON.stringify(unknown)}`);
    }
  }
}

/** Runs a network on mapped input and returns its raw tap maps (any resolution). */
type TapRunner = (input: tf.Tensor4D) => tf.Tensor4D[];

/** ImageNet channel means and stds of the `imagenet` input range. */
export const IMAGENET_MEAN = [0.485, 0.456, 0.406];
export const IMAGENET_STD = [0.229, 0.224, 0.225];

function mapInput(images: tf.Tensor4D, range: InputRange): tf.Tensor4D {
  switch (range) {
    case "minus1to1":
      return tf.sub(tf.mul(images, 2), 1);
    case "zero1":
      return images;
    case "imagenet":
      return tf.div(tf.sub(images, IMAGENET_MEAN), IMAGENET_STD);
  }
}

/**
 * Wraps a tap runner as a {@link Teacher}: maps the input, resizes every tap to the S/4 grid,
 * concatenates, and blocks gradients. A dry run on one blank image checks the taps and counts
 * the channels.
 */
function assembleTeacher(
  name: string,
  taps: string[],
  run: TapRunner,
  range: InputRange,
  imageSize: number,
  release: () => void,
  network: TeacherNetwork,
): Teacher {
  const grid = pdnOutputSize(imageSize);
  const features = (images: tf.Tensor4D): tf.Tensor4D =>
    tf.tidy(() => {
      const maps = run(mapInput(images, range));
      const resized = maps.map((m) => resizeBilinear(m, [grid, grid]));
      return resized.length === 1 ? resized[0] : tf.concat(resized, 3);
    });
  const shapes = tf.tidy(() => {
    const maps = run(tf.zeros([1, imageSize, imageSize, 3]));
    return maps.map((m) => m.shape as number[]);
  });
  shapes.forEach((shape, i) => {
    if (shape.length !== 4) {
      throw new Error(
        `teacher ${name}: tap "${taps[i] ?? i}" gives shape [${shape}], not an NHWC feature map`,
      );
    }
  });
  const channels = shapes.reduce((sum, shape) => sum + shape[3], 0);
  return {
    name,
    channels,
    taps,
    extract(images: tf.Tensor4D): tf.Tensor4D {
      const [, h, w, c] = images.shape;
      if (images.rank !== 4 || h !== imageSize || w !== imageSize || c !== 3) {
        throw new Error(
          `teacher ${name} expects [B, ${imageSize}, ${imageSize}, 3] images, got [${images.shape}]`,
        );
      }
      // Untaped and gradient-free even when called inside tf.variableGrads.
      return withoutGradient(features, images);
    },
    network,
    dispose: release,
  };
}

// ---------------------------------------------------------------- mobilenet_v2 (nsfwjs)

/** The subset of a Keras functional-model layer entry we read and rewrite. */
interface KerasLayer {
  name: string;
  class_name: string;
  config: { batch_input_shape?: (number | null)[]; trainable?: boolean };
  inbound_nodes: [string, number, number, unknown][][];
}

interface KerasFunctionalConfig {
  layers: KerasLayer[];
  input_layers: [string, number, number][];
  output_layers: [string, number, number][];
}

async function loadMobileNetTeacher(taps: string[], imageSize: number): Promise<Teacher> {
  const bundle = (await MobileNetV2Model.modelJson()).default as {
    modelTopology: { model_config: { config: KerasFunctionalConfig } };
    weightsManifest: tf.io.WeightsManifestConfig;
  };
  const weightsBase64 = (await MobileNetV2Model.weightBundles[0]()).default as string;
  const topology = structuredClone(bundle.modelTopology);
  const config = topology.model_config.config;
  checkMobileNetTaps(config.layers, taps);
  config.layers = ancestorsOf(config.layers, taps);
  for (const layer of config.layers) {
    // The shipped topology is fixed at 224; the conv trunk accepts any side.
    if (layer.class_name === "InputLayer") {
      layer.config.batch_input_shape = [null, imageSize, imageSize, 3];
    }
  }
  config.output_layers = taps.map((t) => [t, 0, 0]);
  if (bundle.weightsManifest.length !== 1) {
    throw new Error("nsfwjs MobileNetV2: expected one weight group in its manifest");
  }
  const weightData = new Uint8Array(Buffer.from(weightsBase64, "base64")).buffer;
  const model = await tf.loadLayersModel(
    tf.io.fromMemory({
      modelTopology: { model_config: topology.model_config },
      weightSpecs: bundle.weightsManifest[0].weights,
      weightData,
    }),
    // The classifier head's weights are in the shard but not in the pruned graph.
    { strict: false },
  );
  model.trainable = false;
  const run: TapRunner = (input) => toArray(model.predict(input));
  return assembleTeacher(
    "mobilenet_v2 (nsfwjs, ImageNet layers below block_11)",
    [...taps],
    run,
    "minus1to1", // Keras MobileNetV2 preprocessing: x / 127.5 − 1.
    imageSize,
    () => model.dispose(),
    { kind: "layers", model, range: "minus1to1" },
  );
}

function checkMobileNetTaps(layers: KerasLayer[], taps: string[]): void {
  const index = new Map(layers.map((l, i) => [l.name, i]));
  const limit = index.get(FIRST_FINE_TUNED_LAYER);
  if (limit === undefined) {
    throw new Error(`nsfwjs MobileNetV2: no layer ${FIRST_FINE_TUNED_LAYER}`);
  }
  if (taps.length === 0) throw new Error("mobilenet_v2 teacher: at least one tap is needed");
  if (new Set(taps).size !== taps.length) {
    throw new Error(`mobilenet_v2 teacher: duplicate taps in [${taps}]`);
  }
  for (const tap of taps) {
    const at = index.get(tap);
    if (at === undefined) {
      throw new Error(
        `mobilenet_v2 teacher: unknown layer "${tap}"; use a Keras MobileNetV2 layer name up to ` +
          `block_10_project_BN, e.g. ${DEFAULT_MOBILENET_TAPS.join(", ")}`,
      );
    }
    if (at >= limit) {
      throw new Error(
        `mobilenet_v2 teacher: layer "${tap}" is at or after block_11; nsfwjs fine-tuned those ` +
          "layers for NSFW classification, so they are not ImageNet features. Tap a layer up " +
          "to block_10_project_BN.",
      );
    }
  }
}

/** The layers the taps depend on, in their original (topological) order. */
function ancestorsOf(layers: KerasLayer[], taps: string[]): KerasLayer[] {
  const byName = new Map(layers.map((l) => [l.name, l]));
  const needed = new Set<string>();
  const pending = [...taps];
  while (pending.length > 0) {
    const name = pending.pop()!;
    if (needed.has(name)) continue;
    needed.add(name);
    for (const node of byName.get(name)?.inbound_nodes ?? []) {
      for (const [inbound] of node) pending.push(inbound);
    }
  }
  return layers.filter((l) => needed.has(l.name));
}

// ---------------------------------------------------------------- path (tfjs model on disk)

async function loadPathTeacher(
  path: string,
  taps: string[],
  range: InputRange,
  imageSize: number,
): Promise<Teacher> {
  const jsonPath = modelJsonPath(path);
  let modelJson: tf.io.ModelJSON;
  try {
    modelJson = JSON.parse(await Deno.readTextFile(jsonPath));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) {
      throw new Error(`path teacher: no model.json at ${jsonPath} (config teacher.path "${path}")`);
    }
    throw new Error(`path teacher: cannot read ${jsonPath}: ${describe(error)}`);
  }
  if (!modelJson || typeof modelJson !== "object" || !modelJson.modelTopology) {
    throw new Error(`path teacher: ${jsonPath} is not a tfjs model.json (no modelTopology)`);
  }
  const isGraph = modelJson.format === "graph-model" ||
    (modelJson.format === undefined && "node" in (modelJson.modelTopology as object));
  const handler = directoryHandler(jsonPath, modelJson, imageSize, !isGraph);
  const label = `path ${path}`;
  return isGraph
    ? await graphTeacher(label, handler, taps, range, imageSize)
    : await layersTeacher(label, handler, taps, range, imageSize);
}

async function layersTeacher(
  label: string,
  handler: tf.io.IOHandler,
  taps: string[],
  range: InputRange,
  imageSize: number,
): Promise<Teacher> {
  const full = await loadOrExplain(() => tf.loadLayersModel(handler), label);
  full.trainable = false;
  let model: tf.LayersModel = full;
  let names = full.outputNames;
  if (taps.length > 0) {
    const known = new Set(full.layers.map((l) => l.name));
    for (const tap of taps) {
      if (!known.has(tap)) {
        full.dispose();
        throw new Error(
          `path teacher ${label}: unknown layer "${tap}"; layers are ${[...known].join(", ")}`,
        );
      }
    }
    const outputs = taps.map((t) => full.getLayer(t).output as tf.SymbolicTensor);
    model = tf.model({ inputs: full.inputs, outputs });
    names = [...taps];
  }
  const run: TapRunner = (input) => toArray(model.predict(input));
  return assembleChecked(
    `${label} (LayersModel)`,
    names,
    run,
    range,
    imageSize,
    () => full.dispose(),
    { kind: "layers", model, range },
  );
}

async function graphTeacher(
  label: string,
  handler: tf.io.IOHandler,
  taps: string[],
  range: InputRange,
  imageSize: number,
): Promise<Teacher> {
  const model = await loadOrExplain(() => tf.loadGraphModel(handler), label);
  const names = taps.length > 0 ? [...taps] : model.outputNodes;
  const run: TapRunner = (input) =>
    toArray(taps.length > 0 ? model.execute(input, taps) : model.execute(input));
  return assembleChecked(
    `${label} (GraphModel)`,
    names,
    run,
    range,
    imageSize,
    () => model.dispose(),
    { kind: "opaque", reason: "a tfjs GraphModel teacher has no layer graph to export" },
  );
}

/** {@link assembleTeacher}, turning a failing dry run into a clear error and freeing the model. */
function assembleChecked(
  name: string,
  taps: string[],
  run: TapRunner,
  range: InputRange,
  imageSize: number,
  release: () => void,
  network: TeacherNetwork,
): Teacher {
  try {
    return assembleTeacher(name, taps, run, range, imageSize, release, network);
  } catch (error) {
    release();
    throw new Error(
      `teacher ${name} with taps [${taps}] failed on a ${imageSize}×${imageSize} image: ${
        describe(error)
      }`,
    );
  }
}

async function loadOrExplain<T>(load: () => Promise<T>, label: string): Promise<T> {
  try {
    return await load();
  } catch (error) {
    throw new Error(`path teacher ${label}: loading the model failed: ${describe(error)}`);
  }
}

/** `dir`, `dir/model.json` or `file://…` → the model.json path. */
function modelJsonPath(path: string): string {
  let local = path.startsWith("file://") ? decodeURIComponent(new URL(path).pathname) : path;
  if (!local.endsWith(".json")) local = `${local.replace(/\/+$/, "")}/model.json`;
  return local;
}

/**
 * An IOHandler over a tfjs model directory (tfjs's own `file://` handler is Node-only):
 * model.json plus the weight shards it lists, read with `Deno.readFile`. For LayersModels the
 * input side is rewritten to `imageSize`, as for MobileNetV2.
 */
function directoryHandler(
  jsonPath: string,
  modelJson: tf.io.ModelJSON,
  imageSize: number,
  rewriteInputSize: boolean,
): tf.io.IOHandler {
  const dir = jsonPath.includes("/") ? jsonPath.slice(0, jsonPath.lastIndexOf("/")) : ".";
  const json = structuredClone(modelJson);
  if (rewriteInputSize) setInputSide(json.modelTopology as Record<string, unknown>, imageSize);
  return {
    load: () =>
      tf.io.getModelArtifactsForJSON(json, async (manifest) => {
        const specs: tf.io.WeightsManifestEntry[] = [];
        const shards: Uint8Array[] = [];
        for (const group of manifest) {
          specs.push(...group.weights);
          for (const shard of group.paths) {
            const shardPath = `${dir}/${shard}`;
            try {
              shards.push(await Deno.readFile(shardPath));
            } catch (error) {
              throw new Error(`weight shard ${shardPath} unreadable: ${describe(error)}`);
            }
          }
        }
        const total = shards.reduce((n, s) => n + s.byteLength, 0);
        const data = new Uint8Array(total);
        let offset = 0;
        for (const shard of shards) {
          data.set(shard, offset);
          offset += shard.byteLength;
        }
        return [specs, data.buffer];
      }),
  };
}

/** Sets every 4-D `batch_input_shape` in a Keras topology to `[null, S, S, C]`. */
function setInputSide(topology: Record<string, unknown>, side: number): void {
  const visit = (value: unknown): void => {
    if (Array.isArray(value)) {
      value.forEach(visit);
    } else if (value && typeof value === "object") {
      const record = value as Record<string, unknown>;
      const shape = record.batch_input_shape;
      if (Array.isArray(shape) && shape.length === 4) {
        record.batch_input_shape = [null, side, side, shape[3]];
      }
      Object.values(record).forEach(visit);
    }
  };
  visit(topology);
}

// ---------------------------------------------------------------- random_pdn

function randomPdnTeacher(width: PdnWidth, seed: number, imageSize: number): Teacher {
  const pdn = createPdn(width, RANDOM_PDN_CHANNELS[width], seed, false);
  return assembleTeacher(
    "random_pdn (untrained, tests only)",
    ["pdn_output"],
    (input) => [pdnForward(pdn, input)],
    "minus1to1", // the range the detector feeds its own PDN student
    imageSize,
    () => tf.dispose(pdnVariables(pdn)),
    { kind: "pdn", params: pdn, range: "minus1to1" },
  );
}

function toArray(output: tf.Tensor | tf.Tensor[] | tf.NamedTensorMap): tf.Tensor4D[] {
  if (output instanceof tf.Tensor) return [output as tf.Tensor4D];
  if (Array.isArray(output)) return output as tf.Tensor4D[];
  return Object.values(output) as tf.Tensor4D[];
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
