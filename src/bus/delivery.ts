/**
 * Redelivery discipline of the stages that acknowledge work (ingest, scorer): progress acks
 * while a message is in hand, back-off between failed attempts, the last attempt of a poison
 * message, and an `ack_wait` that follows measured step times.
 *
 * Why: JetStream redelivers a message whose ack has not arrived within `ack_wait`. A stage that
 * holds a message longer (a slow batch, a long hot swap) would have it scored twice; a message
 * whose processing always throws would otherwise be retried forever.
 *
 * @module
 */
import { type JetStreamManager, type JsMsg, nanos, NatsError } from "nats";
import type { DeliveryConfig } from "../config/schema.ts";

/** ack_wait is raised only when the wanted value exceeds the current one by this factor. */
const RAISE_MARGIN = 1.2;

/** Longest delay before a failed message is tried again. */
export const MAX_RETRY_DELAY_MS = 30_000;

/** Delay before attempt `deliveryCount + 1`: 1 s, 2 s, 4 s, ... up to 30 s. */
export function retryDelayMs(deliveryCount: number): number {
  return Math.min(MAX_RETRY_DELAY_MS, 1_000 * 2 ** Math.max(0, deliveryCount - 1));
}

/**
 * True for NATS trouble (no responders while a cluster elects a leader, timeouts, a closed
 * connection): the broker's fault, never the message's, so it must not use up deliveries that
 * end in a `processing_failed` verdict.
 */
export function isTransient(error: unknown): boolean {
  return error instanceof NatsError;
}

/** True when JetStream will not deliver `message` again after this attempt. */
export function isLastDelivery(message: JsMsg, maxDeliver: number): boolean {
  return message.info.deliveryCount >= maxDeliver;
}

/**
 * Sends a progress ack (`+WPI`, which restarts the ack_wait clock) for every message in
 * `messages` every `intervalMs` until the returned function is called. Messages acked
 * meanwhile are skipped by the caller's removal from the array (the array is read each time).
 */
export function keepWorking(messages: readonly JsMsg[], intervalMs: number): () => void {
  const timer = setInterval(() => {
    for (const message of messages) {
      try {
        message.working();
      } catch {
        // connection trouble: the message will be redelivered, which the ledger tolerates
      }
    }
  }, intervalMs);
  return () => clearInterval(timer);
}

/** Interval of progress acks for a consumer whose ack_wait is `ackWaitMs`. */
export function progressIntervalMs(ackWaitMs: number): number {
  return Math.max(250, Math.floor(ackWaitMs / 3));
}

/**
 * Tracks the slowest step (e.g. one scored batch) and raises the durable consumer's
 * `ack_wait` to `ackWaitPerStep ×` that time when that is at least 20 % above the consumer's,
 * never lowering it (another process of the line may be slower).
 */
export class AckWaitTuner {
  readonly #jsm: JetStreamManager;
  readonly #stream: string;
  readonly #durable: string;
  readonly #config: DeliveryConfig;
  #ackWaitMs: number;
  #slowestMs = 0;
  #updating?: Promise<void>;

  /** `currentAckWaitMs` is the consumer's ack_wait as read at start-up. */
  constructor(
    jsm: JetStreamManager,
    stream: string,
    durable: string,
    config: DeliveryConfig,
    currentAckWaitMs: number,
  ) {
    this.#jsm = jsm;
    this.#stream = stream;
    this.#durable = durable;
    this.#config = config;
    this.#ackWaitMs = currentAckWaitMs;
  }

  /** The consumer's ack_wait as last set or read, in milliseconds. */
  get ackWaitMs(): number {
    return this.#ackWaitMs;
  }

  /** The slowest step measured so far, in milliseconds. */
  get slowestStepMs(): number {
    return this.#slowestMs;
  }

  /**
   * Records one step's duration; raises ack_wait in the background when needed. Returns the
   * new ack_wait in ms when a raise was started, else null.
   */
  record(stepMs: number): number | null {
    this.#slowestMs = Math.max(this.#slowestMs, stepMs);
    const wanted = Math.ceil(
      Math.max(this.#config.minAckWaitSeconds * 1000, this.#config.ackWaitPerStep * stepMs),
    );
    // Raise by a margin, not on every slightly slower batch (each raise is an API call).
    if (wanted <= RAISE_MARGIN * this.#ackWaitMs || this.#updating) return null;
    this.#ackWaitMs = wanted;
    this.#updating = this.#jsm.consumers
      .update(this.#stream, this.#durable, { ack_wait: nanos(wanted) })
      .then(() => undefined, () => undefined)
      .finally(() => (this.#updating = undefined));
    return wanted;
  }
}
