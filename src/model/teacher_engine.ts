/**
 * Where the frozen teacher's features for training batches come from: ONNX Runtime (the
 * teacher exported by `src/model/onnx/`, 3–5× faster than tfjs-wasm on MobileNetV2, see
 * README) or the teacher's own tfjs model. The student and autoencoder, whose gradients are
 * needed, stay on tfjs; `Detector.trainStep` takes the features as an argument.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { InferenceConfig } from "../config/schema.ts";
import type { Teacher } from "./teacher.ts";
import { exportTeacherOnnx, TEACHER_IO } from "./onnx/export.ts";
import { loadOnnxRuntime, openSession } from "./onnx/runtime.ts";

/** A source of raw teacher features for training batches. */
export interface TeacherFeatureSource {
  /** e.g. `onnxruntime (cpu, 1 thread)` or `tfjs`. */
  readonly description: string;
  /** Raw features `[B, S/4, S/4, C]` of NHWC images in [0,1]; the caller disposes them. */
  extract(images: tf.Tensor4D): Promise<tf.Tensor4D>;
  /** Frees the session. */
  dispose(): Promise<void>;
}

/**
 * The teacher feature source for `inference.engine` (the trainer's teacher is inference too):
 * ORT on `threads` threads (default 1: the trainer is a one-core stage, its tfjs-wasm work is
 * single-threaded),
 * or tfjs where ORT is not wanted or cannot load (`warn` gets one line saying why), or where
 * the teacher cannot be exported (a GraphModel teacher).
 */
export async function teacherFeatureSource(
  teacher: Teacher,
  imageSize: number,
  inference: InferenceConfig,
  backend: string,
  warn: (line: string) => void,
  threads = 1,
): Promise<TeacherFeatureSource> {
  const viaTfjs: TeacherFeatureSource = {
    description: `tfjs (${backend})`,
    extract: (images) => Promise.resolve(teacher.extract(images)),
    dispose: () => Promise.resolve(),
  };
  const gpu = backend === "webgpu" || backend === "tensorflow-gpu";
  if (inference.engine === "tfjs" || (inference.engine === "auto" && gpu)) return viaTfjs;
  if (teacher.network.kind === "opaque") return viaTfjs;
  const loaded = await loadOnnxRuntime();
  if (!loaded.ok) {
    warn(`onnxruntime unavailable (${loaded.reason}); teacher features with tfjs (${backend})`);
    return viaTfjs;
  }
  const ort = loaded.ort;
  const session = await openSession(ort, exportTeacherOnnx(teacher, imageSize), {
    threads,
    device: inference.device,
  });
  return {
    description: `onnxruntime (${inference.device}, ${threads} thread${threads === 1 ? "" : "s"})`,
    async extract(images) {
      const input = new ort.Tensor("float32", images.dataSync() as Float32Array, images.shape);
      const out = (await session.run({ [TEACHER_IO.images]: input }))[TEACHER_IO.features];
      return tf.tensor4d(out.data as Float32Array, out.dims as [number, number, number, number]);
    },
    dispose: () => session.release(),
  };
}
