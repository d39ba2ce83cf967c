/**
 * The ONNX Runtime training engine computes tfjs's step: every parameter's gradient matches
 * `tf.variableGrads` of the same loss on the same batch, teacher features and dropout masks
 * (each method, and the robust switches: autoencoder trim, protection, auto outlier count),
 * and parameters after several Adam steps match `Detector.trainStep`'s. No tensor leaks.
 */
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import {
  InferenceSchema,
  ModelSchema,
  type TrainingConfigInput,
  TrainingSchema,
} from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector, toNetworkInput } from "../src/model/detector.ts";
import { pdnForward } from "../src/model/pdn.ts";
import { autoencoderForward } from "../src/model/autoencoder.ts";
import { detectorStepLoss } from "../src/model/step_loss.ts";
import { featureTensor, teacherFeatureSource } from "../src/model/teacher_engine.ts";
import {
  AdamState,
  OrtTrainingEngine,
  prepareTrainingEngine,
} from "../src/model/training_engine.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { trainOffline, trainOfflineWith } from "../src/model/offline.ts";
import { saveSmallGraphModel } from "./helpers/small_graph_model.ts";
import { runEngineChoice } from "./helpers/engine_choice_run.ts";

const SIZE = 32;
const BATCH = 4;

function images(seed: number, count = BATCH, size = SIZE): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, (_, n) => {
    const pixels = new Float32Array(size * size * 3);
    // One odd image per batch, so ATDR has an outlier to find.
    for (let i = 0; i < pixels.length; i++) {
      pixels[i] = n === 1 ? random.next() : 0.3 + 0.3 * random.next();
    }
    return pixels;
  });
}

async function detectorFor(training: TrainingConfigInput, size = SIZE): Promise<Detector> {
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: size, studentWidth: "tiny", teacher: { kind: "random_pdn" } }),
    TrainingSchema.parse({ learningRate: 1e-3, batchSize: BATCH, ...training }),
  );
  const batch = tf.tensor4d(images(99, 8, size).flatMap((p) => Array.from(p)), [
    8,
    size,
    size,
    3,
  ]);
  detector.fitTeacherStats([batch]);
  batch.dispose();
  return detector;
}

async function ortEngine(detector: Detector): Promise<OrtTrainingEngine> {
  const engine = await prepareTrainingEngine(detector, {
    inference: InferenceSchema.parse({}),
    warn: (line) => assert.fail(`ORT should load here: ${line}`),
  });
  assert.ok(engine instanceof OrtTrainingEngine);
  return engine;
}

/** Relative error of `actual` against `expected` on the max-norm, elementwise. */
function relativeError(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  let scale = 1e-12;
  for (let i = 0; i < expected.length; i++) scale = Math.max(scale, Math.abs(expected[i]));
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    worst = Math.max(worst, Math.abs(actual[i] - expected[i]) / scale);
  }
  return worst;
}

const CASES: { name: string; training: TrainingConfigInput; size?: number }[] = [
  { name: "baseline", training: { method: "baseline" } },
  { name: "nmfe", training: { method: "nmfe" } },
  // 64 px: the autoencoder's last resize shrinks (33 → 16 px) and no resize is skipped.
  { name: "ad2 at 64 px", training: { method: "ad2" }, size: 64 },
  { name: "atdr", training: { method: "atdr" } },
  { name: "ad2", training: { method: "ad2" } },
  {
    name: "ad2, robust (trim, outliers excluded)",
    training: { method: "ad2", autoencoderTrim: 0.25, protectAutoencoder: "exclude" },
  },
  {
    name: "ad2, auto outlier count, st signal",
    training: { method: "ad2", atdrOutlierCount: "auto", contamination: { signal: "st" } },
  },
  {
    name: "atdr, outliers weighted, cosine",
    training: { method: "atdr", protectAutoencoder: "weights", atdrDistance: "cosine" },
  },
];

for (const { name, training, size = SIZE } of CASES) {
  Deno.test(`ORT training gradients equal tfjs's: ${name}`, async () => {
    await initBackend("wasm");
    const detector = await detectorFor(training, size);
    const engine = await ortEngine(detector);
    const source = await teacherFeatureSource(
      detector.teacher,
      size,
      InferenceSchema.parse({}),
      "wasm",
      (line) => assert.fail(line),
    );
    assert.ok(source);
    try {
      const pixels = images(5, BATCH, size);
      const plan = detector.planStep(BATCH);
      const ort = await engine.gradients(pixels, plan);
      const features = featureTensor(await source.features(pixels));
      const variables = detector.namedVariables();
      let outliers: number[] = [];
      let trimmed: number[] = [];
      const expected = tf.tidy(() => {
        const batch = tf.tensor4d(pixels.flatMap((p) => Array.from(p)), [BATCH, size, size, 3]);
        const target = detector.teacherTarget(batch, features);
        const input = toNetworkInput(batch);
        const { value, grads } = tf.variableGrads(() => {
          const s = pdnForward(detector.student, input);
          const a = autoencoderForward(detector.autoencoder, input, true, plan.dropoutSeed);
          const loss = detectorStepLoss(s, a, target, plan.lossOptions);
          outliers = loss.outliers;
          trimmed = loss.trimmed;
          return loss.total;
        }, variables.map((v) => v.variable));
        return {
          total: value.dataSync()[0],
          grads: variables.map((v) => grads[v.variable.name].dataSync() as Float32Array),
        };
      });
      features.dispose();
      assert.deepEqual(ort.loss.outliers, outliers);
      assert.deepEqual(ort.loss.trimmed, trimmed);
      if (name.includes("trim")) assert.equal(trimmed.length, 1);
      const fixedCount = training.atdrOutlierCount === undefined;
      if (fixedCount && training.method !== "baseline" && training.method !== "nmfe") {
        assert.equal(outliers.length, 1);
      }
      assert.ok(Math.abs(ort.losses.total - expected.total) <= 1e-5 * Math.abs(expected.total));
      variables.forEach((v, i) => {
        const error = relativeError(ort.gradients[i], expected.grads[i]);
        assert.ok(error <= 1e-4, `${v.name} gradient: relative error ${error}`);
        assert.ok(expected.grads[i].some((g) => g !== 0), `${v.name}: tfjs gradient is all zero`);
      });
    } finally {
      await source.dispose();
      await engine.dispose();
      detector.dispose();
    }
  });
}

Deno.test("ORT training steps give tfjs's parameters after Adam steps, without tensor leaks", async () => {
  await initBackend("wasm");
  const training: TrainingConfigInput = { method: "ad2", autoencoderTrim: 0.25 };
  const [viaTfjs, viaOrt] = [await detectorFor(training), await detectorFor(training)];
  const engine = await ortEngine(viaOrt);
  assert.match(engine.description, /^onnxruntime \(cpu, 1 thread\)$/);
  const source = await teacherFeatureSource(
    viaTfjs.teacher,
    SIZE,
    InferenceSchema.parse({}),
    "wasm",
    (line) => assert.fail(line),
  );
  assert.ok(source);
  try {
    let tensors = -1;
    for (let step = 0; step < 4; step++) {
      const pixels = images(10 + step);
      const features = featureTensor(await source.features(pixels));
      const batch = tf.tensor4d(pixels.flatMap((p) => Array.from(p)), [BATCH, SIZE, SIZE, 3]);
      const expected = viaTfjs.trainStep(batch, features);
      tf.dispose([batch, features]);
      const actual = await engine.step(pixels);
      assert.equal(actual.step, expected.step);
      assert.deepEqual(actual.outliers, expected.outliers);
      assert.deepEqual(actual.trimmed, expected.trimmed);
      for (const [key, value] of Object.entries(expected.losses)) {
        const error = Math.abs(actual.losses[key] - value) / Math.max(Math.abs(value), 1e-12);
        assert.ok(error <= 1e-4, `step ${step} loss ${key}: ${actual.losses[key]} vs ${value}`);
      }
      if (step === 1) tensors = tf.memory().numTensors;
      if (step > 1) assert.equal(tf.memory().numTensors, tensors, "tensors leak per ORT step");
    }
    const a = viaTfjs.namedVariables();
    const b = viaOrt.namedVariables();
    // Adam divides each gradient by its own running RMS, so where a gradient is almost 0 its
    // last-bit differences (ORT's and XNNPACK's summation orders) become a visible share of
    // one step's size (lr; a gradient whose sign flipped would differ by 2 lr per step). Every
    // element within a quarter of lr (measured: ≤ 0.06 lr), 99 % of them within 0.01 % of lr.
    const lr = viaTfjs.training.learningRate;
    a.forEach(({ name, variable }, i) => {
      const x = variable.dataSync();
      const y = b[i].variable.dataSync();
      const differences = Array.from(x, (v, j) => Math.abs(v - y[j])).sort((p, q) => q - p);
      assert.ok(differences[0] <= 0.25 * lr, `${name}: largest difference ${differences[0]}`);
      const p99 = differences[Math.floor(differences.length / 100)];
      assert.ok(p99 <= 1e-4 * lr, `${name}: 99th percentile difference ${p99}`);
    });
  } finally {
    await source.dispose();
    await engine.dispose();
    viaTfjs.dispose();
    viaOrt.dispose();
  }
});

Deno.test("AdamState computes tfjs's AdamOptimizer update with L2 weight decay", async () => {
  await initBackend("wasm");
  const random = new SeededRandom(3);
  const initial = Float32Array.from({ length: 50 }, () => random.next() - 0.5);
  const variable = tf.variable(tf.tensor1d(initial));
  const optimizer = tf.train.adam(1e-2, 0.9, 0.999, 1e-8);
  const adam = new AdamState([initial.length]);
  const ours = [initial.slice()];
  for (let step = 0; step < 5; step++) {
    const grad = Float32Array.from({ length: 50 }, () => random.next() - 0.5);
    tf.tidy(() => {
      const g = tf.tensor1d(grad).add(variable.mul(1e-2));
      optimizer.applyGradients([{ name: variable.name, tensor: g }]);
    });
    adam.apply(ours, [grad], 1e-2, 1e-2);
  }
  const expected = variable.dataSync();
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(ours[0][i] - expected[i]) <= 1e-6, `${i}: ${ours[0][i]} vs ${expected[i]}`);
  }
  variable.dispose();
  optimizer.dispose();
});

Deno.test("training.engine tfjs keeps Detector.trainStep; ORT needs fitted statistics", async () => {
  await initBackend("wasm");
  const detector = await detectorFor({ engine: "tfjs" });
  const engine = await prepareTrainingEngine(detector, {
    inference: InferenceSchema.parse({ engine: "tfjs" }),
    warn: (line) => assert.fail(line),
  });
  assert.equal(engine.kind, "tfjs");
  assert.equal(engine.description, "tfjs (wasm), teacher features with tfjs");
  const report = await engine.step(images(1));
  assert.equal(report.step, 1);
  await engine.dispose();
  detector.dispose();
  const fresh = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, teacher: { kind: "random_pdn" } }),
    TrainingSchema.parse({ batchSize: BATCH }),
  );
  const ort = await ortEngine(fresh);
  await assert.rejects(() => ort.step(images(1)), /teacher statistics are not fitted/);
  await ort.dispose();
  fresh.dispose();
});

function trainingEngineChoice(permissions: string[]) {
  return runEngineChoice(
    new URL("./helpers/training_engine_choice.ts", import.meta.url),
    permissions,
  );
}

Deno.test("without FFI permission training falls back to tfjs with one log line", async () => {
  const base = ["--allow-read", "--allow-env", "--allow-sys"];
  const denied = await trainingEngineChoice(base);
  assert.equal(denied.choice.kind, "tfjs");
  assert.equal(denied.choice.description, "tfjs (wasm), teacher features with tfjs");
  const lines = denied.stderr.split("\n").filter((line) => line.trim() !== "");
  assert.equal(lines.length, 1, `one line expected, got:\n${denied.stderr}`);
  assert.match(
    lines[0],
    /^onnxruntime unavailable \(no FFI permission.*; training with tfjs \(wasm\)$/,
  );
  const allowed = await trainingEngineChoice([...base, "--allow-ffi"]);
  assert.equal(allowed.choice.kind, "onnxruntime");
  assert.equal(allowed.choice.description, "onnxruntime (cpu, 1 thread)");
  assert.equal(allowed.stderr, "");
});

Deno.test("offline training with the ORT engine takes trainOffline's batches and steps", async () => {
  await initBackend("wasm");
  const pool = [...images(21, 8), ...images(22, 8)];
  const [viaTfjs, viaOrt] = [await detectorFor({}), await detectorFor({})];
  const engine = await ortEngine(viaOrt);
  try {
    const expected: number[] = [];
    const actual: number[] = [];
    trainOffline(viaTfjs, pool, {
      steps: 3,
      seed: 2,
      onStep: (r) => expected.push(r.losses.total),
    });
    await trainOfflineWith(viaOrt, engine, pool, {
      steps: 3,
      seed: 2,
      onStep: (r) => actual.push(r.losses.total),
    });
    assert.equal(actual.length, 3);
    actual.forEach((loss, i) => {
      assert.ok(Math.abs(loss - expected[i]) <= 1e-4 * Math.abs(expected[i]), `step ${i}`);
    });
    assert.ok(viaOrt.warm, "map normalisation fitted after training");
  } finally {
    await engine.dispose();
    viaTfjs.dispose();
    viaOrt.dispose();
  }
});

Deno.test("a teacher ONNX cannot export (GraphModel) runs on tfjs inside the ORT step", async () => {
  await initBackend("wasm");
  const dir = await Deno.makeTempDir();
  try {
    await saveSmallGraphModel(dir, Float32Array.from({ length: 48 }, (_, i) => Math.sin(i)));
    const create = async () => {
      const detector = await Detector.create(
        ModelSchema.parse({
          imageSize: SIZE,
          teacher: { kind: "path", path: dir, taps: [], inputRange: "zero1" },
        }),
        TrainingSchema.parse({ learningRate: 1e-3, batchSize: BATCH }),
      );
      const batch = tf.tensor4d(images(99, 8).flatMap((p) => Array.from(p)), [8, SIZE, SIZE, 3]);
      detector.fitTeacherStats([batch]);
      batch.dispose();
      return detector;
    };
    const [viaTfjs, viaOrt] = [await create(), await create()];
    const engine = await ortEngine(viaOrt);
    assert.equal(engine.description, "onnxruntime (cpu, 1 thread), teacher with tfjs (wasm)");
    try {
      for (let step = 0; step < 2; step++) {
        const pixels = images(30 + step);
        const batch = tf.tensor4d(pixels.flatMap((p) => Array.from(p)), [BATCH, SIZE, SIZE, 3]);
        const expected = viaTfjs.trainStep(batch);
        batch.dispose();
        const actual = await engine.step(pixels);
        const error = Math.abs(actual.losses.total - expected.losses.total) /
          Math.abs(expected.losses.total);
        assert.ok(
          error <= 1e-4,
          `step ${step}: ${actual.losses.total} vs ${expected.losses.total}`,
        );
      }
    } finally {
      await engine.dispose();
      viaTfjs.dispose();
      viaOrt.dispose();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
