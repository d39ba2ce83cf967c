/**
 * The one configuration schema of the product. A pipeline file (`pipelines/<line>.json`)
 * is a {@link PipelineConfig}; the offline CLI and the benchmarks use its `model` and
 * `training` sections alone. Every field has a default, so `{ "line": "x" }` is valid.
 *
 * @module
 */
import { z } from "zod";

/** Which AD² terms are active; `baseline` is plain EfficientAD (the paper's Table 3 rows). */
export const MethodSchema = z.enum(["baseline", "nmfe", "atdr", "ad2"]);
/** Training method switch. */
export type Method = z.infer<typeof MethodSchema>;

/** tfjs backends the product can run on. */
export const BackendSchema = z.enum(["wasm", "cpu", "webgpu", "tensorflow", "tensorflow-gpu"]);
/** A tfjs backend name. */
export type BackendName = z.infer<typeof BackendSchema>;

/** Student/teacher PDN widths: the paper's EfficientAD-S (`full`) and reduced CPU widths. */
export const PdnWidthSchema = z.enum(["full", "small", "tiny"]);
/** PDN width preset name. */
export type PdnWidth = z.infer<typeof PdnWidthSchema>;

/** Where the frozen teacher comes from. */
export const TeacherSchema = z.discriminatedUnion("kind", [
  z.object({
    /** MobileNetV2 (ImageNet) shipped inside `npm:nsfwjs@4.3.0`, cut below `block_11`. */
    kind: z.literal("mobilenet_v2"),
    /** Layer names tapped (strides 4/8/16 by default), resized to the stride-4 grid and concatenated. */
    taps: z.array(z.string()).min(1).default([
      "block_2_add",
      "block_5_add",
      "block_10_project_BN",
    ]),
  }).strict(),
  z.object({
    /** Any tfjs LayersModel or GraphModel directory (model.json + shards), e.g. a converted EfficientAD teacher. */
    kind: z.literal("path"),
    path: z.string().min(1),
    /** Output/layer names to tap; empty means the model's own outputs. */
    taps: z.array(z.string()).default([]),
    /** How pixels in [0,1] are mapped before the teacher: `[-1,1]`, `[0,1]` or ImageNet mean/std. */
    inputRange: z.enum(["minus1to1", "zero1", "imagenet"]).default("imagenet"),
  }).strict(),
  z.object({
    /** A randomly initialised PDN: for tests only, it has learnt nothing. */
    kind: z.literal("random_pdn"),
    width: PdnWidthSchema.default("tiny"),
    seed: z.number().int().default(7),
  }).strict(),
]);
/** Teacher source configuration. */
export type TeacherConfig = z.infer<typeof TeacherSchema>;

/** The detector: network shapes and backend. */
export const ModelSchema = z.object({
  backend: BackendSchema.default("wasm"),
  /** Square input side in pixels; images are resized to it. Multiple of 32 keeps every stride exact. */
  imageSize: z.number().int().min(32).max(1024).refine((n) => n % 32 === 0, {
    message: "must be a multiple of 32",
  }).default(128),
  teacher: TeacherSchema.default({ kind: "mobilenet_v2" }),
  studentWidth: PdnWidthSchema.default("small"),
  /** Autoencoder bottleneck channels (EfficientAD: 64). */
  aeLatent: z.number().int().min(4).max(512).default(64),
  seed: z.number().int().default(42),
}).strict();
/** Detector configuration. */
export type ModelConfig = z.infer<typeof ModelSchema>;

/** AD² and optimiser hyper-parameters (paper §4.1 defaults). */
export const TrainingSchema = z.object({
  method: MethodSchema.default("ad2"),
  batchSize: z.number().int().min(2).max(64).default(8),
  learningRate: z.number().positive().default(1e-4),
  weightDecay: z.number().min(0).default(1e-5),
  /** NMFE: quantile of the batch std above which elements are re-weighted (Eq. 2). */
  pLarge: z.number().min(0).max(1).default(0.999),
  /** NMFE: the weight given to those elements (Eq. 2). */
  omegaLarge: z.number().min(0).max(1).default(0.1),
  /** Hard-example quantile (EfficientAD and Eq. 3). */
  pHard: z.number().min(0).max(1).default(0.999),
  /** ATDR: the weight of the outlier sample (Eq. 8). */
  xi: z.number().min(0).max(1).default(0.1),
  /** ATDR: distance between student feature maps of two samples (Eq. 5). */
  atdrDistance: z.enum(["l2", "cosine"]).default("l2"),
  /** Map-normalisation quantiles (EfficientAD: 0.9 and 0.995). */
  mapQuantileA: z.number().min(0).max(1).default(0.9),
  mapQuantileB: z.number().min(0).max(1).default(0.995),
}).strict();
/** Training configuration. */
export type TrainingConfig = z.infer<typeof TrainingSchema>;
