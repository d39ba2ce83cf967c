/**
 * Where the frozen teacher's features for training batches come from: ONNX Runtime (the
 * teacher exported by `src/model/onnx/`, 6× faster than tfjs-wasm on MobileNetV2 at 64 and
 * 128 px: `bench/teacher_features.ts`) or, without a source, the teacher's own tfjs model
 * inside `Detector.trainStep`. Used by the tfjs training engine; the ONNX Runtime training
 * engine runs the teacher inside its own forward graph (`training_engine.ts`).
 *
 * Features come back as plain arrays, so that a caller holds no tensor across the `await`
 * (tensor counts sampled between steps stay exact).
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { InferenceConfig } from "../config/schema.ts";
import type { Teacher } from "./teacher.ts";
import { exportTeacherOnnx, TEACHER_IO } from "./onnx/export.ts";
import { packImages } from "./batches.ts";
import { loadOnnxRuntime, openSession } from "./onnx/runtime.ts";

/** Raw teacher features of a batch: NHWC values and their shape. */
export interface RawFeatures {
  /** `[B, S/4, S/4, C]` values, row-major. */
  data: Float32Array;
  /** Their shape. */
  shape: [number, number, number, number];
}

/** A source of raw teacher features for training batches (other than tfjs's own teacher). */
export interface TeacherFeatureSource {
  /** e.g. `onnxruntime (cpu, 1 thread)`. */
  readonly description: string;
  /** Raw features of `size × size × 3` pixel arrays (HWC, [0,1]). */
  features(images: readonly Float32Array[]): Promise<RawFeatures>;
  /** Frees the session. */
  dispose(): Promise<void>;
}

/** `features` as a tensor for `Detector.trainStep`; the caller disposes it. */
export function featureTensor(features: RawFeatures): tf.Tensor4D {
  return tf.tensor4d(features.data, features.shape);
}

/**
 * The teacher feature source for `inference.engine` (the trainer's teacher is inference too):
 * ORT on `threads` threads (default 1: the trainer is a one-core stage, its tfjs-wasm work is
 * single-threaded). Null — the detector's tfjs teacher — where ORT is not wanted (engine
 * `tfjs`, or `auto` with a GPU tfjs backend), cannot load (`warn` gets one line saying why),
 * or cannot export the teacher (a GraphModel teacher).
 */
export async function teacherFeatureSource(
  teacher: Teacher,
  imageSize: number,
  inference: InferenceConfig,
  backend: string,
  warn: (line: string) => void,
  threads = 1,
): Promise<TeacherFeatureSource | null> {
  const gpu = backend === "webgpu" || backend === "tensorflow-gpu";
  if (inference.engine === "tfjs" || (inference.engine === "auto" && gpu)) return null;
  if (teacher.network.kind === "opaque") return null;
  const loaded = await loadOnnxRuntime();
  if (!loaded.ok) {
    warn(`onnxruntime unavailable (${loaded.reason}); teacher features with tfjs (${backend})`);
    return null;
  }
  const ort = loaded.ort;
  const session = await openSession(ort, exportTeacherOnnx(teacher, imageSize), {
    threads,
    device: inference.device,
  });
  return {
    description: `onnxruntime (${inference.device}, ${threads} thread${threads === 1 ? "" : "s"})`,
    async features(images) {
      const data = packImages(images, imageSize);
      const input = new ort.Tensor("float32", data, [images.length, imageSize, imageSize, 3]);
      const out = (await session.run({ [TEACHER_IO.images]: input }))[TEACHER_IO.features];
      return {
        data: out.data as Float32Array,
        shape: out.dims as [number, number, number, number],
      };
    },
    dispose: () => session.release(),
  };
}
