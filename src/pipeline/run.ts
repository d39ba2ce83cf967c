/**
 * Running a line's pipeline in this process: the chosen stages (each in its own Worker, or in
 * this thread), one control service for the process, and a periodic progress line.
 *
 * @module
 */
import type { NatsConnection, Service } from "nats";
import { connectNats, type NatsAuth, natsTargetOf } from "../bus/connection.ts";
import type { StageSetup } from "./stage_factory.ts";
import type { PipelineConfig } from "../config/schema.ts";
import { type StageEndpoints, startControlService } from "../bus/control.ts";
import { STAGE_NAMES, type StageName, type StageStatus } from "../stages/stage.ts";
import { progressLine, type StatusSample } from "./progress.ts";
import { type StageHandle, startLocalStage, startWorkerStage } from "./stage_host.ts";
import { superviseStage } from "./supervise.ts";
import { withScorerThreads } from "./cores.ts";
import { scrapeMetricsJson, startMetricsEndpoint } from "../observe/metrics_endpoint.ts";
import type { MetricsJson } from "../observe/metrics.ts";
import type { HttpEndpoint } from "../observe/http.ts";

/** Options of {@link runPipeline}. */
export interface RunPipelineOptions {
  /** The line's configuration. */
  config: PipelineConfig;
  /** NATS server URL (`user:pass@` or `token@` in it are used as credentials). */
  natsUrl: string;
  /** Credentials and TLS files of every connection (held in memory, never logged). */
  natsAuth?: NatsAuth;
  /** Stages to run (default: all three). */
  stages?: readonly StageName[];
  /**
   * Run each stage in its own Worker (default true), restarted with back-off when it crashes;
   * false runs them in this thread (a crash ends the process: its supervisor restarts it).
   */
  workers?: boolean;
  /** Trainer checkpoints go to `<checkpointDir>/<line>` (default `data/checkpoints`). */
  checkpointDir?: string;
  /** Milliseconds between progress lines; 0 turns them off (default 10 000). */
  progressIntervalMs?: number;
  /** Where progress lines go (default `console.log`). */
  log?: (line: string) => void;
  /** Port of `/metrics`, overriding `config.metrics.port`; null: serve no metrics. */
  metricsPort?: number | null;
}

/** A running pipeline. */
export interface RunningPipeline {
  /** Stages this process runs. */
  readonly stages: readonly StageName[];
  /** Status of each stage. */
  status(): Promise<StageStatus[]>;
  /** Handle of a stage (for tests and the CLI). */
  stage(name: StageName): StageHandle | undefined;
  /**
   * Graceful stop: ingest first (no new work), then scorer and trainer finish and acknowledge
   * what they hold, the trainer publishes and checkpoints; then the control service closes.
   */
  stop(): Promise<void>;
  /** Rejects when a stage fails while running. */
  readonly failure: Promise<never>;
  /** URL of this process's `/metrics` endpoint, or null when it serves none. */
  readonly metricsUrl: string | null;
  /** Every stage's metrics merged (what `/metrics` serves), as prom-client JSON. */
  metrics(): Promise<MetricsJson>;
}

/** Longest wait for the control connection to drain (it may be reconnecting, or refused). */
const CONTROL_DRAIN_MS = 5_000;

/** Drains `connection`, closing it instead when that takes longer than `ms`. */
async function drainWithin(connection: NatsConnection, ms: number): Promise<void> {
  if (connection.isClosed()) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  try {
    const outcome = await Promise.race([connection.drain().then(() => "drained"), late]);
    if (outcome === "late") await connection.close();
  } finally {
    clearTimeout(timer);
  }
}

/** Default checkpoint directory. */
export const DEFAULT_CHECKPOINT_DIR = "data/checkpoints";

/** Starts the pipeline; resolves once every stage runs and the control service answers. */
export async function runPipeline(options: RunPipelineOptions): Promise<RunningPipeline> {
  const { natsUrl } = options;
  const names = STAGE_NAMES.filter((name) => (options.stages ?? STAGE_NAMES).includes(name));
  if (names.length === 0) throw new Error("no stage to run");
  const config = withScorerThreads(options.config, names);
  const checkpointDir = options.checkpointDir ?? DEFAULT_CHECKPOINT_DIR;
  const log = options.log ?? ((line: string) => console.log(line));
  const start = options.workers === false
    ? startLocalStage
    : (setup: StageSetup, url: string, auth?: NatsAuth) =>
      superviseStage(setup, () => startWorkerStage(setup, url, auth), log);

  const handles = new Map<StageName, StageHandle>();
  let control: { connection: NatsConnection; service: Service } | undefined;
  let metricsEndpoint: HttpEndpoint | undefined;
  const stopAll = async () => {
    await metricsEndpoint?.close();
    // Ingest first, so scorer and trainer see no new work while they finish.
    const first = await Promise.allSettled([handles.get("ingest")?.stop()]);
    const rest = await Promise.allSettled([...handles.values()].map((handle) => handle.stop()));
    if (control) {
      await control.service.stop();
      await drainWithin(control.connection, CONTROL_DRAIN_MS);
    }
    const errors = [...first, ...rest].flatMap((r) => r.status === "rejected" ? [r.reason] : []);
    if (errors.length > 0) {
      throw new AggregateError(errors, `stopping failed: ${errors.map(String).join("; ")}`);
    }
  };
  try {
    // Sequential starts: each stage creates or updates the line's streams idempotently.
    for (const stage of names) {
      handles.set(stage, await start({ stage, config, checkpointDir }, natsUrl, options.natsAuth));
    }
    const connection = await connectNats(natsTargetOf(natsUrl, options.natsAuth), {
      name: `inspect-${config.line}-control`,
      reconnect: true,
    });
    const endpoints: Record<string, StageEndpoints> = {};
    for (const [name, handle] of handles) {
      endpoints[name] = name === "trainer"
        ? {
          status: () => handle.status(),
          pause: () => handle.pause(),
          resume: () => handle.resume(),
          snapshot: () => handle.snapshot(),
        }
        : { status: () => handle.status() };
    }
    control = {
      connection,
      service: await startControlService(connection, config.line, endpoints),
    };
    const metricsPort = options.metricsPort === undefined
      ? config.metrics.port
      : options.metricsPort;
    if (config.metrics.enabled && metricsPort !== null) {
      try {
        metricsEndpoint = startMetricsEndpoint(config.metrics.hostname, metricsPort, [
          ...handles.values(),
        ]);
      } catch (error) {
        // Metrics are worth a warning, not a line that stops inspecting.
        console.warn(`${(error as Error).message}; this process serves no metrics`);
      }
    }
  } catch (error) {
    await stopAll().catch(() => undefined);
    throw error;
  }

  const status = () => Promise.all([...handles.values()].map((handle) => handle.status()));
  const sample = async (): Promise<StatusSample> => {
    const statuses = await status();
    return {
      atMs: performance.now(),
      stages: Object.fromEntries(statuses.map((s) => [s.stage, s])),
    };
  };
  let previous: StatusSample | undefined;
  const interval = options.progressIntervalMs ?? 10_000;
  const timer = interval > 0
    ? setInterval(() => {
      sample().then((current) => {
        if (previous) log(progressLine(config.line, previous, current));
        previous = current;
      }).catch(() => undefined); // a stage busy stopping: skip this line
    }, interval)
    : undefined;
  if (interval > 0) previous = await sample();

  let stopping: Promise<void> | undefined;
  return {
    stages: names,
    status,
    stage: (name) => handles.get(name),
    stop() {
      stopping ??= (async () => {
        if (timer !== undefined) clearInterval(timer);
        await stopAll();
      })();
      return stopping;
    },
    failure: Promise.race([...handles.values()].map((handle) => handle.failure)),
    metricsUrl: metricsEndpoint ? `${metricsEndpoint.url}/metrics` : null,
    metrics: () => scrapeMetricsJson([...handles.values()]),
  };
}
