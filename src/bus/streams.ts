/**
 * JetStream streams and durable consumers of one line. Every stage creates what is missing at
 * start-up, so any stage can be started first and cameras lose nothing while a stage restarts;
 * only the line's owner of stream limits (the ingest stage, `ensureLineStreams(…, { owner })`)
 * changes the limits of existing streams, so a scorer or trainer started elsewhere with other
 * limits cannot cut the line's backlog.
 *
 * Discard policy: every stream discards its oldest messages when full (`DiscardPolicy.Old`).
 * The streams are the line's history (replay, `simulate`'s pass numbering, the trainer's
 * refill), so a policy that refuses new messages when full would stop a healthy line once its
 * history reaches the limits. Losing unprocessed work is made loud instead: the stages report
 * backlog near the limits and images discarded before they were processed
 * (`backlog_alarm.ts`). A plant that sizes its limits for `maxAgeSeconds` of the line may set
 * `streams.imageDiscard: "new"`: the image stream then refuses images when full, and cameras
 * publishing with JetStream get the error.
 *
 * @module
 */
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  DiscardPolicy,
  type JetStreamManager,
  nanos,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
} from "nats";
import type { DeliveryConfig, HeatmapsConfig, StreamLimits } from "../config/schema.ts";
import {
  decodedSubject,
  heatmapSubjects,
  imageSubject,
  INGEST_CONSUMER,
  SCORER_CONSUMER,
  streamNames,
  TRAINER_CONSUMER,
  trainingSubject,
  verdictSubject,
} from "./subjects.ts";

/**
 * The stream configurations of `line`: images, decoded images, verdicts and training events
 * with the same retention limits, and (when `heatmaps` is given) the heatmap stream with its
 * own age and byte limits and one message per Image-Id subject.
 */
export function lineStreamConfigs(
  line: string,
  limits: StreamLimits,
  heatmaps?: HeatmapsConfig,
): StreamConfig[] {
  const names = streamNames(line);
  const common = {
    retention: RetentionPolicy.Limits,
    storage: StorageType.File,
    discard: DiscardPolicy.Old,
    max_age: nanos(limits.maxAgeSeconds * 1000),
    max_bytes: limits.maxBytes,
    max_msgs: limits.maxMsgs,
    duplicate_window: nanos(limits.duplicateWindowSeconds * 1000),
    num_replicas: limits.replicas,
  };
  const stream = (name: string, subject: string, description: string) =>
    ({ ...common, name, subjects: [subject], description }) as StreamConfig;
  return [
    {
      ...stream(names.images, imageSubject(line), `camera images of line ${line}`),
      discard: limits.imageDiscard === "new" ? DiscardPolicy.New : DiscardPolicy.Old,
    },
    stream(names.decoded, decodedSubject(line), `decoded images of line ${line} (internal)`),
    stream(names.verdicts, verdictSubject(line), `verdicts of line ${line}`),
    stream(names.training, trainingSubject(line), `training events of line ${line}`),
    ...(heatmaps
      ? [{
        ...stream(names.heatmaps, heatmapSubjects(line), `anomaly heatmaps of line ${line}`),
        max_age: nanos(heatmaps.maxAgeSeconds * 1000),
        max_bytes: heatmaps.maxBytes,
        max_msgs_per_subject: 1,
      }]
      : []),
  ];
}

/** Options of {@link ensureLineStreams}. */
export interface EnsureStreamsOptions {
  /** The owner of the line's stream limits updates existing streams to `limits`. */
  owner?: boolean;
  /** Told about existing streams whose limits differ from `limits` (non-owners). */
  warn?: (message: string) => void;
  /** Also the heatmap stream, with these limits (when heatmaps are on). */
  heatmaps?: HeatmapsConfig;
}

/**
 * Creates the line's missing streams; the owner also updates existing ones to `limits`,
 * others only report a difference.
 */
export async function ensureLineStreams(
  jsm: JetStreamManager,
  line: string,
  limits: StreamLimits,
  options: EnsureStreamsOptions = {},
): Promise<void> {
  for (const config of lineStreamConfigs(line, limits, options.heatmaps)) {
    const existing = await streamConfig(jsm, config.name);
    if (!existing) {
      await jsm.streams.add(config);
      continue;
    }
    const differs = LIMIT_FIELDS.filter((field) => existing[field] !== config[field]);
    if (differs.length === 0) continue;
    if (options.owner) {
      await jsm.streams.update(config.name, config);
    } else {
      options.warn?.(
        `stream ${config.name} keeps its limits (${
          differs.map((f) => `${f} ${existing[f]}, configured ${config[f]}`).join("; ")
        }): only the line's ingest stage changes them`,
      );
    }
  }
}

/** The stream settings the owner keeps in line with the configuration. */
const LIMIT_FIELDS = [
  "max_age",
  "max_bytes",
  "max_msgs",
  "duplicate_window",
  "discard",
  "num_replicas",
] as const satisfies readonly (keyof StreamConfig)[];

async function streamConfig(jsm: JetStreamManager, name: string): Promise<StreamConfig | null> {
  try {
    return (await jsm.streams.info(name)).config;
  } catch (error) {
    if (isNotFound(error)) return null;
    throw error;
  }
}

/** Which durable consumer of a line. */
export type DurableName = typeof INGEST_CONSUMER | typeof SCORER_CONSUMER | typeof TRAINER_CONSUMER;

/** Stream and configuration of one of the line's durable consumers. */
export function durableConsumerConfig(
  line: string,
  durable: DurableName,
  delivery?: DeliveryConfig,
): { stream: string; config: Partial<ConsumerConfig> } {
  const ackWaitMs = (delivery?.minAckWaitSeconds ?? 30) * 1000;
  // Unlimited without a delivery section (status readers); 8 is the configured default.
  const maxDeliver = delivery?.maxDeliver ?? -1;
  const names = streamNames(line);
  switch (durable) {
    case INGEST_CONSUMER:
      // Explicit acks: an image is acked only after its decoded copy or its rejection is stored.
      return {
        stream: names.images,
        config: {
          durable_name: durable,
          filter_subject: imageSubject(line),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(ackWaitMs),
          max_deliver: maxDeliver,
          max_ack_pending: 256,
        },
      };
    case SCORER_CONSUMER:
      // Shared by every scorer process of the line: each message goes to one of them. Scorers
      // pull in bounded batches, so max_ack_pending only caps the line's scorers together.
      return {
        stream: names.decoded,
        config: {
          durable_name: durable,
          filter_subject: decodedSubject(line),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(ackWaitMs),
          max_deliver: maxDeliver,
          max_ack_pending: 1024,
        },
      };
    case TRAINER_CONSUMER:
      // No acks: the trainer samples the line into a bounded buffer; what it misses is fine.
      return {
        stream: names.decoded,
        config: {
          durable_name: durable,
          filter_subject: decodedSubject(line),
          ack_policy: AckPolicy.None,
          deliver_policy: DeliverPolicy.All,
        },
      };
  }
}

/**
 * Creates (or updates) one durable consumer and returns its stream name. An existing
 * consumer's ack_wait is never lowered: another process may have raised it to its measured
 * step time (`delivery.ts`).
 */
export async function ensureDurableConsumer(
  jsm: JetStreamManager,
  line: string,
  durable: DurableName,
  delivery?: DeliveryConfig,
): Promise<string> {
  const { stream, config } = durableConsumerConfig(line, durable, delivery);
  try {
    const existing = await jsm.consumers.info(stream, durable);
    if (config.ack_policy === AckPolicy.Explicit) {
      // Keep an existing consumer (and its position); only tunables can change.
      await jsm.consumers.update(stream, durable, {
        ack_wait: Math.max(existing.config.ack_wait ?? 0, config.ack_wait ?? 0),
        max_ack_pending: config.max_ack_pending,
        max_deliver: config.max_deliver,
      });
    }
  } catch (error) {
    if (!isNotFound(error)) throw error;
    await jsm.consumers.add(stream, config);
  }
  return stream;
}

/** Messages not yet delivered plus delivered but unacknowledged, for a durable consumer. */
export async function consumerBacklog(
  jsm: JetStreamManager,
  line: string,
  durable: DurableName,
): Promise<number> {
  const { stream } = durableConsumerConfig(line, durable);
  const info = await jsm.consumers.info(stream, durable);
  return info.num_pending + info.num_ack_pending;
}

/** True for JetStream "stream/consumer not found" API errors. */
export function isNotFound(error: unknown): boolean {
  const e = error as { code?: string | number; api_error?: { code?: number } };
  return e?.api_error?.code === 404 || e?.code === 404 || e?.code === "404";
}
