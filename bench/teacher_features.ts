/**
 * Where the trainer's teacher features should come from (`deno run -A bench/teacher_features.ts
 * [sizes…]`, default 64 128): per image size, interleaved rounds of (a) the MobileNetV2
 * teacher alone on tfjs-wasm and on ONNX Runtime (one thread, as the trainer runs it) and (b)
 * the whole AD² training step (batch 8) with the teacher on tfjs and with ORT's features.
 * Interleaving shares a shared machine's noise evenly between the routes. Writes
 * `bench/results/teacher-features.json` with the load average.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { InferenceSchema, ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { featureTensor, teacherFeatureSource } from "../src/model/teacher_engine.ts";
import { environment, fixed, startCommit, textTable, writeResultJson } from "./report.ts";
import { median } from "./timing.ts";

const BATCH = 8;
const ROUNDS = 5;

/** Medians and minima (ms) of one route. */
interface RouteTiming {
  medianMs: number;
  minMs: number;
}

void startCommit();
await initBackend("wasm");
const sizes = Deno.args.length > 0 ? Deno.args.map(Number) : [64, 128];
const rows: { size: number; route: string; timing: RouteTiming }[] = [];
for (const size of sizes) {
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: size }),
    TrainingSchema.parse({}),
  );
  const source = await teacherFeatureSource(
    detector.teacher,
    size,
    InferenceSchema.parse({ engine: "onnxruntime" }),
    "wasm",
    (line) => console.warn(line),
  );
  if (!source) throw new Error("ONNX Runtime cannot load here");
  const x = tf.randomUniform([BATCH, size, size, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  const all = x.dataSync() as Float32Array;
  const per = size * size * 3;
  const images = Array.from({ length: BATCH }, (_, i) => all.subarray(i * per, (i + 1) * per));
  detector.fitTeacherStats([x]);
  const routes: [string, () => Promise<void>][] = [
    ["teacher alone, tfjs-wasm", () => {
      const f = detector.teacher.extract(x);
      f.dataSync();
      f.dispose();
      return Promise.resolve();
    }],
    ["teacher alone, onnxruntime 1 thread", async () => void await source.features(images)],
    ["AD² step, teacher on tfjs-wasm", () => {
      detector.trainStep(x);
      return Promise.resolve();
    }],
    ["AD² step, teacher features from onnxruntime", async () => {
      const features = featureTensor(await source.features(images));
      detector.trainStep(x, features);
      features.dispose();
    }],
  ];
  const samples: number[][] = routes.map(() => []);
  for (let round = -1; round < ROUNDS; round++) {
    for (const [i, [, run]] of routes.entries()) {
      const start = performance.now();
      await run();
      if (round >= 0) samples[i].push(performance.now() - start);
    }
  }
  routes.forEach(([route], i) =>
    rows.push({
      size,
      route,
      timing: { medianMs: median(samples[i]), minMs: Math.min(...samples[i]) },
    })
  );
  x.dispose();
  await source.dispose();
  detector.dispose();
}
console.log(textTable({
  headers: ["px", `batch ${BATCH}`, "median ms", "min ms"],
  rows: rows.map((r) => [
    String(r.size),
    r.route,
    fixed(r.timing.medianMs, 0),
    fixed(r.timing.minMs, 0),
  ]),
}));
const env = await environment();
console.log(`load average ${env.loadAverage.map((l) => l.toFixed(2)).join(" / ")}`);
console.log(
  `wrote ${await writeResultJson("teacher-features.json", {
    environment: env,
    rounds: ROUNDS,
    batch: BATCH,
    rows,
  })}`,
);
