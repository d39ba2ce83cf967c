/**
 * `main.ts train`: offline training on a directory of images, saving a checkpoint.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { InferenceSchema, MethodSchema, ModelSchema, TrainingSchema } from "../config/schema.ts";
import { loadImageDirectory } from "../image/load.ts";
import { initBackend } from "../model/backend.ts";
import { Detector } from "../model/detector.ts";
import { trainOfflineWith } from "../model/offline.ts";
import { prepareTrainingEngine } from "../model/training_engine.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { formatZodError, readJsonFile } from "../config/load.ts";

const HELP = `usage: main.ts train --images DIR --out MODEL_DIR [options]

Trains the detector on the images in DIR (JPEG, PNG, WebP; other files are reported and
skipped) and saves a checkpoint directory.

options:
  --images DIR       training images (may contain unlabeled defects: that is what AD² is for)
  --out DIR          checkpoint directory to write (refused if it holds one, unless --force)
  --steps N          optimiser steps (default 1000)
  --method M         ad2 | baseline | nmfe | atdr (default ad2)
  --config FILE      pipeline JSON whose "model", "training" and "inference" sections to use
  --engine E         training engine: auto (ONNX Runtime, else tfjs) | onnxruntime | tfjs
                     (default: the config's training.engine, auto)
  --image-size N     override model.imageSize
  --backend NAME     override model.backend (wasm, cpu, webgpu, tensorflow, tensorflow-gpu)
  --seed N           batch-sampling seed (default 0)
  --force            overwrite an existing checkpoint
  --help             this text`;

/** Entry point of `main.ts train`. */
export async function trainCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      images: { type: "string" },
      out: { type: "string" },
      steps: { type: "string", default: "1000" },
      method: { type: "string" },
      config: { type: "string" },
      "image-size": { type: "string" },
      backend: { type: "string" },
      engine: { type: "string" },
      seed: { type: "string", default: "0" },
      force: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.images || !values.out) {
    console.error(`train: --images and --out are required\n\n${HELP}`);
    return 2;
  }
  const steps = Number(values.steps);
  if (!Number.isInteger(steps) || steps < 1) {
    console.error(`train: --steps must be a positive integer, got "${values.steps}"`);
    return 2;
  }
  const file = values.config ? await readJsonFile(values.config) : {};
  const sections = file as {
    model?: Record<string, unknown>;
    training?: Record<string, unknown>;
    inference?: Record<string, unknown>;
  };
  const modelInput = { ...sections.model };
  if (values["image-size"]) modelInput.imageSize = Number(values["image-size"]);
  if (values.backend) modelInput.backend = values.backend;
  const trainingInput = { ...sections.training };
  if (values.method) trainingInput.method = values.method;
  if (values.engine) trainingInput.engine = values.engine;
  const model = ModelSchema.safeParse(modelInput);
  const training = TrainingSchema.safeParse(trainingInput);
  const inference = InferenceSchema.safeParse(sections.inference ?? {});
  if (!model.success || !training.success || !inference.success) {
    const [error, section] = !model.success
      ? [model.error, "model"]
      : !training.success
      ? [training.error, "training"]
      : [inference.error!, "inference"];
    console.error(`train: ${formatZodError(error, values.config ?? "arguments", section)}`);
    if (values.method && !MethodSchema.safeParse(values.method).success) {
      console.error(`  (--method takes ${MethodSchema.options.join(", ")})`);
    }
    return 2;
  }
  if (!values.force && await exists(`${values.out}/detector.json`)) {
    console.error(`train: ${values.out} already holds a checkpoint; pass --force to overwrite`);
    return 1;
  }

  await initBackend(model.data.backend);
  console.error(`decoding images in ${values.images} at ${model.data.imageSize}px ...`);
  const { images } = await loadImageDirectory(
    values.images,
    model.data.imageSize,
    (skip) => console.error(`skipped ${skip.file}: ${skip.code}: ${skip.message}`),
  );
  console.error(`${images.length} images; training ${steps} steps with ${training.data.method}`);
  const detector = await Detector.create(model.data, training.data);
  const engine = await prepareTrainingEngine(detector, {
    inference: inference.data,
    warn: (line) => console.error(line),
  });
  console.error(`training with ${engine.description}`);
  try {
    const started = performance.now();
    const every = Math.max(1, Math.round(steps / 20));
    await trainOfflineWith(detector, engine, images.map((image) => image.pixels), {
      steps,
      seed: Number(values.seed),
      onStep: (report) => {
        if (report.step % every !== 0 && report.step !== steps) return;
        const seconds = (performance.now() - started) / 1000;
        const eta = (seconds / report.step) * (steps - report.step);
        console.error(
          `step ${report.step}/${steps}  loss ${report.losses.total.toFixed(4)}  ` +
            `${(report.step / seconds).toFixed(2)} steps/s  eta ${eta.toFixed(0)} s`,
        );
      },
    });
    await saveCheckpoint(detector, values.out);
    console.error(`saved ${values.out}`);
  } finally {
    await engine.dispose();
    detector.dispose();
  }
  return 0;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}
