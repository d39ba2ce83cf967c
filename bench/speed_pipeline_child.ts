/**
 * Child-process entry of the pipeline part of the speed benchmark: the bare model's scoring
 * throughput, i.e. what the scorer stage does per batch (its engine's `scoreWithMaps`: ONNX
 * Runtime on the threads `run` gives the scorer, or tfjs) with nothing else in the process —
 * the ceiling the pipeline is compared with. Run through `child_process.ts`, so it has a fresh
 * tfjs and the cores to itself.
 *
 * @module
 */
import { type InferenceConfig, type ModelConfig, TrainingSchema } from "../src/config/schema.ts";
import { prepareScoringEngines, type ScoringEngine } from "../src/model/engine.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { serveChildJob } from "./child_process.ts";
import { median } from "./timing.ts";

/** The bare-model job. */
export interface BareScoringJob {
  /** The line's model configuration (what the scorer loads). */
  model: ModelConfig;
  /** The scorer's engine (threads resolved as `run` gives them). */
  inference: InferenceConfig;
  /** Images per `score` call: the scorer's `batchSize`. */
  batch: number;
  /** Untimed batches first (kernel compilation, first allocations). */
  warmupBatches: number;
  /** Timed batches: at least this many... */
  minBatches: number;
  /** ...and at least this many seconds of them. */
  minSeconds: number;
}

/** Steady-state scoring throughput of the bare model, or why there is none. */
export type BareScoringResult =
  | {
    ok: true;
    /** Engine that ran, e.g. `onnxruntime (cpu, 1 thread)` or `tfjs (wasm)`. */
    backend: string;
    /** Images scored per second over the timed batches. */
    imagesPerSecond: number;
    /** Median time of one batch, ms. */
    medianBatchMs: number;
    /** Timed batches. */
    batches: number;
    /** Timed seconds. */
    seconds: number;
  }
  | { ok: false; reason: string };

/**
 * Scores synthetic images batch by batch, as the scorer does, and times the batches after
 * warm-up. The weights are untrained: scoring costs the same whatever they hold.
 */
export async function bareScoring(job: BareScoringJob): Promise<BareScoringResult> {
  let backend: string;
  try {
    backend = await initBackend(job.model.backend);
  } catch (error) {
    return { ok: false, reason: describe(error) };
  }
  const size = job.model.imageSize;
  const random = new SeededRandom(11);
  // A small pool of distinct images, cycled: content does not change the cost.
  const pool = Array.from({ length: 4 * job.batch }, () => {
    const pixels = new Float32Array(size * size * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = random.next();
    return pixels;
  });
  let detector: Detector | undefined;
  let engine: ScoringEngine | undefined;
  try {
    // The training section does not change scoring.
    detector = await Detector.create(job.model, TrainingSchema.parse({}));
    const fit = toBatch(pool, size);
    detector.fitTeacherStats([fit]);
    detector.fitMapNormalisation([fit]);
    fit.dispose();
    // The scorer's own engine and its scoring call (maps included: heatmaps and regions).
    const engines = await prepareScoringEngines(job.inference, job.model, console.warn);
    engine = await engines.build(detector, "bare");
    backend = engine.description;
    const scoreBatch = async (b: number) => {
      const images = Array.from({ length: job.batch }, (_, i) => pool[(b + i) % pool.length]);
      await engine!.scoreWithMaps(images);
    };
    for (let b = 0; b < job.warmupBatches; b++) await scoreBatch(b);
    const batchMs: number[] = [];
    const start = performance.now();
    while (batchMs.length < job.minBatches || performance.now() - start < job.minSeconds * 1000) {
      const t = performance.now();
      await scoreBatch(batchMs.length);
      batchMs.push(performance.now() - t);
    }
    const seconds = (performance.now() - start) / 1000;
    return {
      ok: true,
      backend,
      imagesPerSecond: (batchMs.length * job.batch) / seconds,
      medianBatchMs: median(batchMs),
      batches: batchMs.length,
      seconds,
    };
  } catch (error) {
    return { ok: false, reason: `failed: ${describe(error)}` };
  } finally {
    await engine?.dispose();
    try {
      detector?.dispose();
    } catch {
      // after a wasm abort nothing can be freed; the process ends anyway
    }
  }
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

if (import.meta.main) await serveChildJob<BareScoringJob, BareScoringResult>(bareScoring);
