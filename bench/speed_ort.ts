/**
 * The speed bench's ONNX Runtime measurements, the counterparts of `speed_measure.ts`'s tfjs
 * ones on the same networks and inputs: the PDN forward pass (like the PyTorch peer's `fwd`)
 * and detector scoring through the exported graph (`src/model/onnx/`), at a chosen thread
 * count, and training steps on the ORT training engine (`src/model/training_engine.ts`):
 * the PDN-only step (like the peer's `train`) and the AD² detector step as the trainer runs
 * it (teacher, student and autoencoder forward in one session, the loss's output gradient
 * from tfjs, the hand-built backward graph in a second session, Adam in TypeScript).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { InferenceSchema, ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { prepareTrainingEngine, type TrainingEngine } from "../src/model/training_engine.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { exportDetectorOnnx, SCORING_IO } from "../src/model/onnx/export.ts";
import { loadOnnxRuntime, openSession } from "../src/model/onnx/runtime.ts";
import { OrtPdnPair, PDN_FORWARD_IO, pdnForwardModel, PdnPair } from "./pdn_step.ts";
import type { SpeedJob, SpeedMeasurement } from "./speed_measure.ts";
import { timeAdaptiveAsync } from "./timing.ts";

/** The speed bench's name for ONNX Runtime on the CPU with `threads` intra-op threads. */
export function ortBackendName(threads: number): string {
  return `onnxruntime-${threads}t`;
}

/** The thread count of an {@link ortBackendName}, or null for a tfjs backend name. */
export function ortThreadsOf(name: string): number | null {
  const match = name.match(/^onnxruntime-(\d+)t$/);
  return match ? Number(match[1]) : null;
}

/** Runs one ORT timing job with `threads` threads. Never throws. */
export async function measureOrtSpeed(job: SpeedJob, threads: number): Promise<SpeedMeasurement> {
  const loaded = await loadOnnxRuntime();
  if (!loaded.ok) return { ok: false, unavailable: true, reason: loaded.reason };
  // tfjs builds the weights the graphs are exported from.
  await initBackend("wasm");
  const { imageSize, studentWidth } = job.speedCase;
  const x = tf.tidy(() =>
    tf.randomUniform([job.batch, imageSize, imageSize, 3], 0, 1, "float32", 7) as tf.Tensor4D
  );
  const pixels = x.dataSync() as Float32Array;
  const budget = { maxCalls: job.maxCalls, budgetMs: job.budgetMs };
  const options = { threads, device: "cpu" as const };
  const label = `onnxruntime ${threads} thread${threads === 1 ? "" : "s"}`;
  try {
    let model: Uint8Array;
    let inputName: string;
    let fetches: string[];
    if (job.metric === "detectorTrainStep") return await ortDetectorTrainStep(job, x, threads);
    if (job.metric === "pdnTrainStep") {
      const pair = await OrtPdnPair.create(loaded.ort, studentWidth, imageSize, threads);
      try {
        const timing = await timeAdaptiveAsync(() => pair.trainStep(pixels, job.batch), budget);
        return { ok: true, backend: `${label}, ORT training engine`, timing };
      } finally {
        await pair.dispose();
      }
    }
    if (job.metric === "pdnForward") {
      const pair = new PdnPair(studentWidth);
      model = pdnForwardModel(pair, imageSize);
      inputName = PDN_FORWARD_IO.images;
      fetches = [PDN_FORWARD_IO.features];
      pair.dispose();
    } else {
      const detector = await Detector.create(
        ModelSchema.parse({ imageSize, studentWidth }),
        TrainingSchema.parse({}),
      );
      detector.fitTeacherStats([x]);
      detector.fitMapNormalisation([x]);
      model = exportDetectorOnnx(detector, "speed");
      detector.dispose();
      inputName = SCORING_IO.images;
      fetches = [SCORING_IO.score, SCORING_IO.stScore, SCORING_IO.aeScore];
    }
    const session = await openSession(loaded.ort, model, options);
    try {
      const feeds = { [inputName]: new loaded.ort.Tensor("float32", pixels, x.shape) };
      const timing = await timeAdaptiveAsync(() => session.run(feeds, fetches), budget);
      return { ok: true, backend: label, timing };
    } finally {
      await session.release();
    }
  } catch (error) {
    return { ok: false, reason: `failed: ${error instanceof Error ? error.message : error}` };
  } finally {
    x.dispose();
  }
}

/**
 * The AD² detector step on the ORT training engine with `threads` threads, as the trainer
 * runs it (`training.engine` default): teacher, student and autoencoder on ORT, the loss and
 * its output gradient on tfjs-wasm, Adam in TypeScript.
 */
async function ortDetectorTrainStep(
  job: SpeedJob,
  x: tf.Tensor4D,
  threads: number,
): Promise<SpeedMeasurement> {
  const { imageSize, studentWidth } = job.speedCase;
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize, studentWidth }),
    TrainingSchema.parse({ batchSize: Math.max(2, job.batch), engine: "onnxruntime" }),
  );
  let engine: TrainingEngine | null = null;
  const per = imageSize * imageSize * 3;
  const all = x.dataSync() as Float32Array;
  const pixels = Array.from({ length: x.shape[0] }, (_, i) => all.subarray(i * per, (i + 1) * per));
  try {
    detector.fitTeacherStats([x]);
    engine = await prepareTrainingEngine(detector, {
      inference: InferenceSchema.parse({ engine: "onnxruntime" }),
      warn: (line) => console.warn(line),
      threads,
    });
    if (engine.kind !== "onnxruntime") return { ok: false, reason: "ORT training did not load" };
    const trainer = engine;
    const budget = { maxCalls: job.maxCalls, budgetMs: job.budgetMs };
    return {
      ok: true,
      backend: trainer.description,
      timing: await timeAdaptiveAsync(() => trainer.step(pixels), budget),
    };
  } finally {
    await engine?.dispose();
    detector.dispose();
  }
}
