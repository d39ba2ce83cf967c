/**
 * `main.ts score`: scores a directory of images with a checkpoint, one JSON line per image.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadImageDirectory } from "../image/load.ts";
import { initBackend } from "../model/backend.ts";
import { loadCheckpoint, readCheckpointHeader } from "../model/checkpoint.ts";
import { prepareScoringEngines, scoreAllWith } from "../model/engine.ts";
import { InferenceSchema } from "../config/schema.ts";
import { formatZodError } from "../config/load.ts";

const HELP = `usage: main.ts score --model MODEL_DIR --images DIR

Prints {"file": ..., "score": ...} per image (higher = more anomalous; the scale is the
normalised map of EfficientAD, where ~0.1 is the normal range's upper end). Files that cannot be
decoded are reported on stderr and skipped.

options:
  --model DIR    checkpoint directory written by "main.ts train" or the pipeline
  --images DIR   images to score
  --engine E     auto (default: ONNX Runtime, else tfjs), onnxruntime or tfjs
  --threads N    ONNX Runtime threads (default: every core)
  --device D     ONNX Runtime execution provider: cpu (default) or cuda
  --help         this text`;

/** Entry point of `main.ts score`. */
export async function scoreCommand(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      model: { type: "string" },
      images: { type: "string" },
      engine: { type: "string", default: "auto" },
      threads: { type: "string", default: "auto" },
      device: { type: "string", default: "cpu" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!values.model || !values.images) {
    console.error(`score: --model and --images are required\n\n${HELP}`);
    return 2;
  }
  const inference = InferenceSchema.safeParse({
    engine: values.engine,
    threads: values.threads === "auto" ? "auto" : Number(values.threads),
    device: values.device,
  });
  if (!inference.success) {
    console.error(`score: ${formatZodError(inference.error, "options")}\n\n${HELP}`);
    return 2;
  }
  const header = await readCheckpointHeader(values.model);
  await initBackend(header.model.backend);
  const detector = await loadCheckpoint(values.model);
  try {
    if (!detector.warm) {
      console.error(`score: ${values.model} has no normalisation statistics (never trained)`);
      return 1;
    }
    const { images } = await loadImageDirectory(
      values.images,
      detector.model.imageSize,
      (skip) => console.error(`skipped ${skip.file}: ${skip.code}: ${skip.message}`),
    );
    const engines = await prepareScoringEngines(
      inference.data,
      detector.model,
      (line) => console.error(line),
    );
    const engine = await engines.build(detector, values.model);
    try {
      const reports = await scoreAllWith(engine, images.map((image) => image.pixels));
      images.forEach((image, i) =>
        console.log(JSON.stringify({ file: image.file, score: reports[i].score }))
      );
    } finally {
      await engine.dispose();
    }
  } finally {
    detector.dispose();
  }
  return 0;
}
