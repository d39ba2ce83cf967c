/**
 * The measurements of the speed benchmark, each meant to run in a fresh worker (its own tfjs
 * and wasm memory, so an out-of-memory failure or a slow backend cannot spoil the others):
 * PDN-only training step and forward pass (like the PyTorch peer), full detector training
 * step, detector scoring, and a long scoring run watching RSS and tensor counts.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import {
  type BackendName,
  ModelSchema,
  type PdnWidth,
  TrainingSchema,
} from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { PdnPair } from "./pdn_step.ts";
import { type AdaptiveTiming, timeAdaptive } from "./timing.ts";

/** A network configuration the speed bench times. */
export interface SpeedCase {
  /** Short name, e.g. `default` or `paper`. */
  name: string;
  /** Input side. */
  imageSize: number;
  /** Student (and peer PDN) width. */
  studentWidth: PdnWidth;
}

/** What can be timed. */
export type SpeedMetric = "pdnTrainStep" | "pdnForward" | "detectorTrainStep" | "detectorScore";

/** A tfjs backend, or ONNX Runtime with N threads (`onnxruntime-Nt`, see `speed_ort.ts`). */
export type SpeedBackend = BackendName | `onnxruntime-${number}t`;

/** One timing job. */
export interface SpeedJob {
  /** tfjs backend, or ONNX Runtime. */
  backend: SpeedBackend;
  /** Network configuration. */
  speedCase: SpeedCase;
  /** What to time. */
  metric: SpeedMetric;
  /** Images per call. */
  batch: number;
  /** Most timed calls after the first. */
  maxCalls: number;
  /** Stop repeating once timed calls took this long. */
  budgetMs: number;
}

/** A measurement, or why there is none (backend unavailable, failure). */
export type SpeedMeasurement =
  | { ok: true; timing: AdaptiveTiming; backend: string }
  | { ok: false; reason: string; unavailable?: boolean };

/** Runs one timing job in this thread. Never throws: failures come back as `ok: false`. */
export async function measureSpeed(job: SpeedJob): Promise<SpeedMeasurement> {
  let active: string;
  try {
    active = await initBackend(job.backend as BackendName);
  } catch (error) {
    return { ok: false, unavailable: true, reason: describe(error) };
  }
  const { imageSize, studentWidth } = job.speedCase;
  const x = tf.tidy(() =>
    tf.randomUniform([job.batch, imageSize, imageSize, 3], 0, 1, "float32", 7) as tf.Tensor4D
  );
  const budget = { maxCalls: job.maxCalls, budgetMs: job.budgetMs };
  try {
    switch (job.metric) {
      case "pdnTrainStep":
      case "pdnForward": {
        const pair = new PdnPair(studentWidth);
        try {
          const fn = job.metric === "pdnTrainStep"
            ? () => void pair.trainStep(x)
            : () => pair.forward(x);
          return { ok: true, backend: active, timing: timeAdaptive(fn, budget) };
        } finally {
          disposeAfter(() => pair.dispose());
        }
      }
      case "detectorTrainStep":
      case "detectorScore": {
        const detector = await Detector.create(
          ModelSchema.parse({ backend: job.backend as BackendName, imageSize, studentWidth }),
          TrainingSchema.parse({ batchSize: Math.max(2, job.batch) }),
        );
        try {
          detector.fitTeacherStats([x]);
          if (job.metric === "detectorTrainStep") {
            return {
              ok: true,
              backend: active,
              timing: timeAdaptive(() => void detector.trainStep(x), budget),
            };
          }
          detector.fitMapNormalisation([x]);
          return {
            ok: true,
            backend: active,
            timing: timeAdaptive(() => void detector.score(x), budget),
          };
        } finally {
          disposeAfter(() => detector.dispose());
        }
      }
    }
  } catch (error) {
    return { ok: false, reason: `failed: ${describe(error)}` };
  } finally {
    disposeAfter(() => x.dispose());
  }
}

/** Settings of the long scoring run. */
export interface MemoryRunJob {
  /** tfjs backend. */
  backend: BackendName;
  /** Network configuration. */
  speedCase: SpeedCase;
  /** Images to score in total. */
  images: number;
  /** Images per `score` call. */
  batch: number;
  /** Samples of RSS and tensor counts taken over the run. */
  samples: number;
}

/** One sample of the long run. */
export interface MemorySample {
  /** Images scored so far. */
  imagesScored: number;
  /** Process resident set size, MiB. */
  rssMiB: number;
  /** `tf.memory().numTensors`. */
  numTensors: number;
  /** `tf.memory().numBytes`, MiB. */
  tensorMiB: number;
  /** V8 heap (`Deno.memoryUsage().heapTotal`), MiB. */
  jsHeapMiB: number;
  /** Size of the wasm backend's linear memory (it grows, never shrinks), MiB; null elsewhere. */
  wasmMemoryMiB: number | null;
  /** Seconds since the run started. */
  seconds: number;
}

/** Result of the long scoring run. */
export type MemoryRunResult =
  | { ok: true; backend: string; samples: MemorySample[]; msPerImage: number }
  | { ok: false; reason: string };

/**
 * Scores `images` synthetic images batch by batch (through `toBatch`, as the scorer does) and
 * samples RSS and tensor counts evenly over the run, the first sample after one batch.
 */
export async function memoryRun(job: MemoryRunJob): Promise<MemoryRunResult> {
  let active: string;
  try {
    active = await initBackend(job.backend);
  } catch (error) {
    return { ok: false, reason: describe(error) };
  }
  const { imageSize, studentWidth } = job.speedCase;
  const random = new SeededRandom(5);
  // A small pool of distinct images, cycled: the content does not matter for memory.
  const pool = Array.from({ length: 32 }, () => {
    const pixels = new Float32Array(imageSize * imageSize * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = random.next();
    return pixels;
  });
  let detector: Detector | undefined;
  try {
    detector = await Detector.create(
      ModelSchema.parse({ backend: job.backend, imageSize, studentWidth }),
      TrainingSchema.parse({}),
    );
    const fitBatch = toBatch(pool.slice(0, 16), imageSize);
    detector.fitTeacherStats([fitBatch]);
    detector.fitMapNormalisation([fitBatch]);
    fitBatch.dispose();
    const batches = Math.ceil(job.images / job.batch);
    const every = Math.max(1, Math.ceil(batches / job.samples));
    const samples: MemorySample[] = [];
    const start = performance.now();
    let scored = 0;
    let timedFrom = 0;
    let timedImages = 0;
    for (let b = 0; b < batches; b++) {
      const count = Math.min(job.batch, job.images - scored);
      const picked = Array.from({ length: count }, (_, i) => pool[(scored + i) % pool.length]);
      const batch = toBatch(picked, imageSize);
      try {
        detector.score(batch);
      } finally {
        disposeAfter(() => batch.dispose());
      }
      scored += count;
      if (b === 0) timedFrom = performance.now(); // the first batch compiles kernels
      else timedImages += count;
      if (b === 0 || (b + 1) % every === 0 || b === batches - 1) {
        const memory = tf.memory();
        const usage = Deno.memoryUsage();
        samples.push({
          imagesScored: scored,
          rssMiB: mib(usage.rss),
          jsHeapMiB: mib(usage.heapTotal),
          wasmMemoryMiB: wasmMemoryBytes() === null ? null : mib(wasmMemoryBytes()!),
          numTensors: memory.numTensors,
          tensorMiB: Math.round(memory.numBytes / 2 ** 20 * 10) / 10,
          seconds: Math.round((performance.now() - start) / 100) / 10,
        });
        const last = samples[samples.length - 1];
        console.log(
          `  long run: ${last.imagesScored}/${job.images} images, ${last.seconds} s, ` +
            `RSS ${last.rssMiB} MiB (JS heap ${last.jsHeapMiB}, wasm ${last.wasmMemoryMiB}), ` +
            `${last.numTensors} tensors`,
        );
      }
    }
    const msPerImage = timedImages > 0 ? (performance.now() - timedFrom) / timedImages : NaN;
    return { ok: true, backend: active, samples, msPerImage };
  } catch (error) {
    return { ok: false, reason: `failed: ${describe(error)}` };
  } finally {
    disposeAfter(() => detector?.dispose());
  }
}

/**
 * Frees tensors, ignoring failure: after a wasm abort (e.g. out of memory) the backend cannot
 * free anything, and an error thrown here would hide the measurement's own error.
 */
function disposeAfter(dispose: () => void): void {
  try {
    dispose();
  } catch {
    // The backend is unusable; the process running this measurement ends anyway.
  }
}

function mib(bytes: number): number {
  return Math.round(bytes / 2 ** 20);
}

/** Bytes of the wasm backend's linear memory, or null on other backends. */
function wasmMemoryBytes(): number | null {
  // Not public API: the wasm backend keeps its Emscripten module (with HEAPU8) as `.wasm`.
  const backend = tf.backend() as unknown as { wasm?: { HEAPU8?: Uint8Array } };
  return backend.wasm?.HEAPU8?.byteLength ?? null;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
