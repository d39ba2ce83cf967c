/**
 * Scorer: takes decoded images from the line's durable `scorer` consumer (several scorer
 * processes pulling from it split the line, each message going to one of them), scores them
 * in batches with the current model version and publishes one verdict per image. Before the
 * first version exists verdicts are `warming_up`.
 *
 * Hot swap: a watcher loads each new version and builds its scoring session (ONNX Runtime by
 * default, see `src/model/engine.ts`) in the background; the swap happens between two
 * batches, so no image is dropped and none waits longer than the batch in hand. Messages are
 * acknowledged only after their verdicts are stored; a redelivered message's verdict carries
 * the same `Nats-Msg-Id` and JetStream drops the copy.
 *
 * @module
 */
import type {
  ConsumerMessages,
  JetStreamClient,
  JetStreamManager,
  JsMsg,
  NatsConnection,
} from "nats";
import type { PipelineConfig } from "../config/schema.ts";
import { decodeDecodedImage, DecodedImageError } from "../bus/decoded_image.ts";
import { ModelStore, type ModelVersionRecord } from "../bus/model_store.ts";
import { publishVerdict } from "../bus/publishers.ts";
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

/** Delay before a batch whose verdicts could not be stored is redelivered. */
const RETRY_DELAY_MS = 2_000;

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
  #engines?: ScoringEngines;
  #messages?: ConsumerMessages;
  #queue: JsMsg[] = [];
  readonly #wakeup = new Wakeup();
  #loop?: Promise<void>;
  #watcher?: Promise<void>;
  #stopping = false;
  #imagesIn = 0;
  #verdicts = { scored: 0, warming_up: 0, rejected: 0, anomalous: 0 };
  #swaps = 0;
  #retried = 0;

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
    await ensureLineStreams(this.#jsm, line, streams, heatmaps.enabled ? heatmaps : undefined);
    const stream = await ensureDurableConsumer(this.#jsm, line, SCORER_CONSUMER);
    this.#models = await ModelStore.open(this.#js, line);
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
    // Prefetch two batches: enough to keep busy, little enough to share the line with others.
    this.#messages = await consumer.consume({
      max_messages: 2 * this.#config.scorer.batchSize,
      callback: (message) => {
        if (this.#stopping) {
          message.nak(); // back to the stream at once for another scorer
          return;
        }
        this.#queue.push(message);
        this.#wakeup.notify();
      },
    });
    this.#loop = this.#run();
  }

  async #watch(): Promise<void> {
    try {
      for await (const record of this.#models!.watch(this.#watchAbort.signal)) {
        await this.#load(record);
      }
    } catch (error) {
      if (!this.#stopping) this.#log.warn(`model watch ended: ${errorText(error)}`);
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
      await this.#process(this.#queue.splice(0, batchSize));
    }
  }

  async #process(messages: JsMsg[]): Promise<void> {
    this.#imagesIn += messages.length;
    metrics().imagesIn.inc({ line: this.#config.line, stage: this.name }, messages.length);
    let verdicts: Verdict[];
    let heatmaps: (PendingHeatmap | null)[];
    let receivedAt: (Date | null)[];
    try {
      ({ verdicts, heatmaps, receivedAt } = await this.#judge(messages));
    } catch (error) {
      this.#retried += messages.length;
      this.#log.warn(`scoring failed: ${errorText(error)}; retrying the batch`);
      for (const message of messages) message.nak(RETRY_DELAY_MS);
      return;
    }
    // The heatmap is stored before its verdict: a consumer reading the verdict finds it.
    const stored = await Promise.allSettled(verdicts.map(async (v, i) => {
      const heatmap = heatmaps[i];
      if (heatmap) {
        const size = this.#config.model.imageSize;
        const png = await encodeHeatmapPng(heatmap.map, size, heatmap.scaleMax);
        await publishHeatmap(this.#js!, { line: v.line, ...heatmap, png });
      }
      return await publishVerdict(this.#js!, v);
    }));
    stored.forEach((result, i) => {
      if (result.status === "fulfilled") {
        messages[i].ack();
        const verdict = verdicts[i];
        metrics().verdictStored(this.name, verdict, receivedAt[i]);
        this.#verdicts[verdict.status]++;
        if (verdict.status === "scored" && verdict.anomalous) this.#verdicts.anomalous++;
      } else {
        this.#retried++;
        this.#log.warn(`verdict of seq ${messages[i].seq} not stored: ${result.reason}`);
        messages[i].nak(RETRY_DELAY_MS);
      }
    });
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
    }[] = [];
    const heatmaps: (PendingHeatmap | null)[] = messages.map(() => null);
    const receivedAt: (Date | null)[] = messages.map(() => null);
    const publishHeatmaps = this.#config.heatmaps.enabled;
    messages.forEach((message, index) => {
      try {
        const image = decodeDecodedImage(message.data, message.headers, size);
        receivedAt[index] = image.receivedAt ?? null;
        const context = { line, imageSeq: image.imageSeq, capturedAt: image.capturedAt };
        readable.push({
          index,
          imageId: image.imageId,
          context,
          pixels: image.pixels,
          original: image.original,
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
      this.#window.add(reports.map((r) => r.score).filter(Number.isFinite));
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
    await this.#messages?.close();
    await this.#loop;
    for (const message of this.#queue.splice(0)) message.nak();
    await this.#watcher;
    await this.#nc.flush();
    await release(this.#current);
    await release(this.#next);
    this.#current = this.#next = null;
  }
}

/** Frees a model version's session and detector. */
async function release(model: LoadedModel | null): Promise<void> {
  if (!model) return;
  await model.engine.dispose();
  model.detector.dispose();
}
