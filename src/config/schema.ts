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
  /**
   * Square input side in pixels; images are resized to it. Multiple of 32 keeps every stride
   * exact. The default (64 px, `tiny` student) is what trains online at about one step per
   * second on two CPU cores with wasm; the paper's setting is 256 px with the `full` student.
   */
  imageSize: z.number().int().min(32).max(1024).refine((n) => n % 32 === 0, {
    message: "must be a multiple of 32",
  }).default(64),
  teacher: TeacherSchema.default({ kind: "mobilenet_v2" }),
  studentWidth: PdnWidthSchema.default("tiny"),
  /** Autoencoder bottleneck channels (EfficientAD: 64). */
  aeLatent: z.number().int().min(4).max(512).default(64),
  seed: z.number().int().default(42),
}).strict();
/** Detector configuration. */
export type ModelConfig = z.infer<typeof ModelSchema>;

/**
 * Online defect-rate estimate for contamination-aware ATDR: the EMA of the share of a batch
 * whose ATDR distance sum has a robust (median/MAD) z-score above `zCut`; k outliers per batch
 * = min(⌊b · maxFraction⌋, round(margin · rate · b)).
 */
export const ContaminationSchema = z.object({
  /** Robust z-score of a distance sum above which a sample counts as a suspected defect. */
  zCut: z.number().positive().default(2.5),
  /**
   * Per-sample signal the estimate is taken from: `atdr` = ATDR's distance sums (Eq. 5), `st` =
   * the sample's mean student–teacher discrepancy (the current model's anomaly signal).
   */
  signal: z.enum(["atdr", "st"]).default("atdr"),
  /** Most recent samples pooled for the estimate (256 = the last 32 batches of 8). */
  window: z.number().int().min(8).max(100_000).default(256),
  /** Largest share of a batch down-weighted. */
  maxFraction: z.number().min(0).lt(1).default(0.5),
  /** Factor on the expected defects per batch, covering batches with more than the average. */
  margin: z.number().min(0).default(2),
}).strict();
/** Contamination estimator configuration. */
export type ContaminationConfig = z.infer<typeof ContaminationSchema>;

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
  /**
   * ATDR: samples down-weighted per batch. A number is fixed (the paper: 1, Eq. 6's argmax);
   * `"auto"` follows an online estimate of the line's defect rate (see `contamination`).
   * Only used by the `atdr` and `ad2` methods; at most batchSize − 1.
   */
  atdrOutlierCount: z.union([z.literal("auto"), z.number().int().min(0).max(63)]).default(1),
  /** The defect-rate estimator behind `atdrOutlierCount: "auto"` (src/ad2/contamination.ts). */
  contamination: ContaminationSchema.default({}),
  /**
   * Protects the autoencoder branch from ATDR's outliers: `off` (the paper: AE and student–AE
   * losses weigh every sample equally), `weights` (outliers weigh ξ there too), `exclude`
   * (outliers weigh 0 there). Only used by the `atdr` and `ad2` methods.
   */
  protectAutoencoder: z.enum(["off", "weights", "exclude"]).default("off"),
  /**
   * Share of each batch kept out of the AE and student–AE losses (weight 0): the samples with
   * the highest mean student–teacher discrepancy, i.e. those the current model finds least
   * normal. 0 (the paper) keeps every sample; at most 0.5. Any method.
   */
  autoencoderTrim: z.number().min(0).max(0.5).default(0),
  /** Map-normalisation quantiles (EfficientAD: 0.9 and 0.995). */
  mapQuantileA: z.number().min(0).max(1).default(0.9),
  mapQuantileB: z.number().min(0).max(1).default(0.995),
  /**
   * Weight of the autoencoder's normalised map in the combined anomaly map that scores, maps
   * and localises every image; the student–teacher map takes 1 − w. 0.5 (default) is
   * EfficientAD's mean of the two; 0 scores with the student–teacher map alone (the AE's
   * logical-anomaly signal unused). `"auto"`: from how much of the teacher's features the
   * autoencoder explains on the normalisation images (src/ad2/normalisation.ts,
   * `autoAeMapWeight`): 0.5 where it has learnt the part's layout, 0 where it cannot (stochastic
   * textures), refitted with every map normalisation. Read from the line's configuration
   * wherever a detector scores, so changing it needs no retraining.
   */
  autoencoderMapWeight: z.union([z.literal("auto"), z.number().min(0).max(1)]).default(0.5),
  /**
   * What computes the student's and autoencoder's gradients in the trainer stage, `main.ts
   * train` and bench:inspect (src/model/training_engine.ts). `auto` (default): ONNX Runtime
   * (forward and hand-built backward graphs, the same gradients as tfjs) unless
   * `model.backend` is a GPU one; where ORT cannot load, tfjs after one line saying why.
   * `onnxruntime` asks for ORT whatever the backend (same fallback); `tfjs`: tfjs as before.
   */
  engine: z.enum(["auto", "onnxruntime", "tfjs"]).default("auto"),
}).strict();
/** Training configuration. */
export type TrainingConfig = z.infer<typeof TrainingSchema>;
/** Training configuration as written (defaults not yet applied; nested objects partial). */
export type TrainingConfigInput = z.input<typeof TrainingSchema>;

/**
 * A production line id: one NATS subject token (letters, digits, `-`, `_`), so it can name
 * subjects (`inspect.<line>.image`), streams, buckets and KV keys unchanged.
 */
export const LineIdSchema = z.string().regex(
  /^[A-Za-z0-9_-]{1,64}$/,
  "must be 1-64 letters, digits, '-' or '_' (one NATS subject token)",
);

/**
 * How the scorer turns scores into anomalous/normal without labels, from the last `window`
 * scores (the current batch included); the threshold is never below `floor`.
 *
 * - `robust` (default): `median + z · 1.4826 · MAD`, z the standard-normal quantile of
 *   `1 − targetFalseAlarmRate`. Median and MAD ignore up to half the window, so the line's own
 *   defects barely move the threshold and *every* clearly anomalous image is flagged, whatever
 *   the defect rate; the threshold is above the median, so a defect-free line is never flagged
 *   wholesale (on roughly normal scores about `targetFalseAlarmRate` of it is).
 * - `quantile`: the nearest-rank `1 − targetFalseAlarmRate` quantile. At most that share of
 *   recent images is ever flagged — a hard cap on alarms, which also caps recall on a line whose
 *   defect rate is above it.
 *
 * Both flag nothing until the window holds `minScores` scores.
 */
export const ThresholdPolicySchema = z.object({
  method: z.enum(["robust", "quantile"]).default("robust"),
  /** Share of a defect-free line's images that may be flagged. */
  targetFalseAlarmRate: z.number().gt(0).lt(1).default(0.01),
  /** Number of recent scores the statistics are taken over. */
  window: z.number().int().min(10).max(1_000_000).default(2000),
  /** Scores needed before anything is flagged (defaults to `1 / targetFalseAlarmRate`). */
  minScores: z.number().int().min(1).optional(),
  /** Lowest threshold on the map-normalised score (EfficientAD maps the normal q_b pixel value to 0.1). */
  floor: z.number().min(0).default(0.1),
}).strict();
/** Threshold policy configuration. */
export type ThresholdPolicy = z.infer<typeof ThresholdPolicySchema>;

/**
 * Training-set hygiene of the live trainer (src/stages/hygiene.ts): when ATDR-flagged images
 * leave the replay buffer, with a cap on the rejection rate (against confirmation bias) and
 * periodic re-admission from a quarantine (against rejecting a new normal forever). The
 * defaults reproduce the pre-hygiene trainer: every flagged image leaves at once, no guard.
 */
export const HygieneSchema = z.object({
  /** ATDR flags after which an image leaves the buffer. */
  flagsToReject: z.number().int().min(1).default(1),
  /** Largest share of the last `rateWindow` distinct trained images that may be rejected (1 = no cap). */
  maxRejectedFraction: z.number().min(0).max(1).default(1),
  /** Distinct images the cap is measured over. */
  rateWindow: z.number().int().min(1).default(256),
  /** Put the oldest quarantined image back into the buffer every this many steps (0 = never). */
  readmitEverySteps: z.number().int().min(0).default(0),
  /** Rejected images kept for re-admission (0 = none kept). */
  quarantineSize: z.number().int().min(0).max(100_000).default(0),
  /**
   * Also reject a buffered image when the published model's verdict on it is anomalous (its
   * score is above the scorer's threshold): a second opinion from the model version in
   * service, under the same cap and quarantine as ATDR's flags.
   */
  rejectScoredAnomalous: z.boolean().default(false),
  /**
   * When > 0 and the trainer estimates the defect rate (`atdrOutlierCount: "auto"`), the cap is
   * min(maxRejectedFraction, capPerDefectRate × estimate): a clean line loses few images.
   */
  capPerDefectRate: z.number().min(0).max(100).default(0),
}).strict();
/** Hygiene configuration. */
export type HygieneConfig = z.infer<typeof HygieneSchema>;
/** Hygiene configuration as written (defaults not yet applied). */
export type HygieneConfigInput = z.input<typeof HygieneSchema>;

/**
 * Label-free maturity of the first model version (src/stages/maturity.ts): `steps` publishes
 * after `warmupSteps`; `loss_plateau` also waits until the windowed mean loss stops falling.
 */
export const MaturitySchema = z.object({
  /** `steps` (fixed warm-up) or `loss_plateau`. */
  criterion: z.enum(["steps", "loss_plateau"]).default("steps"),
  /** Steps in each of the two windows compared. */
  window: z.number().int().min(1).default(25),
  /** Largest relative fall of the windowed mean loss that counts as a plateau. */
  tolerance: z.number().min(0).max(1).default(0.05),
  /** Publish at this step at the latest, plateau or not. */
  maxSteps: z.number().int().min(1).default(1000),
}).strict();

/** The trainer stage: warm-up, model publication cadence and its image buffer. */
export const TrainerStageSchema = z.object({
  /** Training steps before the first model version is published; verdicts are `warming_up` until then. */
  warmupSteps: z.number().int().min(1).default(50),
  /** Publish a new model version after this many steps since the last one... */
  publishEverySteps: z.number().int().min(1).default(50),
  /** ...or after this many seconds since the last one (when at least one step was taken). */
  publishEverySeconds: z.number().positive().default(60),
  /** Recent images kept for batches, replay and normalisation (ATDR outliers are kept out). */
  bufferSize: z.number().int().min(2).max(100_000).default(256),
  /**
   * Steps on the buffer alone (random replays, no new image) the trainer may take per new image
   * it has trained on, while no new image waits: it keeps converging when the line is slow or
   * stopped. 0 (default): it steps only when new images arrive. The budget is earned by new
   * images, so a quiet line cannot make it train on one buffer without end. Replays train only
   * (ATDR down-weights as always); hygiene judges images on the steps that bring them in.
   */
  replayStepsPerImage: z.number().min(0).max(64).default(0),
  /**
   * Nice value of the trainer's thread (0–19; 0 = as every other stage). Verdicts come first:
   * when ingest, scorer and training compete for the cores the trainer gets what is left, and
   * all of it while the line is idle (src/util/thread_priority.ts; Linux, needs --allow-ffi).
   */
  niceness: z.number().int().min(0).max(19).default(10),
  /** Images the teacher channel statistics are fitted on before the first step. */
  statsImages: z.number().int().min(1).default(64),
  /** Most recent buffered images the map-normalisation quantiles are fitted on at each publication. */
  normalisationImages: z.number().int().min(1).default(64),
  /**
   * Seconds between resume points (`<checkpoints>/<line>/resume.ad2c`, written atomically):
   * a trainer killed -9 resumes from the newest of it and the current version.
   */
  checkpointEverySeconds: z.number().positive().default(30),
  /** Model versions kept in the object store (older ones are deleted). */
  keepVersions: z.number().int().min(1).default(5),
  /** Seed of the replay sampling. */
  seed: z.number().int().default(1),
  /** Which flagged images stop being trained on. */
  hygiene: HygieneSchema.default({}),
  /** When the first version is mature enough to publish (src/stages/maturity.ts). */
  maturity: MaturitySchema.default({}),
}).strict();
/** Trainer stage configuration. */
export type TrainerStageConfig = z.infer<typeof TrainerStageSchema>;

/** The scorer stage. */
export const ScorerStageSchema = z.object({
  /** Images scored together (at most; a batch never waits for more images than are pending). */
  batchSize: z.number().int().min(1).max(256).default(8),
  threshold: ThresholdPolicySchema.default({}),
}).strict();
/** Scorer stage configuration. */
export type ScorerStageConfig = z.infer<typeof ScorerStageSchema>;

/**
 * The engine that scores images (scorer stage, `main.ts score`, benchmarks). `auto` (default)
 * is ONNX Runtime on the CPU — about 4× tfjs-wasm on the same network (README, speed) — unless
 * `model.backend` is a GPU backend of tfjs; where ORT cannot load (no FFI permission, no native
 * library, no AVX2) scoring falls back to tfjs with one log line. Training stays on tfjs.
 */
export const InferenceSchema = z.object({
  engine: z.enum(["auto", "onnxruntime", "tfjs"]).default("auto"),
  /**
   * ONNX Runtime intra-op threads. `auto`: every core for a scorer alone in its process; under
   * `run`, which also trains in the same process, the cores less the trainer's one.
   */
  threads: z.union([z.literal("auto"), z.number().int().min(1).max(256)]).default("auto"),
  /** ONNX Runtime execution provider; `cuda` needs ORT's CUDA libraries (an error says so). */
  device: z.enum(["cpu", "cuda"]).default("cpu"),
}).strict();
/** Inference engine configuration. */
export type InferenceConfig = z.infer<typeof InferenceSchema>;

/** Retention of the line's JetStream streams (images, decoded images, verdicts, training events). */
export const StreamLimitsSchema = z.object({
  /** Oldest message kept, in seconds (also how long an Image-Id stays reserved). */
  maxAgeSeconds: z.number().positive().default(7 * 24 * 3600),
  /** Largest stream size in bytes (per stream). */
  maxBytes: z.number().int().positive().default(1024 ** 3),
  /** Most messages kept (per stream). */
  maxMsgs: z.number().int().positive().default(1_000_000),
  /** Window in which JetStream drops a re-published message with the same `Nats-Msg-Id`. */
  duplicateWindowSeconds: z.number().positive().default(120),
  /**
   * Copies of every stream, KV bucket and object store of the line: 1 on a single server, 3
   * on a JetStream cluster (survives the loss of one node). At most the cluster's size.
   */
  replicas: z.number().int().min(1).max(5).default(1),
  /**
   * When the image stream is full: `old` (default) discards its oldest images (the stream is
   * also the line's history; the stages raise alarms when unprocessed ones go); `new` refuses
   * new ones, so a camera publishing with JetStream gets an error, but the line stops taking
   * images whenever the limits are reached: size them for `maxAgeSeconds` of the line.
   */
  imageDiscard: z.enum(["old", "new"]).default("old"),
}).strict();
/** Stream retention configuration. */
export type StreamLimits = z.infer<typeof StreamLimitsSchema>;

/**
 * Redelivery of the line's work (src/bus/delivery.ts): how long a stage may hold a message
 * before JetStream hands it to another process, and how often a message that keeps failing is
 * tried before it gets a `processing_failed` rejection.
 */
export const DeliverySchema = z.object({
  /**
   * Deliveries of one image to ingest or the scorer; the last failed one publishes a
   * `rejected` verdict with code `processing_failed` (a poison message ends there).
   */
  maxDeliver: z.number().int().min(2).max(100).default(8),
  /**
   * Lowest ack_wait in seconds. Stages raise it to `ackWaitPerStep` times the slowest step
   * they measured, and send progress acks while a step runs.
   */
  minAckWaitSeconds: z.number().min(1).max(3600).default(30),
  /** ack_wait as a multiple of the slowest measured batch step. */
  ackWaitPerStep: z.number().min(2).max(100).default(10),
}).strict();
/** Redelivery configuration. */
export type DeliveryConfig = z.infer<typeof DeliverySchema>;

/** Limits checked before an image is decoded. */
export const ImageLimitsSchema = z.object({
  /** Largest encoded payload in bytes (NATS' own max_payload, 1 MB by default, applies first). */
  maxBytes: z.number().int().positive().default(20_000_000),
  /** Largest width × height accepted. */
  maxPixels: z.number().int().positive().default(40_000_000),
}).strict();
/** Image limit configuration. */
export type ImageLimits = z.infer<typeof ImageLimitsSchema>;

/**
 * Model versions read from the bus are untrusted input (scorers, a restarting trainer): their
 * size cap and whether a signing key is required. The key itself only ever comes from the
 * environment (see `src/bus/model_signing.ts`).
 */
export const ModelObjectsSchema = z.object({
  /** Largest model object accepted, in bytes; larger ones are refused before being read. */
  maxBytes: z.number().int().positive().default(256 * 1024 ** 2),
  /** Refuse to start when no model signing key is set in the environment. */
  requireSignature: z.boolean().default(false),
}).strict();
/** Model object limits. */
export type ModelObjectsConfig = z.infer<typeof ModelObjectsSchema>;

/**
 * Heatmaps of scored images (`inspect.<line>.heatmap.*`, stream `INSPECT_<line>_HEATMAPS`): an
 * 8-bit PNG of the combined anomaly map per scored verdict. Their stream has its own, shorter
 * retention, as heatmaps matter while someone looks at the line.
 */
export const HeatmapsSchema = z.object({
  /** Publish a heatmap with every scored verdict (false: verdicts carry `heatmap: null`). */
  enabled: z.boolean().default(true),
  /** Oldest heatmap kept, in seconds. */
  maxAgeSeconds: z.number().positive().default(24 * 3600),
  /** Largest heatmap stream size in bytes. */
  maxBytes: z.number().int().positive().default(256 * 1024 ** 2),
}).strict();
/** Heatmap configuration. */
export type HeatmapsConfig = z.infer<typeof HeatmapsSchema>;

/** A TCP port; 0 lets the system pick a free one (the bound port is logged). */
const PortSchema = z.number().int().min(0).max(65_535);

/** The Prometheus `/metrics` endpoint every pipeline process serves. */
export const MetricsSchema = z.object({
  enabled: z.boolean().default(true),
  /** Interface to bind; the loopback default keeps the endpoint off the network. */
  hostname: z.string().min(1).default("127.0.0.1"),
  /** Port (several processes on one machine need one each; 0 picks a free one). */
  port: PortSchema.default(9464),
}).strict();
/** Metrics endpoint configuration. */
export type MetricsConfig = z.infer<typeof MetricsSchema>;

/** The live dashboard `run` serves. */
export const DashboardSchema = z.object({
  enabled: z.boolean().default(true),
  /** Interface to bind. Anything but loopback requires a token. */
  hostname: z.string().min(1).default("127.0.0.1"),
  /** Port (0 picks a free one). */
  port: PortSchema.default(8090),
  /**
   * Access token (at least 16 characters; `$DASHBOARD_TOKEN` overrides it). Required before
   * the dashboard binds anything but loopback; when set, every request must carry it.
   */
  token: z.string().min(16).optional(),
}).strict();
/** Dashboard configuration. */
export type DashboardConfig = z.infer<typeof DashboardSchema>;

/** One production line's streaming pipeline (`pipelines/<line>.json`). */
export const PipelineSchema = z.object({
  line: LineIdSchema,
  model: ModelSchema.default({}),
  training: TrainingSchema.default({}),
  trainer: TrainerStageSchema.default({}),
  scorer: ScorerStageSchema.default({}),
  inference: InferenceSchema.default({}),
  streams: StreamLimitsSchema.default({}),
  images: ImageLimitsSchema.default({}),
  delivery: DeliverySchema.default({}),
  models: ModelObjectsSchema.default({}),
  heatmaps: HeatmapsSchema.default({}),
  metrics: MetricsSchema.default({}),
  dashboard: DashboardSchema.default({}),
}).strict();
/** Pipeline configuration, every default filled in. */
export type PipelineConfig = z.infer<typeof PipelineSchema>;
/** Pipeline configuration as written in a file (defaults optional). */
export type PipelineConfigInput = z.input<typeof PipelineSchema>;
