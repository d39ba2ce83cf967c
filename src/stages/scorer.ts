/**
 * Scorer: takes decoded images from the line's durable `scorer` consumer (several scorer
 * processes pulling from it split the line, each message going to one of them), scores them
 * in batches with the current model version and publishes one verdict per image. Before the
 * first version exists verdicts are `warming_up`.
 *
 * Hot swap: a watcher loads each new version and builds its scoring session (ONNX Runtime by
 * default, see `src/model/engine.ts`) in the background; the swap happens between two
 * batches, so no image is dropped and none waits longer than the batch in hand. Messages are
 * acknowledged only after their verdicts are stored and recorded in the verdict ledger, so a
 * redelivered message whose verdict exists is acknowledged without a second one, however late
 * it comes (`src/bus/verdict_ledger.ts`).
 *
 * Work in hand is bounded: the stage pulls (bounded fetches) at most one batch beyond the one
 * it is scoring, sends progress acks for what it holds, and raises the consumer's ack_wait to
 * a multiple of its slowest measured batch. A message whose scoring throws is scored alone;
 * on its last delivery (`delivery.maxDeliver`) it gets a `processing_failed` rejection.
 *
 * @module
 */
import type { Consumer, JetStreamClient, JetStreamManager, JsMsg, NatsConnection } from "nats";
import type { PipelineConfig } from "../config/schema.ts";
import { decodeDecodedImage, DecodedImageError } from "../bus/decoded_image.ts";
import { ModelStore, type ModelVersionRecord } from "../bus/model_store.ts";
import { BacklogAlarm } from "../bus/backlog_alarm.ts";
import {
  AckWaitTuner,
  isLastDelivery,
  keepWorking,
  progressIntervalMs,
  retryDelayMs,
} from "../bus/delivery.ts";
import { VerdictLedger } from "../bus/verdict_ledger.ts";
import { publishHeatmap } from "../bus/heatmap.ts";
import { encodeHeatmapPng } from "../image/heatmap_png.ts";
import { localise } from "./localise.ts";
import { metrics } from "../observe/metrics.ts";
import { consumerBacklog, ensureDurableConsumer, ensureLineStreams } from "../bus/streams.ts";
import { SCORER_CONSUMER } from "../bus/subjects.ts";
import {
  rejectedVerdict,
  scoredVerdict,
  type Verdict,
  type VerdictContext,
  warmingUpVerdict,
} from "../bus/verdict.ts";
import {
  type Detector,
  liveTensors,
  prepareScoringEngines,
  type ScoringEngine,
  type ScoringEngines,
  useBackend,
} from "./model_port.ts";
import {
  errorText,
  type PipelineStage,
  type StageLog,
  type StageName,
  type StageOptions,
  type StageStatus,
} from "./stage.ts";
import { blockThread, failingImageIds, InjectedFault, scoringDelayMs } from "./faults.ts";
import { ScoreWindow } from "./threshold.ts";
import { ModelGate } from "./model_admission.ts";
import { Wakeup } from "./wakeup.ts";

/** A loaded model version and the scoring session built from it. */
interface LoadedModel {
  version: number;
  publishedAt: string;
  detector: Detector;
  engine: ScoringEngine;
}

/** A heatmap to publish before its verdict. */
interface PendingHeatmap {
  imageId: string;
  imageSeq: number;
  modelVersion: number;
  map: Float32Array;
  scaleMax: number;
}

/** What scoring made of one message: its verdict, heatmap and ingest time. */
interface Judged {
  verdict: Verdict;
  heatmap: PendingHeatmap | null;
  receivedAt: Date | null;
}

/** Longest wait of one pull request; an idle scorer asks again after it. */
const FETCH_EXPIRES_MS = 2_000;
/** Pause after a failed pull (the broker restarting) before the next one. */
const PULL_RETRY_MS = 1_000;

/** The scorer stage of one line (one of possibly several processes). */
export class ScorerStage implements PipelineStage {
  /** Stage name. */
  readonly name: StageName = "scorer";
  readonly #nc: NatsConnection;
  readonly #config: PipelineConfig;
  readonly #log: StageLog;
  readonly #window: ScoreWindow;
  readonly #watchAbort = new AbortController();
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #models?: ModelStore;
  #gate?: ModelGate;
  #current: LoadedModel | null = null;
  #next: LoadedModel | null = null;
  #ledger?: VerdictLedger;
  #ackWait?: AckWaitTuner;
  #alarm?: BacklogAlarm;
  #engines?: ScoringEngines;
  #queue: JsMsg[] = [];
  /** Messages pulled and not yet acked or nak'ed: they get progress acks. */
  readonly #inHand: JsMsg[] = [];
  #stopProgress?: () => void;
  readonly #wakeup = new Wakeup();
  /** Wakes the puller when the queue has room. */
  readonly #room = new Wakeup();
  readonly #failing = failingImageIds();
  readonly #delayMs = scoringDelayMs();
  #puller?: Promise<void>;
  #loop?: Promise<void>;
  #watcher?: Promise<void>;
  #stopping = false;
  #imagesIn = 0;
  #verdicts = { scored: 0, warming_up: 0, rejected: 0, anomalous: 0 };
  #swaps = 0;
  #retried = 0;
  #alreadyAnswered = 0;
  #failed = 0;

  /** Creates the stage; {@link start} connects it. */
  constructor(options: StageOptions) {
    this.#nc = options.connection;
    this.#config = options.config;
    this.#log = options.log;
    this.#window = new ScoreWindow(options.config.scorer.threshold);
  }

  /** Starts watching model versions and consuming decoded images. */
  async start(): Promise<void> {
    const { line, streams, model, heatmaps } = this.#config;
    await useBackend(model.backend);
    this.#engines = await prepareScoringEngines(this.#config.inference, model, this.#log.warn);
    this.#log.info(`scoring with ${this.#engines.description}`);
    this.#jsm = await this.#nc.jetstreamManager();
    this.#js = this.#nc.jetstream();
    await ensureLineStreams(this.#jsm, line, streams, {
      warn: (m) => this.#log.warn(m),
      heatmaps: heatmaps.enabled ? heatmaps : undefined,
    });
    const stream = await ensureDurableConsumer(
      this.#jsm,
      line,
      SCORER_CONSUMER,
      this.#config.delivery,
    );
    this.#models = await ModelStore.open(this.#js, line, streams.replicas);
    this.#ledger = await VerdictLedger.open(this.#js, line, streams);
    this.#gate = await ModelGate.open({
      connection: this.#nc,
      config: this.#config,
      models: this.#models,
      stage: "scorer",
      log: this.#log,
    });
    // Load the current version before the first batch, so a restart does not answer
    // `warming_up` for a line whose model exists.
    const current = await this.#models.current();
    if (current) await this.#load(current);
    this.#watcher = this.#watch();
    const consumer = await this.#js.consumers.get(stream, SCORER_CONSUMER);
    const info = await consumer.info();
    this.#ackWait = new AckWaitTuner(
      this.#jsm,
      stream,
      SCORER_CONSUMER,
      this.#config.delivery,
      (info.config.ack_wait ?? 30e9) / 1e6,
    );
    this.#alarm = new BacklogAlarm(
      this.#nc,
      this.#jsm,
      line,
      stream,
      SCORER_CONSUMER,
      (m) => this.#log.warn(m),
    );
    this.#alarm.start();
    this.#restartProgress();
    this.#puller = this.#pull(consumer);
    this.#loop = this.#run();
  }

  /** (Re)starts the progress acks of messages in hand at a third of the current ack_wait. */
  #restartProgress(): void {
    this.#stopProgress?.();
    this.#stopProgress = keepWorking(this.#inHand, progressIntervalMs(this.#ackWait!.ackWaitMs));
  }

  /**
   * Pulls at most one batch beyond the one being scored: a scorer holds no more than it can
   * score soon, so several scorers share a backlog and nothing waits out its ack_wait here.
   */
  async #pull(consumer: Consumer): Promise<void> {
    const { batchSize } = this.#config.scorer;
    while (!this.#stopping) {
      const room = batchSize - this.#queue.length;
      if (room <= 0) {
        await this.#room.wait(1_000);
        continue;
      }
      try {
        const messages = await consumer.fetch({ max_messages: room, expires: FETCH_EXPIRES_MS });
        for await (const message of messages) {
          if (this.#stopping) {
            message.nak(); // back to the stream at once for another scorer
            continue;
          }
          this.#inHand.push(message);
          this.#queue.push(message);
          this.#wakeup.notify();
        }
      } catch (error) {
        if (this.#stopping) break;
        this.#log.warn(`pulling decoded images failed: ${errorText(error)}; retrying`);
        await new Promise((resolve) => setTimeout(resolve, PULL_RETRY_MS));
      }
    }
  }

  /** Removes `message` from the progress-acked set (after its ack or nak). */
  #release(message: JsMsg): void {
    const i = this.#inHand.indexOf(message);
    if (i >= 0) this.#inHand.splice(i, 1);
  }

  /** Follows the model pointer; a watch that ends (broker restart) is started again. */
  async #watch(): Promise<void> {
    let delayMs = 500;
    while (!this.#stopping) {
      try {
        for await (const record of this.#models!.watch(this.#watchAbort.signal)) {
          delayMs = 500;
          await this.#load(record);
        }
        if (!this.#stopping) this.#log.warn("model watch ended; watching again");
      } catch (error) {
        if (!this.#stopping) this.#log.warn(`model watch failed: ${errorText(error)}; retrying`);
      }
      if (this.#stopping) break;
      await new Promise((resolve) => setTimeout(resolve, delayMs));
      delayMs = Math.min(10_000, delayMs * 2);
    }
  }

  /** Loads `record` as the next model unless it is not newer than what is loaded or queued. */
  async #load(record: ModelVersionRecord): Promise<void> {
    const newest = Math.max(this.#current?.version ?? 0, this.#next?.version ?? 0);
    if (record.version <= newest) return;
    try {
      // Untrusted input: a refused version leaves the current one serving.
      const detector = await this.#gate!.admit(record, this.#current?.version ?? null);
      if (!detector) return;
      // The session is built here, in the background, while the current version scores.
      let engine: ScoringEngine;
      try {
        engine = await this.#engines!.build(detector, `${record.line} v${record.version}`);
      } catch (error) {
        detector.dispose();
        throw error;
      }
      const queued = this.#next;
      this.#next = { version: record.version, publishedAt: record.publishedAt, detector, engine };
      await release(queued);
      this.#wakeup.notify();
    } catch (error) {
      this.#log.warn(`cannot load model v${record.version}: ${errorText(error)}`);
    }
  }

  /** Makes the queued version current (between batches). */
  async #swapIfReady(): Promise<void> {
    if (!this.#next) return;
    const previous = this.#current;
    this.#current = this.#next;
    this.#next = null;
    await release(previous);
    this.#swaps++;
    const { version, publishedAt } = this.#current;
    metrics().modelHeld(this.#config.line, this.name, version, publishedAt);
    this.#log.info(`now scoring with model v${this.#current.version}`);
  }

  /**
   * Scores what has arrived, up to a batch at a time: a batch never waits for more images
   * than are already here, and while one batch is scored the next one accumulates.
   */
  async #run(): Promise<void> {
    const { batchSize } = this.#config.scorer;
    while (!this.#stopping) {
      // Swapping here, between batches (or while idle), never holds up an image.
      await this.#swapIfReady();
      if (this.#queue.length === 0) {
        await this.#wakeup.wait(1_000);
        continue;
      }
      const batch = this.#queue.splice(0, batchSize);
      this.#room.notify();
      await this.#process(batch);
    }
  }

  async #process(pulled: JsMsg[]): Promise<void> {
    this.#imagesIn += pulled.length;
    metrics().imagesIn.inc({ line: this.#config.line, stage: this.name }, pulled.length);
    // A redelivery whose verdict is already recorded (its ack was lost) is done.
    const messages: JsMsg[] = [];
    await Promise.all(pulled.map(async (message) => {
      if (message.info.redelivered && await this.#answered(message)) {
        this.#alreadyAnswered++;
        this.#settle(message, "ack");
      } else {
        messages.push(message);
      }
    }));
    if (messages.length === 0) return;
    messages.sort((a, b) => a.seq - b.seq);
    for (const message of messages) message.working(); // the step below blocks this thread
    const started = performance.now();
    if (this.#delayMs > 0) blockThread(this.#delayMs);
    let judged: (Judged | null)[];
    try {
      judged = judgedEach(await this.#judge(messages));
    } catch (error) {
      this.#log.warn(`scoring a batch failed: ${errorText(error)}; scoring its images one by one`);
      judged = [];
      for (const message of messages) judged.push(await this.#judgeAlone(message));
    }
    const raised = this.#ackWait!.record(performance.now() - started);
    if (raised !== null) {
      this.#log.info(`ack_wait raised to ${(raised / 1000).toFixed(1)} s (slowest batch)`);
      this.#restartProgress();
    }
    await Promise.all(judged.map((result, i) => this.#store(messages[i], result)));
  }

  /** One message scored alone; null when scoring it fails before its last delivery. */
  async #judgeAlone(message: JsMsg): Promise<Judged | null> {
    try {
      return judgedEach(await this.#judge([message]))[0];
    } catch (error) {
      const why = errorText(error);
      if (!isLastDelivery(message, this.#config.delivery.maxDeliver)) {
        this.#log.warn(
          `decoded seq ${message.seq}: scoring failed (delivery ${message.info.deliveryCount}): ${why}`,
        );
        return null;
      }
      this.#log.warn(`decoded seq ${message.seq}: scoring failed on the last delivery: ${why}`);
      return { verdict: this.#failedVerdict(message, why), heatmap: null, receivedAt: null };
    }
  }

  /** The `processing_failed` rejection of a message every delivery of which failed. */
  #failedVerdict(message: JsMsg, why: string): Verdict {
    const identity = this.#identityOf(message);
    return rejectedVerdict(
      {
        line: this.#config.line,
        imageSeq: identity.imageSeq,
        capturedAt: identity.capturedAt,
      },
      identity.imageId,
      "processing_failed",
      `scoring failed on all ${message.info.deliveryCount} deliveries: ${why}`,
    );
  }

  /** Whatever identity the decoded message's headers carry. */
  #identityOf(
    message: JsMsg,
  ): { imageId: string | null; imageSeq: number; capturedAt: string | null } {
    try {
      const image = decodeDecodedImage(message.data, message.headers, this.#config.model.imageSize);
      return { imageId: image.imageId, imageSeq: image.imageSeq, capturedAt: image.capturedAt };
    } catch (error) {
      const identity = error instanceof DecodedImageError ? error.identity : {};
      return {
        imageId: identity.imageId || null,
        imageSeq: identity.imageSeq && identity.imageSeq > 0 ? identity.imageSeq : message.seq,
        capturedAt: identity.capturedAt ?? null,
      };
    }
  }

  /** True when the message's verdict is recorded as published. */
  async #answered(message: JsMsg): Promise<boolean> {
    const identity = this.#identityOf(message);
    const probe = rejectedVerdict(
      { line: this.#config.line, imageSeq: identity.imageSeq, capturedAt: null },
      identity.imageId,
      "processing_failed",
      "",
    );
    return await this.#ledger!.answered(probe).catch(() => false);
  }

  /**
   * Publishes the heatmap, then the verdict once (ledger), and acks; without a verdict, or
   * when it cannot be stored, the message is tried again after a back-off.
   */
  async #store(message: JsMsg, judged: Judged | null): Promise<void> {
    if (!judged) {
      this.#retried++;
      this.#settle(message, "nak");
      return;
    }
    const { verdict, heatmap, receivedAt } = judged;
    try {
      // The heatmap is stored before its verdict: a consumer reading the verdict finds it.
      if (heatmap) {
        const size = this.#config.model.imageSize;
        const png = await encodeHeatmapPng(heatmap.map, size, heatmap.scaleMax);
        await publishHeatmap(this.#js!, { line: verdict.line, ...heatmap, png });
      }
      const outcome = await this.#ledger!.publishOnce(verdict);
      this.#settle(message, "ack");
      if (outcome.kind === "already") {
        this.#alreadyAnswered++;
        return;
      }
      metrics().verdictStored(this.name, verdict, receivedAt);
      this.#verdicts[verdict.status]++;
      if (verdict.status === "scored" && verdict.anomalous) this.#verdicts.anomalous++;
      if (verdict.status === "rejected" && verdict.error.code === "processing_failed") {
        this.#failed++;
      }
    } catch (error) {
      this.#retried++;
      this.#log.warn(`verdict of decoded seq ${message.seq} not stored: ${errorText(error)}`);
      if (!isLastDelivery(message, this.#config.delivery.maxDeliver) || this.#stopping) {
        this.#settle(message, "nak");
        return;
      }
      // JetStream will not deliver it again: keep trying here (it stays progress-acked).
      await new Promise((resolve) => setTimeout(resolve, retryDelayMs(1)));
      await this.#store(message, judged);
    }
  }

  /** Acks, or naks with a back-off growing with the delivery count; stops its progress acks. */
  #settle(message: JsMsg, how: "ack" | "nak"): void {
    this.#release(message);
    if (how === "ack") message.ack();
    else message.nak(retryDelayMs(message.info.deliveryCount));
  }

  /** One verdict per message, in order, and the heatmap of each scored one. */
  async #judge(messages: JsMsg[]): Promise<{
    verdicts: Verdict[];
    heatmaps: (PendingHeatmap | null)[];
    receivedAt: (Date | null)[];
  }> {
    const size = this.#config.model.imageSize;
    const line = this.#config.line;
    const verdicts: (Verdict | null)[] = [];
    const readable: {
      index: number;
      imageId: string;
      context: VerdictContext;
      pixels: Float32Array;
      original: { width: number; height: number } | null;
      heldOut: boolean;
    }[] = [];
    const heatmaps: (PendingHeatmap | null)[] = messages.map(() => null);
    const receivedAt: (Date | null)[] = messages.map(() => null);
    const publishHeatmaps = this.#config.heatmaps.enabled;
    messages.forEach((message, index) => {
      try {
        const image = decodeDecodedImage(message.data, message.headers, size);
        receivedAt[index] = image.receivedAt ?? null;
        const context = { line, imageSeq: image.imageSeq, capturedAt: image.capturedAt };
        if (this.#failing.has(image.imageId)) throw new InjectedFault(image.imageId);
        readable.push({
          index,
          imageId: image.imageId,
          context,
          pixels: image.pixels,
          original: image.original,
          heldOut: image.heldOut ?? false,
        });
        verdicts.push(null);
      } catch (error) {
        if (!(error instanceof DecodedImageError)) throw error;
        const { imageId, imageSeq, capturedAt } = error.identity;
        verdicts.push(rejectedVerdict(
          {
            line,
            imageSeq: imageSeq && imageSeq > 0 ? imageSeq : message.seq,
            capturedAt: capturedAt ?? null,
          },
          imageId || null,
          "undecodable",
          error.message,
        ));
      }
    });
    const model = this.#current;
    if (readable.length > 0 && model) {
      const reports = await model.engine.scoreWithMaps(readable.map((r) => r.pixels));
      // The threshold learns the line's own stream: held-out parts (reference, audit or test
      // parts, `Image-Train: no`) are judged against it but do not move it.
      this.#window.add(
        reports.filter((_, i) => !readable[i].heldOut).map((r) => r.score).filter(Number.isFinite),
      );
      const threshold = this.#window.threshold();
      readable.forEach((r, i) => {
        const { score, stScore, aeScore } = reports[i];
        // No verdict ever carries a non-finite number: such an image is not scorable.
        if (![score, stScore, aeScore, threshold].every(Number.isFinite)) {
          verdicts[r.index] = rejectedVerdict(
            r.context,
            r.imageId,
            "not_scorable",
            `model v${model.version} gave a non-finite score for this image`,
          );
          return;
        }
        const findings = localise({
          line,
          imageId: r.imageId,
          map: reports[i].map,
          size,
          score: reports[i].score,
          threshold,
          original: r.original,
          publishHeatmap: publishHeatmaps,
        });
        verdicts[r.index] = scoredVerdict(
          r.context,
          r.imageId,
          {
            score: reports[i].score,
            stScore: reports[i].stScore,
            aeScore: reports[i].aeScore,
            threshold,
            modelVersion: model.version,
            modelStep: model.detector.step,
          },
          new Date(),
          findings.localisation,
        );
        if (publishHeatmaps) {
          heatmaps[r.index] = {
            imageId: r.imageId,
            imageSeq: r.context.imageSeq,
            modelVersion: model.version,
            map: reports[i].map,
            scaleMax: findings.scaleMax,
          };
        }
      });
    } else {
      for (const r of readable) verdicts[r.index] = warmingUpVerdict(r.context, r.imageId);
    }
    return { verdicts: verdicts as Verdict[], heatmaps, receivedAt };
  }

  /** Images in, verdicts by status, model version in use, backlog of the shared consumer. */
  async status(): Promise<StageStatus> {
    const out = this.#verdicts.scored + this.#verdicts.warming_up + this.#verdicts.rejected;
    return {
      stage: this.name,
      line: this.#config.line,
      imagesIn: this.#imagesIn,
      imagesOut: out,
      backlog: this.#jsm
        ? await consumerBacklog(this.#jsm, this.#config.line, SCORER_CONSUMER).catch(() => null)
        : null,
      step: null,
      loss: null,
      modelVersion: this.#current?.version ?? null,
      warm: this.#current !== null,
      paused: false,
      details: {
        scored: this.#verdicts.scored,
        warmingUp: this.#verdicts.warming_up,
        rejected: this.#verdicts.rejected,
        anomalous: this.#verdicts.anomalous,
        threshold: this.#window.threshold(),
        windowScores: this.#window.size,
        swaps: this.#swaps,
        retried: this.#retried,
        alreadyAnswered: this.#alreadyAnswered,
        processingFailed: this.#failed,
        backlogAtRisk: this.#alarm?.counts.atRisk ?? 0,
        discardedUnprocessed: this.#alarm?.counts.discardedUnprocessed ?? 0,
        ackWaitMs: this.#ackWait?.ackWaitMs ?? null,
        slowestBatchMs: this.#ackWait?.slowestStepMs ?? null,
        queuedVersion: this.#next?.version ?? null,
        engine: this.#engines?.description ?? null,
        ...(this.#gate?.statusDetails() ?? { refusedVersions: 0, lastRefusal: null }),
        tensors: liveTensors(),
      },
    };
  }

  /** Finishes the batch in hand, hands prefetched messages back, frees the models. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeup.notify();
    this.#watchAbort.abort();
    this.#alarm?.stop();
    this.#room.notify();
    await this.#puller;
    await this.#loop;
    this.#stopProgress?.();
    for (const message of this.#queue.splice(0)) message.nak();
    await this.#watcher;
    await this.#nc.flush();
    await release(this.#current);
    await release(this.#next);
    this.#current = this.#next = null;
  }
}

/** Splits {@link ScorerStage}'s batch result into one {@link Judged} per message. */
function judgedEach(
  batch: { verdicts: Verdict[]; heatmaps: (PendingHeatmap | null)[]; receivedAt: (Date | null)[] },
): Judged[] {
  return batch.verdicts.map((verdict, i) => ({
    verdict,
    heatmap: batch.heatmaps[i],
    receivedAt: batch.receivedAt[i],
  }));
}

/** Frees a model version's session and detector. */
async function release(model: LoadedModel | null): Promise<void> {
  if (!model) return;
  await model.engine.dispose();
  model.detector.dispose();
}
