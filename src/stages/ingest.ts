/**
 * Ingest: takes camera images from the line's image stream, checks the Image-Id, decodes,
 * validates and resizes with `decodeImage`, and republishes the result on the internal
 * decoded stream. A bad message gets exactly one `rejected` verdict and nothing else happens
 * to it; the stage carries on. A message whose processing keeps failing for another reason is
 * tried `delivery.maxDeliver` times with a back-off, then gets a `processing_failed` rejection.
 * Every verdict goes through the verdict ledger, so none is published twice.
 *
 * Ingest owns the line's stream limits (see `streams.ts`) and refuses to start when a decoded
 * image of the configured size cannot fit the server's `max_payload`.
 *
 * Why decode once here rather than in the trainer and scorer: rejections and the Image-Id
 * reservation then have a single owner (so a bad image cannot get two verdicts), sharp runs
 * once per image instead of twice, and both consumers read fixed-size RGB they can batch.
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
import { type DecodedImage, decodeImage, ImageRejectedError } from "../image/decode.ts";
import { assertDecodedImageFits, encodeDecodedImage, isHeldOut } from "../bus/decoded_image.ts";
import { BacklogAlarm } from "../bus/backlog_alarm.ts";
import { isLastDelivery, isTransient, retryDelayMs } from "../bus/delivery.ts";
import { ForeignImageIdError, VerdictLedger } from "../bus/verdict_ledger.ts";
import { ImageIdRegistry, MAX_IMAGE_ID_BYTES } from "../bus/image_ids.ts";
import { consumerBacklog, ensureDurableConsumer, ensureLineStreams } from "../bus/streams.ts";
import {
  CAPTURED_AT_HEADER,
  decodedMsgId,
  decodedSubject,
  IMAGE_ID_HEADER,
  INGEST_CONSUMER,
  TRAIN_HEADER,
} from "../bus/subjects.ts";
import { rejectedVerdict, type RejectionCode, type VerdictContext } from "../bus/verdict.ts";
import { validCapturedAt } from "./captured_at.ts";
import { metrics } from "../observe/metrics.ts";
import {
  errorText,
  type PipelineStage,
  type StageLog,
  type StageName,
  type StageOptions,
  type StageStatus,
} from "./stage.ts";

/** Pause between attempts to store the rejection of a message on its last delivery. */
const LAST_ATTEMPT_RETRY_MS = 2_000;

/** The ingest stage of one line. */
export class IngestStage implements PipelineStage {
  /** Stage name. */
  readonly name: StageName = "ingest";
  readonly #nc: NatsConnection;
  readonly #config: PipelineConfig;
  readonly #log: StageLog;
  #js?: JetStreamClient;
  #jsm?: JetStreamManager;
  #ids?: ImageIdRegistry;
  #ledger?: VerdictLedger;
  #alarm?: BacklogAlarm;
  #messages?: ConsumerMessages;
  #loop?: Promise<void>;
  #stopping = false;
  #imagesIn = 0;
  #accepted = 0;
  #rejected = 0;
  #retried = 0;
  #alreadyAnswered = 0;
  readonly #rejectedByCode: Partial<Record<RejectionCode, number>> = {};

  /** Creates the stage; {@link start} connects it. */
  constructor(options: StageOptions) {
    this.#nc = options.connection;
    this.#config = options.config;
    this.#log = options.log;
  }

  /** Ensures streams and the consumer exist, then starts consuming. */
  async start(): Promise<void> {
    const { line, streams } = this.#config;
    const maxPayload = this.#nc.info?.max_payload;
    if (maxPayload) assertDecodedImageFits(this.#config.model.imageSize, maxPayload);
    this.#jsm = await this.#nc.jetstreamManager();
    this.#js = this.#nc.jetstream();
    await ensureLineStreams(this.#jsm, line, streams, {
      owner: true,
      heatmaps: this.#config.heatmaps.enabled ? this.#config.heatmaps : undefined,
    });
    const stream = await ensureDurableConsumer(
      this.#jsm,
      line,
      INGEST_CONSUMER,
      this.#config.delivery,
    );
    this.#ids = await ImageIdRegistry.open(this.#js, line, streams);
    this.#ledger = await VerdictLedger.open(this.#js, line, streams);
    this.#alarm = new BacklogAlarm(
      this.#nc,
      this.#jsm,
      line,
      stream,
      INGEST_CONSUMER,
      (m) => this.#log.warn(m),
    );
    this.#alarm.start();
    const consumer = await this.#js.consumers.get(stream, INGEST_CONSUMER);
    this.#messages = await consumer.consume({ max_messages: 32 });
    this.#loop = this.#run(this.#messages);
  }

  async #run(messages: ConsumerMessages): Promise<void> {
    for await (const message of messages) {
      if (this.#stopping) {
        message.nak(); // back to the stream at once for the next ingest process
        continue;
      }
      this.#imagesIn++;
      metrics().imagesIn.inc({ line: this.#config.line, stage: this.name });
      try {
        await this.#handle(message);
        message.ack();
      } catch (error) {
        // Not bad input (that is rejected above): NATS trouble or a fault. Retry later, the
        // ledger and decoded ids make retries idempotent; the last delivery ends it.
        this.#retried++;
        if (isLastDelivery(message, this.#config.delivery.maxDeliver)) {
          this.#log.warn(`image seq ${message.seq}: ${errorText(error)} on its last delivery`);
          if (isTransient(error)) await this.#retryInProcess(message);
          else await this.#failForGood(message, errorText(error));
        } else {
          this.#log.warn(`image seq ${message.seq}: ${errorText(error)}; retrying`);
          message.nak(retryDelayMs(message.info.deliveryCount));
        }
      }
    }
  }

  /**
   * Handles a message on its last delivery that failed for NATS trouble, again and again in
   * this process (with progress acks) until it succeeds: the broker's fault costs no verdict.
   */
  async #retryInProcess(message: JsMsg): Promise<void> {
    while (!this.#stopping) {
      message.working();
      await new Promise((resolve) => setTimeout(resolve, LAST_ATTEMPT_RETRY_MS));
      try {
        await this.#handle(message);
        message.ack();
        return;
      } catch (error) {
        if (!isTransient(error)) return await this.#failForGood(message, errorText(error));
        this.#log.warn(`image seq ${message.seq}: ${errorText(error)}; retrying in process`);
      }
    }
  }

  /**
   * Publishes the `processing_failed` rejection of a message on its last delivery, retrying
   * (with progress acks) until it is stored: JetStream will not deliver the message again.
   */
  async #failForGood(message: JsMsg, why: string): Promise<void> {
    let imageId = message.headers?.get(IMAGE_ID_HEADER) || null;
    const context: VerdictContext = {
      line: this.#config.line,
      imageSeq: message.seq,
      capturedAt: validCapturedAt(message.headers?.get(CAPTURED_AT_HEADER)),
    };
    const text = `processing failed on all ${message.info.deliveryCount} deliveries: ${why}`;
    while (true) {
      try {
        await this.#reject(context, imageId, "processing_failed", text);
        message.ack();
        return;
      } catch (error) {
        if (error instanceof ForeignImageIdError) {
          imageId = null; // another message owns the id: key the rejection by sequence
          continue;
        }
        if (this.#stopping) return; // not acked: it stays unacknowledged on the consumer
        this.#log.warn(`rejection of image seq ${message.seq} not stored: ${errorText(error)}`);
        message.working();
        await new Promise((resolve) => setTimeout(resolve, LAST_ATTEMPT_RETRY_MS));
      }
    }
  }

  async #handle(message: JsMsg): Promise<void> {
    const line = this.#config.line;
    const imageSeq = message.seq;
    const context: VerdictContext = {
      line,
      imageSeq,
      capturedAt: validCapturedAt(message.headers?.get(CAPTURED_AT_HEADER)),
    };
    const imageId = message.headers?.get(IMAGE_ID_HEADER) ?? "";
    if (imageId === "") {
      return await this.#reject(context, null, "missing_image_id", "no Image-Id header");
    }
    if (new TextEncoder().encode(imageId).length > MAX_IMAGE_ID_BYTES) {
      return await this.#reject(
        context,
        imageId,
        "invalid_image_id",
        `Image-Id is longer than ${MAX_IMAGE_ID_BYTES} bytes`,
      );
    }
    const claim = await this.#ids!.claim(imageId, imageSeq);
    if (claim.kind === "duplicate") {
      return await this.#reject(
        context,
        imageId,
        "duplicate_image_id",
        `Image-Id already used by image message ${claim.firstSeq}`,
      );
    }
    let decoded: DecodedImage;
    try {
      decoded = await decodeImage(
        message.data,
        this.#config.model.imageSize,
        this.#config.images,
      );
    } catch (error) {
      if (error instanceof ImageRejectedError) {
        return await this.#reject(context, imageId, error.code, error.message);
      }
      throw error;
    }
    const { payload, headers } = encodeDecodedImage({
      imageId,
      imageSeq,
      capturedAt: context.capturedAt,
      size: this.#config.model.imageSize,
      pixels: decoded.pixels,
      // Downstream maps the anomaly region back onto the camera's pixels.
      original: { width: decoded.width, height: decoded.height },
      heldOut: isHeldOut(message.headers?.get(TRAIN_HEADER)),
    }, new Date());
    await this.#js!.publish(decodedSubject(line), payload, {
      headers,
      msgID: decodedMsgId(imageId),
    });
    this.#accepted++;
    metrics().imagesOut.inc({ line, stage: this.name, status: "decoded" });
  }

  async #reject(
    context: VerdictContext,
    imageId: string | null,
    code: RejectionCode,
    message: string,
  ): Promise<void> {
    const verdict = rejectedVerdict(context, imageId, code, message);
    const outcome = await this.#ledger!.publishOnce(verdict);
    if (outcome.kind === "already") {
      this.#alreadyAnswered++;
      return;
    }
    metrics().verdictStored(this.name, verdict, null);
    this.#rejected++;
    this.#rejectedByCode[code] = (this.#rejectedByCode[code] ?? 0) + 1;
  }

  /** Images in, decoded and rejected counts, and the backlog of the image stream. */
  async status(): Promise<StageStatus> {
    return {
      stage: this.name,
      line: this.#config.line,
      imagesIn: this.#imagesIn,
      imagesOut: this.#accepted + this.#rejected,
      backlog: this.#jsm
        ? await consumerBacklog(this.#jsm, this.#config.line, INGEST_CONSUMER).catch(() => null)
        : null,
      step: null,
      loss: null,
      modelVersion: null,
      warm: false,
      paused: false,
      details: {
        accepted: this.#accepted,
        rejected: this.#rejected,
        retried: this.#retried,
        alreadyAnswered: this.#alreadyAnswered,
        backlogAtRisk: this.#alarm?.counts.atRisk ?? 0,
        discardedUnprocessed: this.#alarm?.counts.discardedUnprocessed ?? 0,
        ...Object.fromEntries(
          Object.entries(this.#rejectedByCode).map(([code, n]) => [`rejected_${code}`, n]),
        ),
      },
    };
  }

  /** Finishes the image in hand, hands buffered ones back to the stream, stops consuming. */
  async stop(): Promise<void> {
    this.#stopping = true;
    this.#alarm?.stop();
    await this.#messages?.close();
    await this.#loop;
    await this.#nc.flush();
  }
}
