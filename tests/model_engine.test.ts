/**
 * Scoring engines: ONNX Runtime and tfjs give the same scores and heatmaps for a detector; the
 * default picks ORT, falls back to tfjs in one line where ORT cannot load, and refuses CUDA
 * clearly where ORT has no CUDA provider; `run` leaves the trainer its core; training on ORT
 * teacher features is the same step as on tfjs's teacher.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import {
  InferenceSchema,
  ModelSchema,
  PipelineSchema,
  TrainingSchema,
} from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { prepareScoringEngines, scoreAllWith } from "../src/model/engine.ts";
import { withScorerThreads } from "../src/pipeline/cores.ts";
import { featureTensor, teacherFeatureSource } from "../src/model/teacher_engine.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { runEngineChoice } from "./helpers/engine_choice_run.ts";

const SIZE = 32;

function noise(count: number, seed: number): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const pixels = new Float32Array(SIZE * SIZE * 3);
    for (let i = 0; i < pixels.length; i++) pixels[i] = 0.3 + 0.4 * random.next();
    return pixels;
  });
}

async function fittedDetector(): Promise<Detector> {
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, teacher: { kind: "random_pdn" } }),
    TrainingSchema.parse({ learningRate: 1e-3 }),
  );
  const batch = toBatch(noise(8, 1), SIZE);
  detector.fitTeacherStats([batch]);
  detector.trainStep(batch);
  detector.fitMapNormalisation([batch]);
  batch.dispose();
  return detector;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string) {
  const scale = Math.max(...Array.from(expected, Math.abs), 1e-12);
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs(actual[i] - expected[i]) / scale;
    assert.ok(error <= 1e-4, `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

Deno.test("the onnxruntime engine scores like the tfjs engine, in batches, without leaks", async () => {
  await initBackend("wasm");
  const detector = await fittedDetector();
  const model = detector.model;
  const warnings: string[] = [];
  const ortEngines = await prepareScoringEngines(
    InferenceSchema.parse({ threads: 2 }),
    model,
    (line) => warnings.push(line),
  );
  assert.equal(ortEngines.kind, "onnxruntime", `ORT should load here: ${warnings}`);
  assert.equal(ortEngines.description, "onnxruntime (cpu, 2 threads)");
  const tfjsEngines = await prepareScoringEngines(
    InferenceSchema.parse({ engine: "tfjs" }),
    model,
    (line) => warnings.push(line),
  );
  assert.equal(tfjsEngines.kind, "tfjs");
  const ort = await ortEngines.build(detector, "test");
  const reference = await tfjsEngines.build(detector);
  try {
    const before = tf.memory().numTensors;
    const images = noise(11, 2);
    const [a, b] = [await scoreAllWith(ort, images, 4), await scoreAllWith(reference, images, 4)];
    assert.equal(a.length, 11);
    for (const key of ["score", "stScore", "aeScore"] as const) {
      assertClose(a.map((r) => r[key]), b.map((r) => r[key]), key);
    }
    const [ma, mb] = [
      await ort.scoreWithMaps(images.slice(0, 3)),
      await reference.scoreWithMaps(images.slice(0, 3)),
    ];
    assert.equal(ma.length, 3);
    ma.forEach((report, i) => {
      assert.equal(report.map.length, SIZE * SIZE);
      assertClose(report.map, mb[i].map, `heatmap ${i}`);
      assertClose([report.score], [mb[i].score], `score ${i} with maps`);
    });
    assert.deepEqual(await ort.score([]), []);
    await assert.rejects(ort.score([new Float32Array(5)]), /expected 3072/);
    assert.equal(tf.memory().numTensors, before, "scoring leaks no tensors");
    assert.deepEqual(warnings, []);
  } finally {
    await ort.dispose();
    await reference.dispose();
    detector.dispose();
  }
});

Deno.test("a GPU tfjs backend keeps `auto` on tfjs", async () => {
  const engines = await prepareScoringEngines(
    InferenceSchema.parse({}),
    ModelSchema.parse({ backend: "tensorflow-gpu" }),
    () => {},
  );
  assert.equal(engines.kind, "tfjs");
  assert.equal(engines.description, "tfjs (tensorflow-gpu)");
});

const cudaLibrary = new URL(
  "../node_modules/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime_providers_cuda.so",
  import.meta.url,
);

Deno.test({
  name: "asking for CUDA where ORT has no CUDA provider is a clear error",
  ignore: (() => {
    try {
      Deno.statSync(cudaLibrary);
      return true; // this machine has ORT's CUDA provider: nothing to refuse
    } catch {
      return false;
    }
  })(),
  fn: async () => {
    await assert.rejects(
      prepareScoringEngines(
        InferenceSchema.parse({ device: "cuda" }),
        ModelSchema.parse({}),
        () => {},
      ),
      /inference\.device "cuda": this onnxruntime-node has no usable CUDA execution provider/,
    );
  },
});

function engineChoice(permissions: string[]) {
  return runEngineChoice(new URL("./helpers/engine_choice.ts", import.meta.url), permissions);
}

Deno.test("without FFI permission scoring falls back to tfjs with one log line", async () => {
  const denied = await engineChoice(["--allow-read", "--allow-env", "--allow-sys"]);
  assert.equal(denied.choice.kind, "tfjs");
  const lines = denied.stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, `one line expected, got:\n${denied.stderr}`);
  assert.match(
    lines[0],
    /^onnxruntime unavailable \(no FFI permission.*; scoring with tfjs \(wasm\)$/,
  );
  const allowed = await engineChoice(["--allow-read", "--allow-env", "--allow-sys", "--allow-ffi"]);
  assert.equal(allowed.choice.kind, "onnxruntime");
  assert.equal(allowed.stderr, "");
});

Deno.test("run gives the scorer the cores the trainer leaves; explicit threads stay", () => {
  const config = PipelineSchema.parse({ line: "x" });
  assert.equal(withScorerThreads(config, ["ingest", "trainer", "scorer"], 2).inference.threads, 1);
  assert.equal(withScorerThreads(config, ["ingest", "trainer", "scorer"], 8).inference.threads, 7);
  assert.equal(withScorerThreads(config, ["trainer", "scorer"], 1).inference.threads, 1);
  assert.equal(withScorerThreads(config, ["scorer"], 2).inference.threads, "auto");
  const fixed = PipelineSchema.parse({ line: "x", inference: { threads: 2 } });
  assert.equal(withScorerThreads(fixed, ["trainer", "scorer"], 2).inference.threads, 2);
});

Deno.test("a training step on ORT teacher features matches the step on tfjs's own teacher", async () => {
  await initBackend("wasm");
  const model = ModelSchema.parse({ imageSize: 64 }); // the MobileNetV2 teacher
  const training = TrainingSchema.parse({ learningRate: 1e-3 });
  const [viaTfjs, viaOrt] = [
    await Detector.create(model, training),
    await Detector.create(model, training),
  ];
  const source = await teacherFeatureSource(
    viaOrt.teacher,
    64,
    InferenceSchema.parse({}),
    "wasm",
    (line) => assert.fail(line),
  );
  assert.ok(source, "ORT loads here");
  assert.equal(source.description, "onnxruntime (cpu, 1 thread)");
  const random = new SeededRandom(4);
  const pixels = Float32Array.from({ length: 8 * 64 * 64 * 3 }, () => random.next());
  const batch = tf.tensor4d(pixels, [8, 64, 64, 3]);
  const per = 64 * 64 * 3;
  const images = Array.from({ length: 8 }, (_, i) => pixels.subarray(i * per, (i + 1) * per));
  try {
    for (const detector of [viaTfjs, viaOrt]) detector.fitTeacherStats([batch]);
    for (let step = 0; step < 2; step++) {
      const expected = viaTfjs.trainStep(batch);
      const features = featureTensor(await source.features(images));
      const actual = viaOrt.trainStep(batch, features);
      features.dispose();
      for (const [name, value] of Object.entries(expected.losses)) {
        const error = Math.abs(actual.losses[name] - value) / Math.max(Math.abs(value), 1e-12);
        assert.ok(error <= 1e-4, `step ${step} loss ${name}: ${actual.losses[name]} vs ${value}`);
      }
      assert.deepEqual(actual.outliers, expected.outliers);
    }
    const wrong = tf.zeros([8, 16, 16, 5]) as tf.Tensor4D;
    assert.throws(
      () => viaOrt.trainStep(batch, wrong),
      /teacher features have shape \[8,16,16,5\]/,
    );
    wrong.dispose();
  } finally {
    batch.dispose();
    await source.dispose();
    viaTfjs.dispose();
    viaOrt.dispose();
  }
});
