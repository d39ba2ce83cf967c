/**
 * What the dashboard shows, followed live from NATS: the line's verdicts and training events
 * (ordered consumers that start a little in the past, so a fresh page has history), its model
 * versions (KV watch), its stages' status (the control service, polled) and the process's
 * metrics (throughput and latency as rates between two scrapes). Every update goes to the
 * subscribers as one small JSON event; {@link LineFeed.snapshot} seeds a new page.
 *
 * @module
 */
import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
  type NatsConnection,
} from "nats";
import { parseVerdict, type Verdict } from "../../bus/verdict.ts";
import { parseTrainingEvent, type TrainingEvent } from "../../bus/training_event.ts";
import { ModelStore, type ModelVersionRecord } from "../../bus/model_store.ts";
import { controlSubject, streamNames } from "../../bus/subjects.ts";
import { isNotFound } from "../../bus/streams.ts";
import type { StageName, StageStatus } from "../../stages/stage.ts";
import type { MetricsJson } from "../metrics.ts";
import { type RateSample, rateSample } from "./rates.ts";

/** One update pushed to the page. */
export type FeedEvent =
  | { type: "verdict"; verdict: VerdictRow }
  | { type: "training"; training: TrainingRow }
  | { type: "model"; model: ModelVersionRecord }
  | { type: "status"; stages: Partial<Record<StageName, StageStatus | null>> }
  | { type: "rates"; rates: RateSample };

/** A verdict as the page lists it. */
export interface VerdictRow {
  imageId: string | null;
  imageSeq: number;
  status: Verdict["status"];
  scoredAt: string;
  score: number | null;
  threshold: number | null;
  anomalous: boolean | null;
  modelVersion: number | null;
  region: { x: number; y: number; width: number; height: number } | null;
  originalSize: { width: number; height: number } | null;
  anomalousFraction: number | null;
  heatmap: boolean;
  error: string | null;
}

/** A training step as the charts plot it. */
export interface TrainingRow {
  step: number;
  at: string;
  losses: Record<string, number>;
  downWeighted: number;
  rejected: number;
  modelVersion: number | null;
}

/** What a fresh page starts from. */
export interface FeedSnapshot {
  line: string;
  verdicts: VerdictRow[];
  training: TrainingRow[];
  models: ModelVersionRecord[];
  stages: Partial<Record<StageName, StageStatus | null>>;
  rates: RateSample[];
}

/** How much history the feed keeps (and a new page gets). */
export const FEED_LIMITS = { verdicts: 1000, training: 2000, models: 50, rates: 300 } as const;

/** Options of {@link LineFeed.start}. */
export interface LineFeedOptions {
  /** Seconds between status polls and metric scrapes (default 2). */
  pollSeconds?: number;
  /** The process's merged metrics, for throughput and latency (none: those charts stay empty). */
  metrics?: () => Promise<MetricsJson>;
}

/** Row of a verdict. */
export function verdictRow(verdict: Verdict): VerdictRow {
  const scored = verdict.status === "scored" ? verdict : null;
  return {
    imageId: verdict.imageId,
    imageSeq: verdict.imageSeq,
    status: verdict.status,
    scoredAt: verdict.scoredAt,
    score: verdict.score,
    threshold: verdict.threshold,
    anomalous: verdict.anomalous,
    modelVersion: verdict.modelVersion,
    region: scored?.region ?? null,
    originalSize: scored?.originalSize ?? null,
    anomalousFraction: scored?.anomalousFraction ?? null,
    heatmap: Boolean(scored?.heatmap),
    error: verdict.status === "rejected" ? `${verdict.error.code}: ${verdict.error.message}` : null,
  };
}

/** Row of a training event. */
export function trainingRow(event: TrainingEvent): TrainingRow {
  return {
    step: event.step,
    at: event.at,
    losses: event.losses,
    downWeighted: event.downWeighted.length,
    rejected: event.rejected?.length ?? 0,
    modelVersion: event.modelVersion,
  };
}

/** The live state of one line. */
export class LineFeed {
  /** The line followed. */
  readonly line: string;
  readonly #nc: NatsConnection;
  readonly #verdicts: VerdictRow[] = [];
  readonly #training: TrainingRow[] = [];
  readonly #models: ModelVersionRecord[] = [];
  readonly #rates: RateSample[] = [];
  #stages: Partial<Record<StageName, StageStatus | null>> = {};
  readonly #listeners = new Set<(event: FeedEvent) => void>();
  readonly #abort = new AbortController();
  readonly #consumers: ConsumerMessages[] = [];
  readonly #tasks: Promise<void>[] = [];
  #timer?: ReturnType<typeof setInterval>;

  private constructor(nc: NatsConnection, line: string) {
    this.#nc = nc;
    this.line = line;
  }

  /** Starts following `line` on `nc` (the caller keeps owning the connection). */
  static async start(
    nc: NatsConnection,
    line: string,
    options: LineFeedOptions = {},
  ): Promise<LineFeed> {
    const feed = new LineFeed(nc, line);
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    const names = streamNames(line);
    await feed.#follow(js, jsm, names.verdicts, FEED_LIMITS.verdicts, (data) => {
      const row = verdictRow(parseVerdict(data));
      feed.#push(feed.#verdicts, row, FEED_LIMITS.verdicts);
      feed.#emit({ type: "verdict", verdict: row });
    });
    await feed.#follow(js, jsm, names.training, FEED_LIMITS.training, (data) => {
      const row = trainingRow(parseTrainingEvent(data));
      feed.#push(feed.#training, row, FEED_LIMITS.training);
      feed.#emit({ type: "training", training: row });
    });
    const models = await ModelStore.open(js, line);
    for (const record of await models.history()) {
      if (!feed.#models.some((m) => m.version === record.version)) feed.#models.push(record);
    }
    feed.#tasks.push((async () => {
      try {
        for await (const record of models.watch(feed.#abort.signal)) {
          if (feed.#models.some((m) => m.version === record.version)) continue;
          feed.#push(feed.#models, record, FEED_LIMITS.models);
          feed.#emit({ type: "model", model: record });
        }
      } catch {
        // the connection closed: the feed is stopping
      }
    })());
    const pollMs = (options.pollSeconds ?? 2) * 1000;
    let previous: MetricsJson | undefined;
    let previousAt = 0;
    let polling = false;
    const poll = async () => {
      // A slow scrape must not overlap the next one: rates over a near-zero interval explode.
      if (polling) return;
      polling = true;
      try {
        await pollOnce();
      } finally {
        polling = false;
      }
    };
    const pollOnce = async () => {
      feed.#stages = await feed.#pollStatus();
      feed.#emit({ type: "status", stages: feed.#stages });
      if (!options.metrics) return;
      const now = Date.now();
      const current = await options.metrics();
      if (previous) {
        const sample = rateSample(line, previous, current, (now - previousAt) / 1000, now);
        feed.#push(feed.#rates, sample, FEED_LIMITS.rates);
        feed.#emit({ type: "rates", rates: sample });
      }
      previous = current;
      previousAt = now;
    };
    await poll().catch(() => undefined);
    feed.#timer = setInterval(() => void poll().catch(() => undefined), pollMs);
    return feed;
  }

  /** Follows `stream` from its last `history` messages on, live. */
  async #follow(
    js: JetStreamClient,
    jsm: JetStreamManager,
    stream: string,
    history: number,
    onData: (data: Uint8Array) => void,
  ): Promise<void> {
    let lastSeq: number;
    try {
      lastSeq = (await jsm.streams.info(stream)).state.last_seq;
    } catch (error) {
      if (!isNotFound(error)) throw error;
      throw new Error(`stream ${stream} does not exist yet: start the line's stages first`);
    }
    const startSeq = Math.max(1, lastSeq - history + 1);
    const consumer = await js.consumers.get(stream, {
      deliver_policy: DeliverPolicy.StartSequence,
      opt_start_seq: startSeq,
    });
    const messages = await consumer.consume();
    this.#consumers.push(messages);
    this.#tasks.push(
      (async () => {
        for await (const message of messages) {
          try {
            onData(message.data);
          } catch {
            // A message that does not parse is not the dashboard's to judge: skip it.
          }
        }
      })().catch(() => undefined),
    );
  }

  async #pollStatus(): Promise<Partial<Record<StageName, StageStatus | null>>> {
    const stages: StageName[] = ["ingest", "trainer", "scorer"];
    const answers = await Promise.all(stages.map((stage) => this.control(stage, "status")));
    return Object.fromEntries(
      stages.map((stage, i) => [stage, answers[i].ok ? answers[i].value as StageStatus : null]),
    );
  }

  /** Calls a control endpoint of the line: `{ok, value}` or `{ok: false, error}`. */
  async control(
    stage: StageName,
    action: "status" | "pause" | "resume" | "snapshot",
  ): Promise<{ ok: true; value: unknown } | { ok: false; error: string }> {
    try {
      const reply = await this.#nc.request(controlSubject(this.line, stage, action), undefined, {
        timeout: action === "snapshot" ? 60_000 : 5_000,
      });
      const error = reply.headers?.get("Nats-Service-Error");
      if (error) return { ok: false, error };
      return { ok: true, value: JSON.parse(new TextDecoder().decode(reply.data)) };
    } catch (error) {
      return { ok: false, error: (error as Error).message };
    }
  }

  /** What a new page starts from. */
  snapshot(): FeedSnapshot {
    return {
      line: this.line,
      verdicts: this.#verdicts.slice(),
      training: this.#training.slice(),
      models: this.#models.slice(),
      stages: this.#stages,
      rates: this.#rates.slice(),
    };
  }

  /** Calls `listener` with every update until the returned function is called. */
  subscribe(listener: (event: FeedEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Stops following (the connection stays open). */
  async stop(): Promise<void> {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#abort.abort();
    for (const messages of this.#consumers) await messages.close().catch(() => undefined);
    await Promise.allSettled(this.#tasks);
    this.#listeners.clear();
  }

  #push<T>(list: T[], item: T, limit: number): void {
    list.push(item);
    if (list.length > limit) list.splice(0, list.length - limit);
  }

  #emit(event: FeedEvent): void {
    for (const listener of this.#listeners) {
      try {
        listener(event);
      } catch {
        // one broken page must not stop the others
      }
    }
  }
}
