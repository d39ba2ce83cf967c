/**
 * The ONNX export against tfjs on the same inputs: teacher features, image scores and maps of
 * trained detectors (MobileNetV2 and random-PDN teachers) agree within 1e-4 relative.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import * as ort from "onnxruntime-node";
import { ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import type { z } from "zod";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import {
  exportDetectorOnnx,
  exportTeacherOnnx,
  SCORING_IO,
  TEACHER_IO,
} from "../src/model/onnx/export.ts";
import { SeededRandom } from "../src/util/prng.ts";

/** Largest element difference relative to the reference's largest magnitude. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  assert.equal(actual.length, expected.length, "element counts differ");
  let scale = 0;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    scale = Math.max(scale, Math.abs(expected[i]));
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]));
  }
  return worst / Math.max(scale, 1e-12);
}

/** Textured images with a bright blob, different per seed. */
function images(count: number, size: number, seed: number): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const pixels = new Float32Array(size * size * 3);
    const cx = random.next() * size;
    const cy = random.next() * size;
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const blob = (x - cx) ** 2 + (y - cy) ** 2 < (size / 6) ** 2 ? 0.4 : 0;
        for (let c = 0; c < 3; c++) {
          const texture = 0.3 + 0.2 * Math.sin((x + 2 * c) / 3) * Math.cos(y / 4);
          pixels[(y * size + x) * 3 + c] = Math.min(1, texture + blob + random.next() * 0.1);
        }
      }
    }
    return pixels;
  });
}

async function trainedDetector(
  model: z.input<typeof ModelSchema>,
  steps: number,
  training: z.input<typeof TrainingSchema> = {},
): Promise<Detector> {
  const config = ModelSchema.parse(model);
  const detector = await Detector.create(
    config,
    TrainingSchema.parse({ learningRate: 1e-3, ...training }),
  );
  const size = config.imageSize;
  const train = images(16, size, 1);
  const batch = toBatch(train, size);
  detector.fitTeacherStats([batch]);
  for (let i = 0; i < steps; i++) detector.trainStep(batch);
  detector.fitMapNormalisation([batch]);
  batch.dispose();
  return detector;
}

async function compareScoring(detector: Detector): Promise<void> {
  const size = detector.model.imageSize;
  const test = images(5, size, 9);
  const batch = toBatch(test, size);
  const session = await ort.InferenceSession.create(exportDetectorOnnx(detector, "test"));
  try {
    const expected = detector.score(batch);
    const heatmaps = detector.anomalyMaps(batch);
    const expectedHeat = heatmaps.dataSync();
    heatmaps.dispose();
    const feeds = {
      [SCORING_IO.images]: new ort.Tensor("float32", batch.dataSync(), batch.shape),
    };
    const out = await session.run(feeds);
    const field = (name: string) => out[name].data as Float32Array;
    for (
      const [name, key] of [
        [SCORING_IO.score, "score"],
        [SCORING_IO.stScore, "stScore"],
        [SCORING_IO.aeScore, "aeScore"],
      ] as const
    ) {
      const error = relativeError(field(name), expected.map((r) => r[key]));
      assert.ok(error <= 1e-4, `${name}: relative error ${error.toExponential(2)} > 1e-4`);
    }
    assert.deepEqual(out[SCORING_IO.heatmap].dims, [5, size, size]);
    const heatError = relativeError(field(SCORING_IO.heatmap), expectedHeat);
    assert.ok(heatError <= 1e-4, `heatmap: relative error ${heatError.toExponential(2)} > 1e-4`);
    // The map's maximum is the score: the two outputs come from one map.
    const grid = out[SCORING_IO.map].dims[1] * out[SCORING_IO.map].dims[2];
    field(SCORING_IO.score).forEach((score, i) => {
      const map = field(SCORING_IO.map).subarray(i * grid, (i + 1) * grid);
      assert.equal(Math.max(...map), score);
    });
  } finally {
    batch.dispose();
    await session.release();
  }
}

Deno.test("ONNX export of a MobileNetV2-teacher detector matches tfjs (features, maps, scores)", async () => {
  await initBackend("wasm");
  const before = tf.memory().numTensors;
  const detector = await trainedDetector({ imageSize: 64, studentWidth: "tiny" }, 3);
  try {
    const size = 64;
    const batch = toBatch(images(3, size, 5), size);
    const teacher = await ort.InferenceSession.create(exportTeacherOnnx(detector.teacher, size));
    const features = detector.teacher.extract(batch);
    const out = await teacher.run({
      [TEACHER_IO.images]: new ort.Tensor("float32", batch.dataSync(), batch.shape),
    });
    assert.deepEqual(out[TEACHER_IO.features].dims, features.shape);
    const error = relativeError(out[TEACHER_IO.features].data as Float32Array, features.dataSync());
    assert.ok(error <= 1e-4, `teacher features: relative error ${error.toExponential(2)} > 1e-4`);
    tf.dispose([batch, features]);
    await teacher.release();
    await compareScoring(detector);
  } finally {
    detector.dispose();
  }
  assert.equal(tf.memory().numTensors, before, "the export leaks no tensors");
});

Deno.test("ONNX export of a random-PDN-teacher detector at 128 px matches tfjs", async () => {
  await initBackend("wasm");
  const detector = await trainedDetector(
    {
      imageSize: 128,
      studentWidth: "tiny",
      teacher: { kind: "random_pdn", width: "tiny" },
    },
    2,
    { autoencoderMapWeight: 0.2 },
  );
  try {
    await compareScoring(detector);
  } finally {
    detector.dispose();
  }
});

Deno.test("autoencoderMapWeight 0 scores with the student–teacher map alone, in both engines", async () => {
  await initBackend("wasm");
  const detector = await trainedDetector(
    {
      imageSize: 64,
      studentWidth: "tiny",
      teacher: { kind: "random_pdn", width: "tiny" },
    },
    2,
    { autoencoderMapWeight: 0 },
  );
  try {
    await compareScoring(detector);
    const batch = toBatch(images(4, 64, 3), 64);
    const reports = detector.score(batch);
    batch.dispose();
    for (const report of reports) assert.ok(Math.abs(report.score - report.stScore) < 1e-6);
  } finally {
    detector.dispose();
  }
});

Deno.test("ONNX export refuses a detector that is not fitted", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: 32, teacher: { kind: "random_pdn" } }),
    TrainingSchema.parse({}),
  );
  try {
    assert.throws(() => exportDetectorOnnx(detector), /not fitted/);
  } finally {
    detector.dispose();
  }
});
