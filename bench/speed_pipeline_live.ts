/**
 * The live part of the pipeline benchmark: a private `nats-server -js`, the line served as
 * `deno task run` serves it (`runPipeline`, each stage in its own Worker), a camera publishing
 * encoded images on `inspect.<line>.image` and a subscriber timing every verdict. Publisher and
 * subscriber share one clock (`performance.now()` in this thread), so a latency is the
 * verdict's arrival minus its image's publication, with no clock skew.
 *
 * Per trainer mode (training, then paused through the trainer's `pause` action), two phases:
 * a burst of images published as fast as the client hands them to the broker (saturation),
 * then the same number at a fraction of the throughput the burst measured.
 *
 * @module
 */
import { connect, headers as natsHeaders, type NatsConnection } from "nats";
import type { PipelineConfig } from "../src/config/schema.ts";
import { loadPipelineConfig, parsePipelineConfig } from "../src/pipeline/config.ts";
import { startNatsServer } from "../src/pipeline/nats_server.ts";
import { type RunningPipeline, runPipeline } from "../src/pipeline/run.ts";
import {
  CAPTURED_AT_HEADER,
  IMAGE_ID_HEADER,
  imageSubject,
  verdictSubject,
} from "../src/bus/subjects.ts";
import { lineOfImageSubject } from "../src/streams/contract.ts";
import { readStream, readStreamInfo } from "../src/streams/format.ts";

/** The pipeline file `deno task run` serves by default. */
export const DEFAULT_PIPELINE_FILE = "pipelines/demo.json";
/** The camera images published: the committed synthetic-line stream (128 px JPEG). */
export const PAYLOAD_STREAM_DIR = "fixtures/synthetic-line";

/** Trainer modes measured, in order. */
export type TrainerMode = "training" | "paused";
/** Phases of one mode. */
export type LoadPhase = "saturated" | "paced";

/** Publication and verdict of one image. */
export interface ImageTiming {
  /** `performance.now()` when the image was handed to the client. */
  publishedMs: number;
  /** `performance.now()` when its verdict arrived, null if none did. */
  arrivedMs: number | null;
  /** Verdict status, null if none arrived. */
  status: string | null;
  /** Model version of a scored verdict. */
  modelVersion: number | null;
}

/** Settings of the live measurement. */
export interface LiveSettings {
  /** The line's configuration (the default one, warm-up shortened). */
  config: PipelineConfig;
  /** Images per phase. */
  images: number;
  /** Stop waiting for a phase's verdicts when none arrived for this long. */
  idleTimeoutSeconds: number;
}

/** What one phase recorded. */
export interface PhaseRecord {
  /** Trainer mode. */
  mode: TrainerMode;
  /** Phase. */
  phase: LoadPhase;
  /** Publish rate aimed at (images/s), null when publishing flat out. */
  targetRate: number | null;
  /** One timing per published image. */
  timings: ImageTiming[];
  /** Trainer steps taken during the phase. */
  trainerSteps: number;
  /** Seconds from the first publication to the last verdict (or the idle timeout). */
  seconds: number;
}

/** The camera images: a fixture stream's payloads, cycled under fresh Image-Ids. */
export interface PayloadInfo {
  /** Fixture stream directory. */
  stream: string;
  /** Distinct payloads. */
  distinct: number;
  /** Mean payload size in bytes. */
  meanBytes: number;
  /** Image side in pixels (the generator's `size`), null when the stream does not say. */
  size: number | null;
}

/** Everything the live measurement recorded. */
export interface LiveRecord {
  /** Seconds from the first warm-up image to the first scored verdict. */
  warmupSeconds: number;
  /** What was published. */
  payload: PayloadInfo;
  /** Phases in run order (those finished before a failure). */
  phases: PhaseRecord[];
  /** Why the run stopped before its last phase, if it did. */
  failure?: string;
}

/**
 * The configuration `deno task run` serves ({@link DEFAULT_PIPELINE_FILE}) with the first
 * version published after `warmupSteps` steps (`trainer.maturity.criterion` "steps"), so
 * scoring starts after a short warm-up: throughput, not maturity, is measured here.
 */
export async function benchPipelineConfig(warmupSteps: number): Promise<PipelineConfig> {
  const shipped = await loadPipelineConfig(DEFAULT_PIPELINE_FILE);
  const maturity = { ...shipped.trainer.maturity, criterion: "steps" as const };
  return parsePipelineConfig(
    { ...shipped, trainer: { ...shipped.trainer, warmupSteps, maturity } },
    `${DEFAULT_PIPELINE_FILE} + trainer.warmupSteps ${warmupSteps}, maturity "steps"`,
  );
}

/**
 * Computes the paced phase's rate from the saturated one's result: the caller's summary
 * decides what "throughput" is. Returns null when there is no usable throughput.
 */
export type PacedRate = (saturated: PhaseRecord) => number | null;

/** Runs the whole live measurement; everything it started is stopped and removed after. */
export async function measureLivePipeline(
  settings: LiveSettings,
  pacedRate: PacedRate,
  log: (text: string) => void,
): Promise<LiveRecord> {
  const { config } = settings;
  const { payloads, info } = await loadPayloads(PAYLOAD_STREAM_DIR);
  const tempDir = await Deno.makeTempDir({ prefix: "speed-pipeline-" });
  const cleanups: (() => Promise<unknown>)[] = [
    () => Deno.remove(tempDir, { recursive: true }),
  ];
  try {
    const server = await startNatsServer({ storeDir: `${tempDir}/nats` });
    cleanups.unshift(() => server.stop());
    log(`nats-server with JetStream at ${server.url}`);
    const nc = await connect({ servers: server.url, name: "speed-bench-camera" });
    cleanups.unshift(() => nc.close());
    const camera = new Camera(nc, config.line, payloads);
    const pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      checkpointDir: `${tempDir}/checkpoints`,
      progressIntervalMs: 0,
      log,
    });
    // Stopping publishes a last version and saves a checkpoint into the temporary directory.
    cleanups.unshift(() => pipeline.stop());
    log(`line ${config.line}: ${pipeline.stages.join(", ")} running, one Worker each`);
    pipeline.failure.catch(() => undefined); // raced below; never left unhandled
    // A stage that dies ends the measurement instead of leaving it waiting.
    const guard = <T>(work: Promise<T>): Promise<T> => Promise.race([work, pipeline.failure]);
    const warmupSeconds = await guard(warmUp(camera, pipeline, settings, log));
    const phases: PhaseRecord[] = [];
    const record: LiveRecord = { warmupSeconds, payload: info, phases };
    try {
      for (const mode of ["training", "paused"] as const) {
        if (mode === "paused") {
          // Resolves between two steps: the Worker answers only when no step is running.
          await guard(pipeline.stage("trainer")!.pause());
          log("trainer paused");
        }
        const saturated = await guard(
          runPhase(camera, pipeline, settings, { mode, phase: "saturated", rate: null }, log),
        );
        phases.push(saturated);
        const rate = pacedRate(saturated);
        if (rate === null) {
          log(`${mode}: no saturated throughput, paced phase skipped`);
          continue;
        }
        phases.push(
          await guard(runPhase(camera, pipeline, settings, { mode, phase: "paced", rate }, log)),
        );
      }
    } catch (error) {
      // Keep the phases already measured.
      record.failure = error instanceof Error ? error.message : String(error);
      log(`pipeline failed: ${record.failure}`);
    }
    return record;
  } finally {
    for (const cleanup of cleanups) {
      await cleanup().catch((error) => log(`cleanup: ${error?.message ?? error}`));
    }
  }
}

/** The image payloads of a fixture stream, and what they are. */
async function loadPayloads(dir: string): Promise<{ payloads: Uint8Array[]; info: PayloadInfo }> {
  const payloads: Uint8Array[] = [];
  for await (const message of readStream(dir)) {
    if (lineOfImageSubject(message.subject) !== undefined) payloads.push(message.payload);
  }
  if (payloads.length === 0) throw new Error(`${dir}: no image messages`);
  const size = (await readStreamInfo(dir)).params.size;
  const info: PayloadInfo = {
    stream: dir,
    distinct: payloads.length,
    meanBytes: Math.round(payloads.reduce((sum, p) => sum + p.length, 0) / payloads.length),
    size: typeof size === "number" ? size : null,
  };
  return { payloads, info };
}

/**
 * Publishes images with unique Image-Ids (payloads cycled) and times their verdicts. Only
 * `imageId`, `status` and `modelVersion` are read from a verdict: validating every verdict
 * would spend the CPU the pipeline is measured on.
 */
class Camera {
  readonly #nc: NatsConnection;
  readonly #subject: string;
  readonly #payloads: Uint8Array[];
  readonly #pending = new Map<string, ImageTiming>();
  #next = 0;

  constructor(nc: NatsConnection, line: string, payloads: Uint8Array[]) {
    this.#nc = nc;
    this.#subject = imageSubject(line);
    this.#payloads = payloads;
    nc.subscribe(verdictSubject(line), {
      callback: (error, message) => {
        if (error) return;
        const arrivedMs = performance.now();
        const verdict = message.json<
          { imageId: string | null; status: string; modelVersion: number | null }
        >();
        const timing = verdict.imageId === null ? undefined : this.#pending.get(verdict.imageId);
        if (!timing) return;
        this.#pending.delete(verdict.imageId!);
        timing.arrivedMs = arrivedMs;
        timing.status = verdict.status;
        timing.modelVersion = verdict.modelVersion;
      },
    });
  }

  /** Publishes one image with Image-Id `imageId`; returns its timing (filled on arrival). */
  publish(imageId: string): ImageTiming {
    const payload = this.#payloads[this.#next++ % this.#payloads.length];
    const headers = natsHeaders();
    headers.set(IMAGE_ID_HEADER, imageId);
    headers.set(CAPTURED_AT_HEADER, new Date().toISOString());
    const timing: ImageTiming = {
      publishedMs: performance.now(),
      arrivedMs: null,
      status: null,
      modelVersion: null,
    };
    this.#pending.set(imageId, timing);
    this.#nc.publish(this.#subject, payload, { headers });
    return timing;
  }

  /** Waits until the server has everything published so far. */
  flush(): Promise<void> {
    return this.#nc.flush();
  }
}

// Flush every so many messages of a burst: bounds what the client buffers (as replay does).
const FLUSH_EVERY = 64;
const PROGRESS_EVERY_MS = 5_000;

/** Publishes warm-up images until the scorer has a model and every warm-up verdict is in. */
async function warmUp(
  camera: Camera,
  pipeline: RunningPipeline,
  settings: LiveSettings,
  log: (text: string) => void,
): Promise<number> {
  const { trainer, training } = settings.config;
  log(
    `warm-up: images until the trainer has fitted its statistics (${trainer.statsImages} ` +
      `images) and taken ${trainer.warmupSteps} steps, and the scorer has loaded the model`,
  );
  const start = performance.now();
  const timings: ImageTiming[] = [];
  const scorer = pipeline.stage("scorer")!;
  let lastLog = start;
  // About one training batch per second: the trainer takes a step per fresh batch.
  while (true) {
    const status = await scorer.status();
    if (status.modelVersion !== null) break;
    if (performance.now() - start > 600_000) throw new Error("warm-up took over 10 minutes");
    for (let i = 0; i < training.batchSize; i++) {
      timings.push(camera.publish(`warmup-${timings.length}`));
    }
    await camera.flush();
    if (performance.now() - lastLog >= PROGRESS_EVERY_MS) {
      lastLog = performance.now();
      const trainerStatus = await pipeline.stage("trainer")!.status();
      log(`  warm-up: ${timings.length} images published, trainer step ${trainerStatus.step}`);
    }
    await sleep(1_000);
  }
  const seconds = (performance.now() - start) / 1000;
  await waitForVerdicts(timings, settings.idleTimeoutSeconds);
  log(`warm-up done: scorer has a model after ${seconds.toFixed(1)} s, ${timings.length} images`);
  return seconds;
}

/** One phase: publish, then wait for every verdict (or the idle timeout). */
async function runPhase(
  camera: Camera,
  pipeline: RunningPipeline,
  settings: LiveSettings,
  { mode, phase, rate }: { mode: TrainerMode; phase: LoadPhase; rate: number | null },
  log: (text: string) => void,
): Promise<PhaseRecord> {
  const trainer = pipeline.stage("trainer")!;
  const stepsBefore = (await trainer.status()).step ?? 0;
  const label = `${mode}/${phase}`;
  log(
    `${label}: ${settings.images} images ` +
      (rate === null ? "published flat out" : `at ${rate.toFixed(1)} images/s`),
  );
  const timings: ImageTiming[] = [];
  const start = performance.now();
  const progress = setInterval(() => {
    const done = timings.filter((t) => t.arrivedMs !== null).length;
    const seconds = (performance.now() - start) / 1000;
    log(
      `  ${label}: ${timings.length} published, ${done} verdicts in ${seconds.toFixed(0)} s ` +
        `(${(done / seconds).toFixed(1)}/s)`,
    );
  }, PROGRESS_EVERY_MS);
  try {
    for (let i = 0; i < settings.images; i++) {
      if (rate !== null) {
        const waitMs = start + (i * 1000) / rate - performance.now();
        if (waitMs > 0) await sleep(waitMs);
      }
      timings.push(camera.publish(`${mode}-${phase}-${i}`));
      if (rate === null && (i + 1) % FLUSH_EVERY === 0) await camera.flush();
    }
    await camera.flush();
    await waitForVerdicts(timings, settings.idleTimeoutSeconds);
  } finally {
    clearInterval(progress);
  }
  const missing = timings.filter((t) => t.arrivedMs === null).length;
  const end = missing === 0 ? Math.max(...timings.map((t) => t.arrivedMs!)) : performance.now();
  const stepsAfter = (await trainer.status()).step ?? 0;
  log(
    `${label}: done in ${((end - start) / 1000).toFixed(1)} s` +
      (missing > 0 ? `, ${missing} without a verdict` : "") +
      `, trainer steps ${stepsAfter - stepsBefore}`,
  );
  return {
    mode,
    phase,
    targetRate: rate,
    timings,
    trainerSteps: stepsAfter - stepsBefore,
    seconds: (end - start) / 1000,
  };
}

/** Resolves once every timing has its verdict, or no verdict came for `idleSeconds`. */
async function waitForVerdicts(timings: readonly ImageTiming[], idleSeconds: number) {
  let lastCount = -1;
  let lastChange = performance.now();
  while (true) {
    const count = timings.filter((t) => t.arrivedMs !== null).length;
    if (count === timings.length) return;
    if (count !== lastCount) {
      lastCount = count;
      lastChange = performance.now();
    } else if (performance.now() - lastChange > idleSeconds * 1000) return;
    await sleep(100);
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
