/**
 * Ingest: takes camera images from the line's image stream, checks the Image-Id, decodes,
 * validates and resizes with `decodeImage`, and republishes the result on the internal
 * decoded stream. A bad message gets exactly one `rejected` verdict and nothing else happens
 * to it; the stage carries on.
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
import { encodeDecodedImage } from "../bus/decoded_image.ts";
import { ImageIdRegistry, MAX_IMAGE_ID_BYTES } from "../bus/image_ids.ts";
import { publishVerdict } from "../bus/publishers.ts";
import { consumerBacklog, ensureDurableConsumer, ensureLineStreams } from "../bus/streams.ts";
import {
  CAPTURED_AT_HEADER,
  decodedMsgId,
  decodedSubject,
  IMAGE_ID_HEADER,
  INGEST_CONSUMER,
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

/** Seconds before a message that failed for a transient reason (NATS error) is redelivered. */
const RETRY_DELAY_MS = 2_000;

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
  #messages?: ConsumerMessages;
  #loop?: Promise<void>;
  #stopping = false;
  #imagesIn = 0;
  #accepted = 0;
  #rejected = 0;
  #retried = 0;
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
    this.#jsm = await this.#nc.jetstreamManager();
    this.#js = this.#nc.jetstream();
    await ensureLineStreams(this.#jsm, line, streams);
    const stream = await ensureDurableConsumer(this.#jsm, line, INGEST_CONSUMER);
    this.#ids = await ImageIdRegistry.open(this.#js, line, streams);
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
        // NATS trouble, not bad input: retry later; verdict/decoded ids make retries idempotent.
        this.#retried++;
        this.#log.warn(`image seq ${message.seq}: ${errorText(error)}; retrying`);
        message.nak(RETRY_DELAY_MS);
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
    await publishVerdict(this.#js!, verdict);
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
        ...Object.fromEntries(
          Object.entries(this.#rejectedByCode).map(([code, n]) => [`rejected_${code}`, n]),
        ),
      },
    };
  }

  /** Finishes the image in hand, hands buffered ones back to the stream, stops consuming. */
  async stop(): Promise<void> {
    this.#stopping = true;
    await this.#messages?.close();
    await this.#loop;
    await this.#nc.flush();
  }
}
