/**
 * Telling the operator when the line outruns the pipeline. The line's streams discard their
 * oldest messages when full (see `streams.ts`); this watch compares a durable consumer's
 * backlog with what its stream retains and raises, as a log line, a counter in the stage's
 * status and a JSON event on `inspect.<line>.alarm` (cameras and dashboards can subscribe):
 *
 * - `backlog_at_risk`: the stream is at least 90 % full and the unprocessed backlog is at least
 *   half of what it retains: the next messages to be discarded are unprocessed ones;
 * - `discarded_unprocessed`: the stream's first message is past the consumer's position, so
 *   messages the consumer never received were discarded (counted once each).
 *
 * @module
 */
import type { JetStreamManager, NatsConnection } from "nats";
import { alarmSubject } from "./subjects.ts";

/** Stream fill (share of max_msgs or max_bytes) from which a large backlog is at risk. */
export const AT_RISK_FILL = 0.9;
/** Share of the retained messages the backlog must reach to be at risk. */
export const AT_RISK_BACKLOG_SHARE = 0.5;

/** A backlog alarm event (JSON on `inspect.<line>.alarm`). */
export interface BacklogAlarmEvent {
  /** What happened. */
  kind: "backlog_at_risk" | "discarded_unprocessed";
  /** Line id. */
  line: string;
  /** Stream and durable consumer concerned. */
  stream: string;
  /** Durable consumer name. */
  consumer: string;
  /** Messages not yet processed by the consumer. */
  backlog: number;
  /** Messages the stream retains. */
  retained: number;
  /** Messages discarded unprocessed, this event (`discarded_unprocessed`). */
  discarded: number;
  /** RFC 3339 time. */
  at: string;
}

/** Counters of a {@link BacklogAlarm}. */
export interface BacklogAlarmCounts {
  /** Times the backlog became at risk. */
  atRisk: number;
  /** Messages discarded before the consumer received them. */
  discardedUnprocessed: number;
}

/** Polls one durable consumer's backlog against its stream's limits. */
export class BacklogAlarm {
  readonly #nc: NatsConnection;
  readonly #jsm: JetStreamManager;
  readonly #line: string;
  readonly #stream: string;
  readonly #consumer: string;
  readonly #warn: (message: string) => void;
  readonly counts: BacklogAlarmCounts = { atRisk: 0, discardedUnprocessed: 0 };
  #timer?: ReturnType<typeof setInterval>;
  #atRisk = false;
  #countedThrough = 0;
  #checking = false;

  /** Creates the watch; {@link start} starts polling. */
  constructor(
    nc: NatsConnection,
    jsm: JetStreamManager,
    line: string,
    stream: string,
    consumer: string,
    warn: (message: string) => void,
  ) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#line = line;
    this.#stream = stream;
    this.#consumer = consumer;
    this.#warn = warn;
  }

  /** Polls every `intervalMs`. */
  start(intervalMs = 5_000): void {
    this.#timer = setInterval(() => void this.check().catch(() => undefined), intervalMs);
  }

  /** Stops polling. */
  stop(): void {
    clearInterval(this.#timer);
  }

  /** One check (also called by tests). */
  async check(): Promise<void> {
    if (this.#checking) return;
    this.#checking = true;
    try {
      const [stream, consumer] = await Promise.all([
        this.#jsm.streams.info(this.#stream),
        this.#jsm.consumers.info(this.#stream, this.#consumer),
      ]);
      const { state, config } = stream;
      const backlog = consumer.num_pending + consumer.num_ack_pending;
      const fill = Math.max(
        config.max_msgs > 0 ? state.messages / config.max_msgs : 0,
        config.max_bytes > 0 ? state.bytes / config.max_bytes : 0,
      );
      const atRisk = fill >= AT_RISK_FILL && backlog >= AT_RISK_BACKLOG_SHARE * state.messages &&
        backlog > 0;
      if (atRisk && !this.#atRisk) {
        this.counts.atRisk++;
        this.#raise("backlog_at_risk", backlog, state.messages, 0);
      }
      this.#atRisk = atRisk;
      const through = Math.max(consumer.delivered.stream_seq, this.#countedThrough);
      const discarded = state.first_seq - 1 - through;
      if (discarded > 0) {
        this.counts.discardedUnprocessed += discarded;
        this.#countedThrough = state.first_seq - 1;
        this.#raise("discarded_unprocessed", backlog, state.messages, discarded);
      }
    } finally {
      this.#checking = false;
    }
  }

  #raise(kind: BacklogAlarmEvent["kind"], backlog: number, retained: number, discarded: number) {
    const event: BacklogAlarmEvent = {
      kind,
      line: this.#line,
      stream: this.#stream,
      consumer: this.#consumer,
      backlog,
      retained,
      discarded,
      at: new Date().toISOString(),
    };
    this.#warn(
      kind === "backlog_at_risk"
        ? `ALARM: the line outruns the pipeline: ${backlog} of the ${retained} messages in ` +
          `${this.#stream} are unprocessed and it is nearly full; the oldest will be discarded`
        : `ALARM: ${discarded} messages of ${this.#stream} were discarded before ` +
          `${this.#consumer} received them (stream limits): they get no verdict`,
    );
    try {
      this.#nc.publish(alarmSubject(this.#line), new TextEncoder().encode(JSON.stringify(event)));
    } catch {
      // connection trouble: the log line and the counter still tell
    }
  }
}
