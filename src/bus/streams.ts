/**
 * JetStream streams and durable consumers of one line, created or updated idempotently by
 * every stage at start-up, so any stage can be started first and cameras lose nothing while a
 * stage restarts.
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
import type { HeatmapsConfig, StreamLimits } from "../config/schema.ts";
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
    num_replicas: 1,
  };
  const stream = (name: string, subject: string, description: string) =>
    ({ ...common, name, subjects: [subject], description }) as StreamConfig;
  return [
    stream(names.images, imageSubject(line), `camera images of line ${line}`),
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

/** Creates the line's streams, or updates them to the configured limits. */
export async function ensureLineStreams(
  jsm: JetStreamManager,
  line: string,
  limits: StreamLimits,
  heatmaps?: HeatmapsConfig,
): Promise<void> {
  for (const config of lineStreamConfigs(line, limits, heatmaps)) {
    if (await streamExists(jsm, config.name)) {
      await jsm.streams.update(config.name, config);
    } else {
      await jsm.streams.add(config);
    }
  }
}

async function streamExists(jsm: JetStreamManager, name: string): Promise<boolean> {
  try {
    await jsm.streams.info(name);
    return true;
  } catch (error) {
    if (isNotFound(error)) return false;
    throw error;
  }
}

/** Which durable consumer of a line. */
export type DurableName = typeof INGEST_CONSUMER | typeof SCORER_CONSUMER | typeof TRAINER_CONSUMER;

/** Stream and configuration of one of the line's durable consumers. */
export function durableConsumerConfig(
  line: string,
  durable: DurableName,
): { stream: string; config: Partial<ConsumerConfig> } {
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
          ack_wait: nanos(30_000),
          max_ack_pending: 256,
        },
      };
    case SCORER_CONSUMER:
      // Shared by every scorer process of the line: each message goes to one of them.
      return {
        stream: names.decoded,
        config: {
          durable_name: durable,
          filter_subject: decodedSubject(line),
          ack_policy: AckPolicy.Explicit,
          deliver_policy: DeliverPolicy.All,
          ack_wait: nanos(60_000),
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

/** Creates (or updates) one durable consumer and returns its stream name. */
export async function ensureDurableConsumer(
  jsm: JetStreamManager,
  line: string,
  durable: DurableName,
): Promise<string> {
  const { stream, config } = durableConsumerConfig(line, durable);
  try {
    await jsm.consumers.info(stream, durable);
    if (config.ack_policy === AckPolicy.Explicit) {
      // Keep an existing consumer (and its position); only tunables can change.
      await jsm.consumers.update(stream, durable, {
        ack_wait: config.ack_wait,
        max_ack_pending: config.max_ack_pending,
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
