/**
 * Training engines: what computes a {@link Detector}'s training step. `tfjs` is
 * `Detector.trainStep` (tfjs differentiates everything; the frozen teacher's features may come
 * from ONNX Runtime, `teacher_engine.ts`). `onnxruntime` runs the student, the autoencoder and
 * the teacher forward in one ORT session and the hand-built backward graph
 * (`src/model/onnx/training_graph.ts`) in another; between the two, tfjs evaluates the loss
 * (`step_loss.ts`, the same function `trainStep` differentiates) on the networks' outputs and
 * gives its gradient w.r.t. those outputs — the quantiles, NMFE weights and ATDR selection stay
 * `src/ad2`'s. Adam (tfjs's formula, float32 arithmetic, torch-style L2 weight decay) runs in
 * TypeScript; the detector's tf.Variables are read before and written after every step, so
 * they stay the one source of truth for scoring, versions and checkpoints.
 *
 * Dropout: the masks are `tf.dropout` draws with the detector's per-step seed
 * (`autoencoderDropoutMask`), fed to both graphs — the same masks as the tfjs step, so a rerun
 * is identical and both engines train the same model.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type * as Ort from "onnxruntime-node";
import type { InferenceConfig, TrainingConfig } from "../config/schema.ts";
import { normaliseFeatures } from "../ad2/mod.ts";
import type { Detector, StepPlan, TrainStepReport } from "./detector.ts";
import { packImages, toBatch } from "./batches.ts";
import { autoencoderChain, buildTrainingGraphs, pdnChain } from "./onnx/training_graph.ts";
import type { TrainingGraphs } from "./onnx/training_graph.ts";
import { teacherGraph } from "./onnx/teacher_graph.ts";
import { loadOnnxRuntime, openSession, type OrtModule } from "./onnx/runtime.ts";
import { autoencoderDropoutMask } from "./autoencoder.ts";
import { pdnOutputSize } from "./pdn.ts";
import { detectorStepLoss, type StepLoss } from "./step_loss.ts";
import {
  featureTensor,
  type TeacherFeatureSource,
  teacherFeatureSource,
} from "./teacher_engine.ts";

/** Trains one detector, step by step. */
export interface TrainingEngine {
  /** The engine kind in use. */
  readonly kind: "onnxruntime" | "tfjs";
  /** e.g. `onnxruntime (cpu, 1 thread)`, or `tfjs (wasm), teacher features with …`. */
  readonly description: string;
  /** One optimiser step on `images` (`size × size × 3` HWC in [0, 1], at least 2). */
  step(images: readonly Float32Array[]): Promise<TrainStepReport>;
  /** Frees the engine's sessions (not the detector). */
  dispose(): Promise<void>;
}

/** Options of {@link prepareTrainingEngine}. */
export interface TrainingEngineOptions {
  /** The inference section: the teacher's engine on the tfjs route, ORT's device. */
  inference: InferenceConfig;
  /** Receives the one line saying why ORT is not used, when it is wanted but cannot load. */
  warn: (line: string) => void;
  /** ORT intra-op threads (default 1: the trainer is a one-core stage). */
  threads?: number;
  /**
   * The engine asked for (default `detector.training.engine`; a detector restored from a
   * version carries the training section it was trained with, the line's may differ).
   */
  engine?: TrainingConfig["engine"];
}

/** tfjs backends that run on a GPU: with them `auto` keeps training on tfjs. */
const GPU_BACKENDS = ["webgpu", "tensorflow-gpu"];

/**
 * The training engine `options.engine` (default `detector.training.engine`) asks for (see
 * `TrainingSchema.engine`):
 * ORT when wanted and it loads, else tfjs (one `warn` line when ORT was wanted).
 *
 * @throws when ORT is asked for on `inference.device` "cuda" and has no CUDA provider
 */
export async function prepareTrainingEngine(
  detector: Detector,
  options: TrainingEngineOptions,
): Promise<TrainingEngine> {
  const engine = options.engine ?? detector.training.engine;
  const backend = detector.model.backend;
  const threads = options.threads ?? 1;
  const wantsOrt = engine === "onnxruntime" ||
    (engine === "auto" && !GPU_BACKENDS.includes(backend));
  if (wantsOrt) {
    const loaded = await loadOnnxRuntime();
    if (loaded.ok) return await OrtTrainingEngine.create(loaded.ort, detector, options, threads);
    // One line: the teacher's features cannot come from ORT either.
    options.warn(`onnxruntime unavailable (${loaded.reason}); training with tfjs (${backend})`);
    return new TfjsTrainingEngine(detector, null);
  }
  const teacher = await teacherFeatureSource(
    detector.teacher,
    detector.model.imageSize,
    options.inference,
    backend,
    options.warn,
    threads,
  );
  return new TfjsTrainingEngine(detector, teacher);
}

/** `Detector.trainStep`, with the teacher's features from `teacher` when there is one. */
export class TfjsTrainingEngine implements TrainingEngine {
  readonly kind = "tfjs";
  readonly description: string;
  readonly #detector: Detector;
  readonly #teacher: TeacherFeatureSource | null;

  /** Trains `detector` with tfjs; `teacher` (owned by the engine from now on) or its own. */
  constructor(detector: Detector, teacher: TeacherFeatureSource | null) {
    this.#detector = detector;
    this.#teacher = teacher;
    this.description = `tfjs (${detector.model.backend}), teacher features with ${
      teacher?.description ?? "tfjs"
    }`;
  }

  async step(images: readonly Float32Array[]): Promise<TrainStepReport> {
    // Awaited before any tensor exists: no tensor is alive while other work runs.
    const raw = this.#teacher ? await this.#teacher.features(images) : null;
    const batch = toBatch(images, this.#detector.model.imageSize);
    const features = raw ? featureTensor(raw) : undefined;
    try {
      return this.#detector.trainStep(batch, features);
    } finally {
      batch.dispose();
      features?.dispose();
    }
  }

  async dispose(): Promise<void> {
    await this.#teacher?.dispose();
  }
}

/**
 * Adam exactly as tfjs's `AdamOptimizer` computes it (float32 arithmetic, op by op:
 * m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², w ← w − lr · (m / (1−β1ᵗ)) / (√(v / (1−β2ᵗ)) + ε)),
 * with torch-style L2 weight decay added to the gradient first (g ← g + wd·w), as
 * `Detector.trainStep` does.
 */
export class AdamState {
  readonly #m: Float32Array[];
  readonly #v: Float32Array[];
  readonly #beta1 = Math.fround(0.9);
  readonly #beta2 = Math.fround(0.999);
  readonly #epsilon = Math.fround(1e-8);
  #accBeta1 = Math.fround(0.9);
  #accBeta2 = Math.fround(0.999);

  /** Zero moments for parameters of these sizes. */
  constructor(sizes: readonly number[]) {
    this.#m = sizes.map((n) => new Float32Array(n));
    this.#v = sizes.map((n) => new Float32Array(n));
  }

  /** Updates `params` in place from `grads` (same order and sizes as the constructor's). */
  apply(
    params: Float32Array[],
    grads: readonly Float32Array[],
    learningRate: number,
    weightDecay: number,
  ): void {
    const f = Math.fround;
    const b1 = this.#beta1;
    const b2 = this.#beta2;
    const oneMinusB1 = f(1 - 0.9);
    const oneMinusB2 = f(1 - 0.999);
    const c1 = f(1 - this.#accBeta1);
    const c2 = f(1 - this.#accBeta2);
    const negLr = f(-learningRate);
    const wd = f(weightDecay);
    const eps = this.#epsilon;
    params.forEach((w, p) => {
      const g = grads[p];
      const m = this.#m[p];
      const v = this.#v[p];
      if (g.length !== w.length || m.length !== w.length) {
        throw new Error(`Adam: parameter ${p} has ${w.length} values, gradient ${g.length}`);
      }
      for (let i = 0; i < w.length; i++) {
        const grad = wd > 0 ? f(g[i] + f(w[i] * wd)) : g[i];
        const mi = f(f(m[i] * b1) + f(grad * oneMinusB1));
        const vi = f(f(v[i] * b2) + f(f(grad * grad) * oneMinusB2));
        m[i] = mi;
        v[i] = vi;
        const step = f(f(f(mi / c1) / f(f(Math.sqrt(f(vi / c2))) + eps)) * negLr);
        w[i] = f(step + w[i]);
      }
    });
    this.#accBeta1 = f(this.#accBeta1 * b1);
    this.#accBeta2 = f(this.#accBeta2 * b2);
  }
}

/** The forward and backward sessions of a training graph pair. */
export class OrtTrainingSessions {
  readonly graphs: TrainingGraphs;
  readonly #ort: OrtModule;
  readonly #forward: Ort.InferenceSession;
  readonly #backward: Ort.InferenceSession;

  private constructor(
    ort: OrtModule,
    graphs: TrainingGraphs,
    forward: Ort.InferenceSession,
    backward: Ort.InferenceSession,
  ) {
    this.#ort = ort;
    this.graphs = graphs;
    this.#forward = forward;
    this.#backward = backward;
  }

  /** Opens both sessions of `graphs` on `threads` threads. */
  static async open(
    ort: OrtModule,
    graphs: TrainingGraphs,
    options: { threads: number; device: InferenceConfig["device"] },
  ): Promise<OrtTrainingSessions> {
    // Without ORT's arena the activations go back to the system between runs (half the peak).
    const sessionOptions = { ...options, memoryArena: false };
    const forward = await openSession(ort, graphs.forward, sessionOptions);
    try {
      const backward = await openSession(ort, graphs.backward, sessionOptions);
      return new OrtTrainingSessions(ort, graphs, forward, backward);
    } catch (error) {
      await forward.release();
      throw error;
    }
  }

  /** A float32 ORT tensor. */
  tensor(data: Float32Array, dims: readonly number[]): Ort.Tensor {
    return new this.#ort.Tensor("float32", data, dims);
  }

  /**
   * The shared inputs of both graphs: images `[B, S, S, 3]`, the parameters (tfjs layout,
   * shapes as given) and the dropout masks.
   */
  feeds(
    images: Float32Array,
    batch: number,
    params: readonly { data: Float32Array; shape: readonly number[] }[],
    masks: readonly Float32Array[],
  ): Record<string, Ort.Tensor> {
    const g = this.graphs;
    const size = Math.round(Math.sqrt(images.length / batch / 3));
    const feeds: Record<string, Ort.Tensor> = {
      [g.images]: this.tensor(images, [batch, size, size, 3]),
    };
    g.params.forEach((name, i) => (feeds[name] = this.tensor(params[i].data, params[i].shape)));
    g.masks.forEach((
      { name, shape },
      i,
    ) => (feeds[name] = this.tensor(masks[i], [batch, ...shape])));
    return feeds;
  }

  /** Runs the forward graph: chain outputs, the teacher's output and the saved activations. */
  async forward(feeds: Record<string, Ort.Tensor>): Promise<Record<string, Ort.Tensor>> {
    return await this.#forward.run(feeds);
  }

  /**
   * Runs the backward graph on the forward results and the output gradients (NHWC, chain
   * order); returns the parameter gradients in parameter order.
   */
  async backward(
    feeds: Record<string, Ort.Tensor>,
    forward: Record<string, Ort.Tensor>,
    outputGradients: readonly Float32Array[],
    batch: number,
  ): Promise<Float32Array[]> {
    const g = this.graphs;
    const all: Record<string, Ort.Tensor> = { ...feeds };
    for (const name of g.saved) all[name] = forward[name];
    g.outputs.forEach(({ gradient, shape }, i) => {
      all[gradient] = this.tensor(outputGradients[i], [batch, ...shape]);
    });
    const out = await this.#backward.run(all, g.gradients);
    return g.gradients.map((name) => out[name].data as Float32Array);
  }

  /** Releases both sessions. */
  async release(): Promise<void> {
    await this.#forward.release();
    await this.#backward.release();
  }
}

/** The detector's training graphs: student and autoencoder chains, the teacher when exportable. */
export function detectorTrainingGraphs(detector: Detector): TrainingGraphs {
  const size = detector.model.imageSize;
  const grid = pdnOutputSize(size);
  const variables = detector.namedVariables();
  const studentParams = variables.filter((v) => v.name.startsWith("student/")).length;
  const teacher = detector.teacher;
  return buildTrainingGraphs({
    imageSize: size,
    paramShapes: variables.map((v) => v.variable.shape),
    chains: [
      { chain: pdnChain(detector.student, "student", size, 0), input: "network" },
      { chain: autoencoderChain(detector.autoencoder, studentParams), input: "network" },
    ],
    teacher: teacher.network.kind === "opaque" ? undefined : {
      append: (g, raw) => teacherGraph(g, teacher, raw, size),
      shape: [teacher.channels, grid, grid],
    },
    label: `ad2_detector_training_${size}px`,
  });
}

/** What {@link OrtTrainingEngine.gradients} computed. */
export interface OrtGradients {
  /** Loss values: `total` and the parts. */
  losses: Record<string, number>;
  /** What the loss decided (outliers, trim, …). */
  loss: StepLoss;
  /** dL/dθ per parameter, `Detector.namedVariables` order, tfjs layout. */
  gradients: Float32Array[];
  /** The parameter values they were computed at (copies). */
  params: { data: Float32Array; shape: readonly number[] }[];
}

/** The ONNX Runtime training engine of one detector. */
export class OrtTrainingEngine implements TrainingEngine {
  readonly kind = "onnxruntime";
  readonly description: string;
  readonly #detector: Detector;
  readonly #sessions: OrtTrainingSessions;
  readonly #adam: AdamState;

  private constructor(detector: Detector, sessions: OrtTrainingSessions, description: string) {
    this.#detector = detector;
    this.#sessions = sessions;
    this.description = description;
    this.#adam = new AdamState(detector.namedVariables().map((v) => v.variable.size));
  }

  /** Builds the graphs of `detector` and opens their sessions. */
  static async create(
    ort: OrtModule,
    detector: Detector,
    options: TrainingEngineOptions,
    threads: number,
  ): Promise<OrtTrainingEngine> {
    const device = options.inference.device;
    const sessions = await OrtTrainingSessions.open(ort, detectorTrainingGraphs(detector), {
      threads,
      device,
    });
    const teacher = sessions.graphs.teacherOut
      ? ""
      : `, teacher with tfjs (${detector.model.backend})`;
    return new OrtTrainingEngine(
      detector,
      sessions,
      `onnxruntime (${device}, ${threads} thread${threads === 1 ? "" : "s"})${teacher}`,
    );
  }

  async step(images: readonly Float32Array[]): Promise<TrainStepReport> {
    const detector = this.#detector;
    const plan = detector.planStep(images.length);
    const computed = await this.gradients(images, plan);
    const cfg: TrainingConfig = detector.training;
    const values = computed.params.map((p) => p.data);
    this.#adam.apply(values, computed.gradients, cfg.learningRate, cfg.weightDecay);
    detector.namedVariables().forEach(({ variable }, i) => {
      const updated = tf.tensor(values[i], variable.shape);
      variable.assign(updated);
      updated.dispose();
    });
    return detector.completeStep(computed.losses, computed.loss);
  }

  /**
   * The loss and every parameter's gradient (in `Detector.namedVariables` order, tfjs layout)
   * on `images` under `plan`, without updating anything: the step's first half (tests compare
   * it with tfjs's gradients).
   */
  async gradients(images: readonly Float32Array[], plan: StepPlan): Promise<OrtGradients> {
    const detector = this.#detector;
    const stats = detector.teacherStats;
    if (!stats) {
      throw new Error("teacher statistics are not fitted yet: call fitTeacherStats first");
    }
    const batch = images.length;
    if (batch < 2) throw new Error(`a training step needs at least 2 images, got ${batch}`);
    const size = detector.model.imageSize;
    const sessions = this.#sessions;
    const graphs = sessions.graphs;
    // Copies: the variables stay untouched until the update is written back.
    const params = detector.namedVariables().map(({ variable }) => ({
      data: (variable.dataSync() as Float32Array).slice(),
      shape: variable.shape,
    }));
    const masks = graphs.masks.map(({ shape }, i) => {
      const mask = autoencoderDropoutMask([batch, ...shape], plan.dropoutSeed + i);
      const data = mask.dataSync() as Float32Array;
      mask.dispose();
      return data;
    });
    const feeds = sessions.feeds(packImages(images, size), batch, params, masks);
    const forward = await sessions.forward(feeds);

    // The loss and its gradient w.r.t. the networks' outputs, by tfjs (no tensor outlives it).
    let loss: StepLoss | undefined;
    const losses: Record<string, number> = {};
    // Read into this array, not returned from tf.tidy: tidy walks a returned typed array
    // element by element looking for tensors (~0.5 s at 64 px).
    const outputGradients: Float32Array[] = [];
    tf.tidy(() => {
      const [student, ae] = graphs.outputs.map(({ output, shape }) =>
        tf.tensor4d(forward[output].data as Float32Array, [batch, ...shape])
      );
      const target = graphs.teacherOut
        ? normaliseFeatures(
          tf.tensor4d(forward[graphs.teacherOut].data as Float32Array, [
            batch,
            ...graphs.outputs[1].shape,
          ]),
          stats,
        )
        : detector.teacherTarget(toBatch(images, size));
      const { value, grads } = tf.valueAndGrads((s: tf.Tensor, a: tf.Tensor) => {
        loss = detectorStepLoss(s as tf.Tensor4D, a as tf.Tensor4D, target, plan.lossOptions);
        for (const [name, part] of Object.entries(loss.parts)) {
          losses[name] = part.dataSync()[0];
        }
        return loss.total;
      })([student, ae]);
      losses.total = value.dataSync()[0];
      for (const g of grads) outputGradients.push(g.dataSync() as Float32Array);
    });
    const gradients = await sessions.backward(feeds, forward, outputGradients, batch);
    return { losses, loss: loss!, gradients, params };
  }

  async dispose(): Promise<void> {
    await this.#sessions.release();
  }
}
