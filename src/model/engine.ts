/**
 * Scoring engines: what turns a fitted {@link Detector} into scores and heatmaps. `onnxruntime`
 * runs the detector's exported ONNX graph (`src/model/onnx/`) natively, on as many threads as
 * configured; `tfjs` runs the detector itself on its tfjs backend. Both give the same numbers
 * (tests/model_onnx.test.ts: within 1e-4 relative).
 *
 * {@link prepareScoringEngines} decides once per thread which engine builds the sessions, so a
 * stage says once, in one line, when ORT cannot load and tfjs takes over.
 *
 * @module
 */
import type * as tf from "@tensorflow/tfjs";
import type { InferenceConfig, ModelConfig } from "../config/schema.ts";
import type { Detector, MappedScoreReport, ScoreReport } from "./detector.ts";
import { packImages, toBatch } from "./batches.ts";
import { availableCores } from "../util/cores.ts";
import { exportDetectorOnnx, SCORING_IO } from "./onnx/export.ts";
import { loadOnnxRuntime, openSession, type OrtModule, probeSession } from "./onnx/runtime.ts";

/** A scoring session for one model version. */
export interface ScoringEngine {
  /** e.g. `onnxruntime (cpu, 2 threads)` or `tfjs (wasm)`. */
  readonly description: string;
  /** Scores `size × size × 3` pixel arrays (HWC, [0,1]); one report per image, in order. */
  score(images: readonly Float32Array[]): Promise<ScoreReport[]>;
  /** {@link score} plus each image's combined, normalised map at input resolution (`size²`). */
  scoreWithMaps(images: readonly Float32Array[]): Promise<MappedScoreReport[]>;
  /** Frees the session (not the detector it was built from). */
  dispose(): Promise<void>;
}

/** Builds engines of the kind chosen for this thread. */
export interface ScoringEngines {
  /** The engine kind in use. */
  readonly kind: "onnxruntime" | "tfjs";
  /** e.g. `onnxruntime (cpu, 1 thread)`. */
  readonly description: string;
  /** A scoring session for `detector` (fitted); `label` names it in the exported graph. */
  build(detector: Detector, label?: string): Promise<ScoringEngine>;
}

/** tfjs backends that run on a GPU: with them `auto` keeps scoring on tfjs. */
const GPU_BACKENDS: readonly ModelConfig["backend"][] = ["webgpu", "tensorflow-gpu"];

/**
 * Chooses the engine for `inference` (see `InferenceSchema`): `tfjs`, or ONNX Runtime when it
 * loads, else tfjs after one `warn` line saying why.
 *
 * @param cores cores `threads: "auto"` may use (default: all of this machine's)
 * @throws when `device` is "cuda" and ORT has no usable CUDA provider (the message says what
 *   to install)
 */
export async function prepareScoringEngines(
  inference: InferenceConfig,
  model: ModelConfig,
  warn: (line: string) => void,
  cores = availableCores(),
): Promise<ScoringEngines> {
  const wantsOrt = inference.engine === "onnxruntime" ||
    (inference.engine === "auto" && !GPU_BACKENDS.includes(model.backend));
  if (!wantsOrt) return tfjsEngines(model);
  const loaded = await loadOnnxRuntime();
  if (!loaded.ok) {
    warn(`onnxruntime unavailable (${loaded.reason}); scoring with tfjs (${model.backend})`);
    return tfjsEngines(model);
  }
  const threads = inference.threads === "auto" ? Math.max(1, cores) : inference.threads;
  const options = { threads, device: inference.device };
  if (inference.device === "cuda") {
    // Fail at start, not at the first model version.
    await probeSession(loaded.ort, options);
  }
  const description = `onnxruntime (${inference.device}, ${threads} thread${
    threads === 1 ? "" : "s"
  })`;
  return {
    kind: "onnxruntime",
    description,
    build: async (detector, label) => {
      const session = await openSession(loaded.ort, exportDetectorOnnx(detector, label), options);
      return new OrtScoringEngine(loaded.ort, session, detector.model.imageSize, description);
    },
  };
}

/** Scores every image in batches of `batchSize`; one report per image, in order. */
export async function scoreAllWith(
  engine: ScoringEngine,
  images: readonly Float32Array[],
  batchSize = 16,
): Promise<ScoreReport[]> {
  const reports: ScoreReport[] = [];
  for (let start = 0; start < images.length; start += batchSize) {
    reports.push(...await engine.score(images.slice(start, start + batchSize)));
  }
  return reports;
}

function tfjsEngines(model: ModelConfig): ScoringEngines {
  const description = `tfjs (${model.backend})`;
  return {
    kind: "tfjs",
    description,
    build: (detector) => Promise.resolve(new TfjsScoringEngine(detector, description)),
  };
}

class TfjsScoringEngine implements ScoringEngine {
  readonly description: string;
  readonly #detector: Detector;

  constructor(detector: Detector, description: string) {
    this.#detector = detector;
    this.description = description;
  }

  score(images: readonly Float32Array[]): Promise<ScoreReport[]> {
    return this.#withBatch(images, (batch) => this.#detector.score(batch));
  }

  scoreWithMaps(images: readonly Float32Array[]): Promise<MappedScoreReport[]> {
    return this.#withBatch(images, (batch) => this.#detector.scoreWithMaps(batch));
  }

  #withBatch<T>(images: readonly Float32Array[], fn: (batch: tf.Tensor4D) => T[]): Promise<T[]> {
    if (images.length === 0) return Promise.resolve([]);
    const batch = toBatch(images, this.#detector.model.imageSize);
    try {
      return Promise.resolve(fn(batch));
    } finally {
      batch.dispose();
    }
  }

  dispose(): Promise<void> {
    return Promise.resolve();
  }
}

class OrtScoringEngine implements ScoringEngine {
  readonly description: string;
  readonly #ort: OrtModule;
  readonly #session: Awaited<ReturnType<typeof openSession>>;
  readonly #size: number;

  constructor(
    ort: OrtModule,
    session: Awaited<ReturnType<typeof openSession>>,
    size: number,
    description: string,
  ) {
    this.#ort = ort;
    this.#session = session;
    this.#size = size;
    this.description = description;
  }

  async score(images: readonly Float32Array[]): Promise<ScoreReport[]> {
    return await this.#scores(images, false);
  }

  async scoreWithMaps(images: readonly Float32Array[]): Promise<MappedScoreReport[]> {
    return await this.#scores(images, true) as MappedScoreReport[];
  }

  async #scores(images: readonly Float32Array[], withMaps: boolean): Promise<ScoreReport[]> {
    if (images.length === 0) return [];
    const names = [SCORING_IO.score, SCORING_IO.stScore, SCORING_IO.aeScore];
    const out = await this.#run(images, withMaps ? [...names, SCORING_IO.heatmap] : names);
    const [score, st, ae] = names.map((name) => out[name].data as Float32Array);
    const maps = withMaps ? out[SCORING_IO.heatmap].data as Float32Array : null;
    const per = this.#size * this.#size;
    return Array.from(score, (value, i) => ({
      score: value,
      stScore: st[i],
      aeScore: ae[i],
      ...(maps ? { map: maps.slice(i * per, (i + 1) * per) } : {}),
    }));
  }

  async dispose(): Promise<void> {
    await this.#session.release();
  }

  async #run(images: readonly Float32Array[], fetches: string[]) {
    const size = this.#size;
    const data = packImages(images, size);
    const input = new this.#ort.Tensor("float32", data, [images.length, size, size, 3]);
    return await this.#session.run({ [SCORING_IO.images]: input }, fetches);
  }
}
