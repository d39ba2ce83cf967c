/**
 * The live half of the stream benchmark: one (class, ratio, variant) served as `deno task run`
 * serves a line (`runPipeline`, every stage in its own Worker, a private nats-server with
 * JetStream) and fed the polluted Fashion-MNIST training set as a camera would, pass after
 * pass with fresh Image-Ids, until the trainer publishes its first version exactly at the
 * offline job's step count. The trainer is then paused, the test set is published, and its
 * verdicts and the line's training events are read back. Ground truth stays here: only PNGs
 * and Image-Ids travel.
 *
 * @module
 */
import sharp from "sharp";
import type { PipelineConfig } from "../src/config/schema.ts";
import { PipelineSchema } from "../src/config/schema.ts";
import { streamNames } from "../src/bus/subjects.ts";
import { ModelStore, type ModelVersionRecord } from "../src/bus/model_store.ts";
import type { TrainingEvent } from "../src/bus/training_event.ts";
import type { Verdict } from "../src/bus/verdict.ts";
import type { SplitSample } from "../src/data/polluted_split.ts";
import { SeededRandom } from "../src/util/prng.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { E2eLine, MILESTONE_TIMEOUT_MS, passSuffix } from "../src/harness/line.ts";
import { control, publishImage, waitForStreamCount, waitUntil } from "../src/harness/bus.ts";
import type { AccuracyConfig } from "./accuracy_job.ts";
import { ACCURACY_VARIANTS } from "./accuracy_variants.ts";
import { greyToRgbImages } from "./fashion_images.ts";
import type { StreamCell } from "./stream_summary.ts";
import { secondsSince } from "./timing.ts";

/** The line every cell is served as (each cell gets its own server, so one name suffices). */
export const STREAM_LINE = "fashion-stream";

/** Publication cadence that never fires after the first version (which warm-up decides). */
const NEVER_AGAIN = { steps: 1_000_000, seconds: 1e9 };

/**
 * The line's configuration for `cell`: the offline job's model and training (variant
 * overrides, learning rate), the first version published after exactly `config.steps` steps
 * and none after it, a buffer holding one pass, statistics and normalisation on
 * `config.statsImages` images as offline, the variant's training-set hygiene as offline; every
 * other field the default.
 */
export function streamPipelineConfig(
  cell: StreamCell,
  config: AccuracyConfig,
  trainSize: number,
): PipelineConfig {
  return PipelineSchema.parse({
    line: STREAM_LINE,
    model: {
      imageSize: config.imageSize,
      studentWidth: config.studentWidth,
      aeLatent: config.aeLatent,
      seed: config.seed,
    },
    training: {
      ...config.training,
      ...ACCURACY_VARIANTS[cell.variant].training,
      learningRate: config.learningRate,
    },
    trainer: {
      warmupSteps: config.steps,
      publishEverySteps: NEVER_AGAIN.steps,
      publishEverySeconds: NEVER_AGAIN.seconds,
      bufferSize: trainSize,
      statsImages: config.statsImages,
      normalisationImages: config.statsImages,
      seed: config.seed,
      // The variant's hygiene, as offline; without one nothing leaves training (a cap of 0).
      hygiene: ACCURACY_VARIANTS[cell.variant].hygiene ?? { maxRejectedFraction: 0 },
    },
  });
}

/** Image-Id of training sample `index` in pass `pass` (1-based; `-pK` suffix from pass 2). */
export function trainImageId(index: number, pass: number): string {
  return `train-${index}${passSuffix(pass)}`;
}

/** Image-Id of test sample `index`. */
export function testImageId(index: number): string {
  return `test-${index}`;
}

/**
 * The training sample behind a published Image-Id: its key (the pass-1 id) and label;
 * undefined for anything that is not a training image id of a split with `labels`.
 */
export function trainSampleOf(
  imageId: string,
  labels: readonly boolean[],
): { key: string; anomalous: boolean } | undefined {
  const match = /^train-(\d+)(?:-p\d+)?$/.exec(imageId);
  if (!match) return undefined;
  const index = Number(match[1]);
  if (index >= labels.length) return undefined;
  return { key: trainImageId(index, 1), anomalous: labels[index] };
}

/**
 * Encodes samples as the detector would see them offline (`greyToRgbImages`: bilinear to
 * `size`, grey → RGB), quantised to 8 bits, as PNG. Ingest's resize to `size` is then an
 * identity, so the live pixels equal the offline ones up to the quantisation (≤ 1/510).
 */
export async function encodeSamples(
  samples: readonly SplitSample[],
  size: number,
): Promise<Uint8Array[]> {
  const pixels = greyToRgbImages(samples.map((s) => s.image), size);
  return await Promise.all(pixels.map(async (floats) => {
    const bytes = new Uint8Array(floats.length);
    for (let i = 0; i < floats.length; i++) bytes[i] = Math.round(floats[i] * 255);
    const png = await sharp(bytes, { raw: { width: size, height: size, channels: 3 } })
      .png()
      .toBuffer();
    return new Uint8Array(png);
  }));
}

/** What {@link runLiveCell} needs. */
export interface LiveCellOptions {
  /** The cell. */
  cell: StreamCell;
  /** The offline job's settings (steps, sizes, seed). */
  config: AccuracyConfig;
  /** Encoded training images, in split order. */
  train: readonly Uint8Array[];
  /** Encoded test images, in split order. */
  test: readonly Uint8Array[];
  /** Progress lines. */
  log: (line: string) => void;
}

/** What the live run returned. */
export interface LiveCellRun {
  /** The line's configuration. */
  pipeline: PipelineConfig;
  /** The version that scored the test set (trained `config.steps` steps). */
  model: ModelVersionRecord;
  /** Test Image-Ids, in split order. */
  testIds: string[];
  /** Every verdict of the line. */
  verdicts: Verdict[];
  /** Every training event of the line. */
  events: TrainingEvent[];
  /** Training passes published. */
  passes: number;
  /** Image messages published. */
  imagesPublished: number;
  /** Wall seconds from server start to everything read back. */
  seconds: number;
}

/** Runs one cell live (see the module documentation). */
export async function runLiveCell(options: LiveCellOptions): Promise<LiveCellRun> {
  const { cell, config, train, test, log } = options;
  const started = performance.now();
  const pipeline = streamPipelineConfig(cell, config, train.length);
  await using line = await E2eLine.start(pipeline);
  log(`live: pipeline ready (${secondsSince(started)} s)`);

  // Each pass needs at least train.length / batchSize steps (a batch takes at most batchSize
  // new images), so this many passes reach the step count unless something is wrong.
  const maxPasses = Math.ceil((config.steps * pipeline.training.batchSize) / train.length) + 2;
  const order = new SeededRandom(config.seed);
  const indices = train.map((_, i) => i);
  let trainer: StageStatus | undefined;
  let passes = 0;
  while (trainer?.modelVersion == null) {
    if (passes === maxPasses) {
      throw new Error(
        `no model version after ${passes} passes (trainer at step ${trainer?.step ?? 0})`,
      );
    }
    passes++;
    for (const i of order.shuffled(indices)) {
      publishImage(line.nc, STREAM_LINE, trainImageId(i, passes), train[i]);
    }
    line.published += train.length;
    await line.nc.flush();
    await waitUntil(
      async () => {
        trainer = await line.status("trainer");
        const caughtUp = trainer.imagesIn >= line.published &&
          trainer.details.bufferedUntrained === 0;
        return trainer.modelVersion !== null || caughtUp;
      },
      MILESTONE_TIMEOUT_MS,
      `the trainer to train on pass ${passes} or publish a version`,
    );
    log(
      `live: pass ${passes} (${train.length} images) → trainer step ${trainer!.step}, ` +
        `${trainer!.details.hygieneRejected} rejected (${secondsSince(started)} s)`,
    );
  }

  // Frozen from here: no version after the first (cadence), and pausing stops the steps.
  await control<StageStatus>(line.nc, STREAM_LINE, "trainer", "pause");
  const model = await (await ModelStore.open(line.nc.jetstream(), STREAM_LINE)).current();
  if (!model) throw new Error("the trainer reports a version but none is stored");
  if (model.step !== config.steps) {
    throw new Error(`model v${model.version} has ${model.step} steps, expected ${config.steps}`);
  }
  await waitUntil(
    async () => ((await line.status("scorer")).modelVersion ?? 0) >= model.version,
    MILESTONE_TIMEOUT_MS,
    `the scorer to load model v${model.version}`,
  );
  log(`live: trainer paused, scorer on v${model.version} (step ${model.step})`);

  const testIds = test.map((_, i) => testImageId(i));
  test.forEach((png, i) => publishImage(line.nc, STREAM_LINE, testIds[i], png));
  line.published += test.length;
  await line.nc.flush();
  await waitForStreamCount(
    line.jsm,
    streamNames(STREAM_LINE).verdicts,
    line.published,
    MILESTONE_TIMEOUT_MS,
  );
  const verdicts = await line.verdicts();
  const events = await line.trainingEvents();
  log(
    `live: ${verdicts.length} verdicts and ${events.length} training events read ` +
      `(${secondsSince(started)} s)`,
  );
  return {
    pipeline,
    model,
    testIds,
    verdicts,
    events,
    passes,
    imagesPublished: line.published,
    seconds: secondsSince(started),
  };
}
