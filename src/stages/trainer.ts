/**
 * Trainer: samples the line's decoded images into a bounded buffer and trains the detector
 * online with AD², one batch at a time, publishing a model version to the object store every
 * N steps or T seconds once warm-up is over. ATDR-down-weighted images are reported on the
 * training subject; the hygiene policy (`trainer.hygiene`: ATDR flags, optionally the published
 * model's anomalous verdicts, under a rejection cap) decides which leave the buffer, so they
 * are neither replayed nor used for the map normalisation. A restarted trainer resumes from the
 * newer of the line's current version and its own resume point (written every
 * `trainer.checkpointEverySeconds`, so a kill -9 before the first version costs little), and
 * refills its buffer from the decoded images the line still holds (`trainer_resume.ts`).
 *
 * Training is synchronous compute; between steps the loop yields so NATS callbacks keep
 * filling the buffer and control requests are answered.
 *
 * @module
 */
import type {
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  NatsConnection,
  Subscription,
} from "nats";
import type { PipelineConfig } from "../config/schema.ts";
import { decodeDecodedImage } from "../bus/decoded_image.ts";
import { ModelStore, type ModelVersionRecord } from "../bus/model_store.ts";
import { publishTrainingEvent } from "../bus/publishers.ts";
import { consumerBacklog, ensureDurableConsumer, ensureLineStreams } from "../bus/streams.ts";
import { TRAINER_CONSUMER, verdictSubject } from "../bus/subjects.ts";
import { parseVerdict, type Verdict } from "../bus/verdict.ts";
import { ImageBuffer } from "./image_buffer.ts";
import { LossPlateau } from "./maturity.ts";
import { RejectionPolicy } from "./hygiene.ts";
import { metrics } from "../observe/metrics.ts";
import { trainStepFromBuffer } from "./buffer_training.ts";
import {
  createDetector,
  type Detector,
  detectorToBlob,
  imageBatches,
  liveTensors,
  prepareTrainingEngine,
  saveDetector,
  type TrainingEngine,
  useBackend,
} from "./model_port.ts";
import {
  errorText,
  type PipelineStage,
  type SnapshotReport,
  type StageLog,
  type StageName,
  type StageOptions,
  type StageStatus,
} from "./stage.ts";
import { Wakeup, yieldToEventLoop } from "./wakeup.ts";
import { loadResumePoint, recentDecodedImages, saveResumePoint } from "./trainer_resume.ts";
import { ModelGate } from "./model_admission.ts";
import { setThreadNiceness } from "../util/thread_priority.ts";

/** Options of {@link TrainerStage}. */
export interface TrainerStageOptions extends StageOptions {
  /** Checkpoints go to `<checkpointDir>/<line>` on stop and snapshot. */
  checkpointDir: string;
}

/** Longest idle sleep of the training loop, so time-based publication is not late. */
const IDLE_WAIT_MS = 250;

/** The trainer stage of one line. */
export class TrainerStage implements PipelineStage {
  /** Stage name. */
  readonly name: StageName = "trainer";
  readonly #nc: NatsConnection;
  readonly #config: PipelineConfig;
  readonly #checkpointDir: string;
  readonly #log: StageLog;
  readonly #buffer: ImageBuffer;
  readonly #hygiene: RejectionPolicy<Float32Array>;
  readonly #wakeup = new Wakeup();
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #models?: ModelStore;
  #gate?: ModelGate;
  #detector?: Detector;
  /** What computes the training steps (`training.engine`: ONNX Runtime by default). */
  #engine: TrainingEngine | null = null;
  #messages?: ConsumerMessages;
  /** The line's verdicts, when hygiene takes the published model's second opinion. */
  #verdicts?: Subscription;
  /** Images rejected on a verdict since the last training event (reported with it). */
  #rejectedOnVerdict: string[] = [];
  #loop?: Promise<void>;
  #stopping = false;
  #paused = false;
  /** Replay-only steps earned by new images (`trainer.replayStepsPerImage`) and not yet taken. */
  #replayBudget = 0;
  /** The loop's current pass (step, publication), settled when it ends; pause waits for it. */
  #inHand: Promise<void> = Promise.resolve();
  #published: { version: number; step: number; at: number } | null = null;
  #publishLock: Promise<unknown> = Promise.resolve();
  #imagesIn = 0;
  #imagesTrained = 0;
  #downWeighted = 0;
  #unreadable = 0;
  /** Images the camera held out of training (`Image-Train: no`): seen, never buffered. */
  #heldOut = 0;
  #lastLoss: number | null = null;
  /** Whether the model is mature enough for its first version (trainer.maturity). */
  readonly #maturity: LossPlateau;
  #resumePointAt = Date.now();
  #refilled = 0;

  /** Creates the stage; {@link start} loads or creates the model and starts training. */
  constructor(options: TrainerStageOptions) {
    this.#nc = options.connection;
    this.#config = options.config;
    this.#checkpointDir = options.checkpointDir;
    this.#log = options.log;
    this.#buffer = new ImageBuffer(options.config.trainer.bufferSize, options.config.trainer.seed);
    this.#hygiene = new RejectionPolicy(options.config.trainer.hygiene);
    const { maturity, warmupSteps } = options.config.trainer;
    this.#maturity = new LossPlateau({ ...maturity, minSteps: warmupSteps });
  }

  /** Resumes from the current version (or starts fresh), then consumes and trains. */
  async start(): Promise<void> {
    const { line, streams, model } = this.#config;
    await useBackend(model.backend);
    this.#jsm = await this.#nc.jetstreamManager();
    this.#js = this.#nc.jetstream();
    await ensureLineStreams(this.#jsm, line, streams, { warn: (m) => this.#log.warn(m) });
    const stream = await ensureDurableConsumer(this.#jsm, line, TRAINER_CONSUMER);
    this.#models = await ModelStore.open(this.#js, line, streams.replicas);
    this.#gate = await ModelGate.open({
      connection: this.#nc,
      config: this.#config,
      models: this.#models,
      stage: "trainer",
      log: this.#log,
    });
    this.#detector = await this.#resumeOrCreate(await this.#models.current());
    this.#engine = await prepareTrainingEngine(this.#detector, {
      engine: this.#config.training.engine,
      inference: this.#config.inference,
      warn: this.#log.warn,
    });
    this.#log.info(`training with ${this.#engine.description}`);
    this.#lowerPriority();
    this.#refilled = await recentDecodedImages(
      this.#js,
      this.#jsm,
      line,
      model.imageSize,
      this.#buffer.capacity,
      (imageId, pixels) => this.#buffer.add(imageId, pixels),
    ).catch((error) => {
      this.#log.warn(`cannot refill the buffer from the stream: ${errorText(error)}`);
      return 0;
    });
    if (this.#refilled > 0) {
      this.#log.info(`buffer refilled with ${this.#refilled} recent images from the stream`);
    }
    const consumer = await this.#js.consumers.get(stream, TRAINER_CONSUMER);
    // Two batches in flight: the trainer samples the line (no acks) into its bounded buffer,
    // so more prefetch would only be overwritten before it is trained on.
    this.#messages = await consumer.consume({
      max_messages: 2 * this.#config.training.batchSize,
      callback: (message) => this.#receive(message),
    });
    if (this.#config.trainer.hygiene.rejectScoredAnomalous) {
      this.#verdicts = this.#nc.subscribe(verdictSubject(line), {
        callback: (error, message) => {
          if (!error) this.#reviewVerdict(message.data);
        },
      });
    }
    this.#loop = this.#trainLoop();
  }

  /** The newer of the current version and the local resume point, else a fresh model. */
  async #resumeOrCreate(current: ModelVersionRecord | null): Promise<Detector> {
    const published = await this.#resumeFromVersion(current);
    let local: Detector | null = null;
    try {
      local = await loadResumePoint(this.#checkpointPath());
    } catch (error) {
      this.#log.warn(`ignoring the resume point: ${errorText(error)}`);
    }
    const sameModel = local && JSON.stringify(local.model) === JSON.stringify(this.#config.model);
    if (local && sameModel && local.step > (published?.step ?? 0)) {
      published?.dispose();
      const version = this.#published ? ` (newer than model v${this.#published.version})` : "";
      this.#log.info(`resumed from the resume point at step ${local.step}${version}`);
      return local;
    }
    local?.dispose();
    if (published) {
      this.#log.info(`resumed from model v${this.#published!.version} at step ${published.step}`);
      return published;
    }
    return await createDetector(this.#config.model, this.#config.training);
  }

  async #resumeFromVersion(current: ModelVersionRecord | null): Promise<Detector | null> {
    if (current) {
      // The current version is untrusted input like any other (see model_admission.ts).
      const detector = await this.#gate!.admit(current, null);
      if (detector) {
        this.#published = { version: current.version, step: current.step, at: Date.now() };
        metrics().modelHeld(current.line, this.name, current.version, current.publishedAt);
        return detector;
      }
      this.#log.warn(`not resuming from model v${current.version} (versions keep counting)`);
    }
    return null;
  }

  /** Runs this thread at `trainer.niceness`, so verdicts get the cores first (or says why not). */
  #lowerPriority(): void {
    const { niceness } = this.#config.trainer;
    if (niceness === 0) return;
    const change = setThreadNiceness(niceness);
    if (change.ok) this.#log.info(`training at nice ${niceness}: verdicts get the cores first`);
    else this.#log.warn(`training at normal priority: ${change.reason}`);
  }

  #checkpointPath(): string {
    return `${this.#checkpointDir}/${this.#config.line}`;
  }

  /** Writes the resume point when `trainer.checkpointEverySeconds` have passed. */
  async #saveResumePointIfDue(): Promise<void> {
    const detector = this.#detector!;
    const everyMs = this.#config.trainer.checkpointEverySeconds * 1000;
    if (detector.step === 0 || Date.now() - this.#resumePointAt < everyMs) return;
    this.#resumePointAt = Date.now();
    await saveResumePoint(detector, this.#checkpointPath(), `step ${detector.step}`);
  }

  #receive(message: JsMsg): void {
    this.#imagesIn++;
    metrics().imagesIn.inc({ line: this.#config.line, stage: this.name });
    try {
      const image = decodeDecodedImage(message.data, message.headers, this.#config.model.imageSize);
      if (image.heldOut) {
        this.#heldOut++;
        return;
      }
      this.#buffer.add(image.imageId, image.pixels);
      this.#wakeup.notify();
    } catch (error) {
      this.#unreadable++;
      this.#log.warn(`skipping decoded message ${message.seq}: ${errorText(error)}`);
    }
  }

  /** Rejects a buffered image the published model scored anomalous (trainer.hygiene). */
  #reviewVerdict(data: Uint8Array): void {
    let verdict: Verdict;
    try {
      verdict = parseVerdict(data);
    } catch {
      return; // not ours to judge: the verdict's consumers see the same message
    }
    if (verdict.status !== "scored" || !verdict.anomalous) return;
    const image = this.#buffer.get(verdict.imageId);
    if (!image) return;
    if (this.#hygiene.rejectScored({ imageId: image.imageId, item: image.pixels })) {
      this.#buffer.remove([image.imageId]);
      this.#rejectedOnVerdict.push(image.imageId);
    }
  }

  async #trainLoop(): Promise<void> {
    while (!this.#stopping) {
      const iteration = this.#iterate();
      this.#inHand = iteration.then(() => undefined);
      const worked = await iteration;
      if (worked) await yieldToEventLoop();
      else await this.#wakeup.wait(IDLE_WAIT_MS);
    }
  }

  /** One pass of the loop: a step, a publication when due, a resume point. False when idle. */
  async #iterate(): Promise<boolean> {
    let worked = false;
    try {
      worked = !this.#paused && await this.#tick();
      if (!this.#paused) await this.#publishIfDue();
      if (worked) await this.#saveResumePointIfDue();
    } catch (error) {
      this.#log.warn(`training step failed: ${errorText(error)}`);
    }
    return worked;
  }

  /** One unit of work: fit teacher statistics, or one training step. False when idle. */
  async #tick(): Promise<boolean> {
    const detector = this.#detector!;
    const { batchSize } = this.#config.training;
    const size = this.#config.model.imageSize;
    if (!detector.teacherStats) {
      const needed = Math.max(
        batchSize,
        Math.min(this.#config.trainer.statsImages, this.#buffer.capacity),
      );
      if (this.#buffer.size < needed) return false;
      const images = this.#buffer.recent(needed).map((image) => image.pixels);
      detector.fitTeacherStats(imageBatches(images, size, batchSize));
      this.#log.info(`teacher statistics fitted on ${images.length} images`);
      return true;
    }
    let result = await trainStepFromBuffer(
      detector,
      this.#buffer,
      this.#hygiene,
      this.#engine,
    );
    if (result) {
      this.#replayBudget += result.fresh * this.#config.trainer.replayStepsPerImage;
    } else if (this.#replayBudget >= 1) {
      result = await trainStepFromBuffer(
        detector,
        this.#buffer,
        this.#hygiene,
        this.#engine,
        true,
      );
      if (result) this.#replayBudget--;
    }
    if (!result) return false;
    const { report, downWeighted, readmitted } = result;
    const rejected = [...this.#rejectedOnVerdict.splice(0), ...result.rejected];
    this.#imagesTrained += result.fresh;
    this.#lastLoss = report.losses.total ?? null;
    this.#maturity.add(report.losses.total ?? NaN, report.step);
    this.#downWeighted += rejected.length;
    const event = {
      line: this.#config.line,
      step: report.step,
      losses: report.losses,
      batch: result.batch,
      downWeighted,
      rejected,
      readmitted,
      defectRate: report.defectRate,
      hygiene: this.#hygiene.stats,
      modelVersion: this.#published?.version ?? null,
      at: new Date().toISOString(),
    };
    await publishTrainingEvent(this.#js!, event);
    metrics().trainingStep(event);
    return true;
  }

  /** Publishes when warm-up is over and N steps or T seconds passed since the last version. */
  async #publishIfDue(): Promise<void> {
    const detector = this.#detector!;
    const { warmupSteps, publishEverySteps, publishEverySeconds } = this.#config.trainer;
    if (detector.step < warmupSteps) return;
    // With `loss_plateau` the first version also waits for the loss to level off (`steps`:
    // warm-up alone, as before); once a version is out the model counts as mature.
    const plateauPending = this.#config.trainer.maturity.criterion === "loss_plateau" &&
      !this.#maturity.mature;
    if (!this.#published && plateauPending) return;
    const last = this.#published;
    const due = !last ||
      (detector.step > last.step &&
        (detector.step - last.step >= publishEverySteps ||
          Date.now() - last.at >= publishEverySeconds * 1000));
    if (due) await this.#publish();
  }

  /** Fits the map normalisation on recent buffered images and publishes a version. */
  #publish(): Promise<number> {
    const run = async () => {
      const detector = this.#detector!;
      const { batchSize } = this.#config.training;
      const size = this.#config.model.imageSize;
      const recent = this.#buffer.recent(this.#config.trainer.normalisationImages);
      if (recent.length === 0) throw new Error("no buffered images to fit the normalisation on");
      detector.fitMapNormalisation(imageBatches(recent.map((i) => i.pixels), size, batchSize));
      const step = detector.step;
      const nextVersion = (this.#published?.version ?? 0) + 1;
      const blob = detectorToBlob(detector, `${this.#config.line} v${nextVersion}`);
      const record = await this.#models!.publish(
        blob,
        { step, imageSize: size },
        this.#gate!.signing,
      );
      this.#published = { version: record.version, step, at: Date.now() };
      metrics().modelHeld(record.line, this.name, record.version, record.publishedAt);
      const kib = (blob.length / 1024).toFixed(0);
      const explained = detector.mapQuantiles?.aeExplained;
      const explainedText = explained === undefined ? "?" : (100 * explained).toFixed(0);
      this.#log.info(
        `published model v${record.version} (step ${step}, ${kib} KiB; autoencoder explains ` +
          `${explainedText} % of the teacher features, its map weighs ` +
          `${detector.aeMapWeight.toFixed(2)})`,
      );
      await this.#models!.prune(this.#config.trainer.keepVersions).catch((error) =>
        this.#log.warn(`pruning old versions failed: ${errorText(error)}`)
      );
      return record.version;
    };
    const next = this.#publishLock.then(run, run);
    this.#publishLock = next.catch(() => undefined);
    return next;
  }

  async #saveCheckpoint(): Promise<string | null> {
    const detector = this.#detector;
    if (!detector || detector.step === 0) return null;
    const dir = this.#checkpointPath();
    const label = this.#published ? `v${this.#published.version}` : `step ${detector.step}`;
    await saveDetector(detector, dir, label);
    await saveResumePoint(detector, dir, label);
    return dir;
  }

  /** Publishes a version now (after warm-up) and saves a checkpoint. */
  async snapshot(): Promise<SnapshotReport> {
    const detector = this.#detector;
    if (!detector) throw new Error("trainer is not started");
    let modelVersion: number | null = this.#published?.version ?? null;
    if (detector.step >= this.#config.trainer.warmupSteps && detector.step > 0) {
      modelVersion = this.#published?.step === detector.step
        ? this.#published.version
        : await this.#publish();
    }
    return { step: detector.step, modelVersion, checkpoint: await this.#saveCheckpoint() };
  }

  /**
   * Stops training (the buffer keeps filling). Returns once the step or publication in hand
   * has finished, so no step or version follows the answer.
   */
  async pause(): Promise<StageStatus> {
    this.#paused = true;
    await this.#inHand;
    return this.status();
  }

  /** Resumes training. */
  resume(): Promise<StageStatus> {
    this.#paused = false;
    this.#wakeup.notify();
    return this.status();
  }

  /** Images seen, steps, loss, published version, backlog. */
  async status(): Promise<StageStatus> {
    const step = this.#detector?.step ?? 0;
    return {
      stage: this.name,
      line: this.#config.line,
      imagesIn: this.#imagesIn,
      imagesOut: this.#imagesTrained,
      backlog: this.#jsm
        ? await consumerBacklog(this.#jsm, this.#config.line, TRAINER_CONSUMER).catch(() => null)
        : null,
      step,
      loss: this.#lastLoss,
      modelVersion: this.#published?.version ?? null,
      warm: this.#published !== null,
      paused: this.#paused,
      details: {
        buffered: this.#buffer.size,
        bufferedUntrained: this.#buffer.untrained,
        skippedUntrained: this.#buffer.skipped,
        downWeighted: this.#downWeighted,
        hygieneRejected: this.#hygiene.stats.rejected,
        hygieneRefusedByCap: this.#hygiene.stats.refusedByCap,
        hygieneReadmitted: this.#hygiene.stats.readmitted,
        hygieneQuarantined: this.#hygiene.stats.quarantined,
        unreadable: this.#unreadable,
        heldOut: this.#heldOut,
        refilled: this.#refilled,
        // Of the last published version's normalisation (null before the first).
        aeExplained: this.#published ? this.#detector?.mapQuantiles?.aeExplained ?? null : null,
        aeMapWeight: this.#published ? this.#detector?.aeMapWeight ?? null : null,
        warmupSteps: this.#config.trainer.warmupSteps,
        tensors: liveTensors(),
        ...(this.#gate?.statusDetails() ?? { refusedVersions: 0, lastRefusal: null }),
      },
    };
  }

  /**
   * Stops consuming, finishes the step in hand, publishes a last version when steps were
   * taken since the previous one (after warm-up), saves a checkpoint and frees the model.
   */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeup.notify();
    this.#verdicts?.unsubscribe();
    await this.#messages?.close();
    await this.#loop;
    const detector = this.#detector;
    if (!detector) return;
    try {
      const { warmupSteps } = this.#config.trainer;
      if (detector.step >= warmupSteps && detector.step > (this.#published?.step ?? 0)) {
        await this.#publish();
      }
      const dir = await this.#saveCheckpoint();
      if (dir) this.#log.info(`checkpoint saved to ${dir}`);
    } finally {
      await this.#engine?.dispose();
      this.#engine = null;
      detector.dispose();
      this.#detector = undefined;
    }
  }
}
