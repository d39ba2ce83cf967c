/**
 * Prints the training engine this process gets for a small detector and the default training
 * and inference configuration, as one JSON line on stdout (tests run it with and without
 * --allow-ffi).
 */
import { InferenceSchema, ModelSchema, TrainingSchema } from "../../src/config/schema.ts";
import { initBackend } from "../../src/model/backend.ts";
import { Detector } from "../../src/model/detector.ts";
import { prepareTrainingEngine } from "../../src/model/training_engine.ts";

await initBackend("wasm");
const detector = await Detector.create(
  ModelSchema.parse({ imageSize: 32, teacher: { kind: "random_pdn" } }),
  TrainingSchema.parse({}),
);
const engine = await prepareTrainingEngine(detector, {
  inference: InferenceSchema.parse({}),
  warn: (line) => console.error(line),
});
console.log(JSON.stringify({ kind: engine.kind, description: engine.description }));
await engine.dispose();
detector.dispose();
