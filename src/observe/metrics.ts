/**
 * The pipeline's Prometheus metrics (`npm:prom-client`), one registry per thread: a stage
 * records into the registry of the thread it runs in (its Worker, or the process), and the
 * process that serves `/metrics` merges the registries of its Workers into one exposition
 * ({@link mergeMetrics}). Every series is labelled with `line`; per-stage series with `stage`,
 * so merging sums nothing that should not be summed.
 *
 * Counters and the latency histogram are recorded where things happen (the stages' hooks);
 * gauges that describe state (backlog, model version, threshold, tensors) are read from the
 * stage's status at scrape time ({@link observeStatus}), so they are never stale.
 *
 * @module
 */
import client from "prom-client";
import type { StageStatus } from "../stages/stage.ts";
import type { TrainingEvent } from "../bus/training_event.ts";
import type { Verdict } from "../bus/verdict.ts";

/** JSON form of a registry's metrics (what Workers send to the serving thread). */
export type MetricsJson = client.MetricObjectWithValues<client.MetricValue<string>>[];

/** Verdicts the anomalous rate is taken over. */
export const ANOMALOUS_RATE_WINDOW = 500;

/** Latency buckets in seconds: 10 ms to 2 minutes (a line catching up after a restart). */
const LATENCY_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Every metric of the product, registered in one registry. */
export class PipelineMetrics {
  /** The registry (of this thread). */
  readonly registry: client.Registry;
  /** Messages a stage took from its input. */
  readonly imagesIn: client.Counter<"line" | "stage">;
  /** Messages a stage produced, by status (ingest: decoded/rejected; scorer: verdict status). */
  readonly imagesOut: client.Counter<"line" | "stage" | "status">;
  /** Rejected images by rejection code. */
  readonly rejections: client.Counter<"line" | "code">;
  /** Scored verdicts judged anomalous. */
  readonly anomalous: client.Counter<"line">;
  /** Seconds from ingest receiving an image to its verdict being stored. */
  readonly verdictLatency: client.Histogram<"line" | "status">;
  /** Messages pending + unacknowledged on a durable consumer. */
  readonly backlog: client.Gauge<"line" | "consumer">;
  /** Training steps taken. */
  readonly trainingSteps: client.Counter<"line">;
  /** Loss terms of the latest step. */
  readonly loss: client.Gauge<"line" | "term">;
  /** Batch samples ATDR down-weighted. */
  readonly downWeighted: client.Counter<"line">;
  /** Images the hygiene policy took out of the training buffer (and put back). */
  readonly hygiene: client.Counter<"line" | "action">;
  /** The trainer's online defect-rate estimate (atdrOutlierCount: auto). */
  readonly defectRate: client.Gauge<"line">;
  /** Model version a stage holds (trainer: last published; scorer: in use). */
  readonly modelVersion: client.Gauge<"line" | "stage">;
  /** Seconds since that version was published. */
  readonly modelAge: client.Gauge<"line" | "stage">;
  /** Threshold in force. */
  readonly threshold: client.Gauge<"line">;
  /** Share of the last {@link ANOMALOUS_RATE_WINDOW} scored verdicts that were anomalous. */
  readonly anomalousRate: client.Gauge<"line">;
  /** 1 while training is paused. */
  readonly paused: client.Gauge<"line">;
  /** Live tfjs tensors of a stage (flat over a long run, or something leaks). */
  readonly tensors: client.Gauge<"line" | "stage">;
  /** V8 heap used by a stage's thread. */
  readonly heapUsed: client.Gauge<"line" | "stage">;
  readonly #publishedAt = new Map<string, number>();
  readonly #recent: boolean[] = [];

  /** Creates the metrics in a fresh registry. */
  constructor() {
    const registers = [this.registry = new client.Registry()];
    const counter = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new client.Counter<L>({ name, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: L[]) =>
      new client.Gauge<L>({ name, help, labelNames, registers });
    this.imagesIn = counter("inspect_images_in_total", "Messages a stage took from its input.", [
      "line",
      "stage",
    ]);
    this.imagesOut = counter(
      "inspect_images_out_total",
      "Messages a stage produced, by status (ingest: decoded, rejected; scorer: scored, " +
        "warming_up, rejected).",
      ["line", "stage", "status"],
    );
    this.rejections = counter("inspect_rejections_total", "Rejected images by code.", [
      "line",
      "code",
    ]);
    this.anomalous = counter("inspect_anomalous_total", "Scored verdicts judged anomalous.", [
      "line",
    ]);
    this.verdictLatency = new client.Histogram({
      name: "inspect_verdict_latency_seconds",
      help: "Seconds from ingest receiving an image to its verdict being stored.",
      labelNames: ["line", "status"],
      buckets: LATENCY_BUCKETS,
      registers,
    });
    this.backlog = gauge(
      "inspect_backlog_messages",
      "Messages pending + unacknowledged on a durable consumer.",
      ["line", "consumer"],
    );
    this.trainingSteps = counter("inspect_training_steps_total", "Training steps taken.", [
      "line",
    ]);
    this.loss = gauge("inspect_training_loss", "Loss terms of the latest training step.", [
      "line",
      "term",
    ]);
    this.downWeighted = counter(
      "inspect_atdr_down_weighted_total",
      "Batch samples ATDR down-weighted.",
      ["line"],
    );
    this.hygiene = counter(
      "inspect_hygiene_images_total",
      "Images the hygiene policy took out of the training buffer (rejected) or put back " +
        "(readmitted).",
      ["line", "action"],
    );
    this.defectRate = gauge(
      "inspect_defect_rate_estimate",
      "The trainer's online defect-rate estimate (atdrOutlierCount: auto).",
      ["line"],
    );
    this.modelVersion = gauge(
      "inspect_model_version",
      "Model version a stage holds (trainer: last published; scorer: in use).",
      ["line", "stage"],
    );
    const publishedAt = this.#publishedAt;
    this.modelAge = new client.Gauge({
      name: "inspect_model_age_seconds",
      help: "Seconds since the model version a stage holds was published.",
      labelNames: ["line", "stage"],
      registers,
      collect() {
        for (const [key, at] of publishedAt) {
          const [line, stage] = key.split("\u0000");
          this.set({ line, stage }, Math.max(0, (Date.now() - at) / 1000));
        }
      },
    });
    this.threshold = gauge("inspect_threshold", "Threshold in force.", ["line"]);
    this.anomalousRate = gauge(
      "inspect_anomalous_rate",
      `Share of the last ${ANOMALOUS_RATE_WINDOW} scored verdicts that were anomalous.`,
      ["line"],
    );
    this.paused = gauge("inspect_training_paused", "1 while training is paused.", ["line"]);
    this.tensors = gauge("inspect_tensors", "Live tfjs tensors of a stage.", ["line", "stage"]);
    this.heapUsed = gauge("inspect_heap_used_bytes", "V8 heap used by a stage's thread.", [
      "line",
      "stage",
    ]);
  }

  /** A verdict was stored; `receivedAt` is when ingest received its image (when known). */
  verdictStored(stage: string, verdict: Verdict, receivedAt: Date | null, now = Date.now()): void {
    const line = verdict.line;
    this.imagesOut.inc({ line, stage, status: verdict.status });
    if (verdict.status === "rejected") this.rejections.inc({ line, code: verdict.error.code });
    if (receivedAt) {
      this.verdictLatency.observe(
        { line, status: verdict.status },
        Math.max(0, (now - receivedAt.getTime()) / 1000),
      );
    }
    if (verdict.status !== "scored") return;
    this.anomalous.inc({ line }, verdict.anomalous ? 1 : 0); // exposed from 0 on
    this.#recent.push(verdict.anomalous);
    if (this.#recent.length > ANOMALOUS_RATE_WINDOW) this.#recent.shift();
    this.anomalousRate.set(
      { line },
      this.#recent.filter((a) => a).length / this.#recent.length,
    );
    this.threshold.set({ line }, verdict.threshold);
  }

  /** A training step was reported. */
  trainingStep(event: TrainingEvent): void {
    const line = event.line;
    this.trainingSteps.inc({ line });
    for (const [term, value] of Object.entries(event.losses)) this.loss.set({ line, term }, value);
    this.downWeighted.inc({ line }, event.downWeighted.length);
    if (event.rejected?.length) {
      this.hygiene.inc({ line, action: "rejected" }, event.rejected.length);
    }
    if (event.readmitted?.length) {
      this.hygiene.inc({ line, action: "readmitted" }, event.readmitted.length);
    }
    if (event.defectRate !== null && event.defectRate !== undefined) {
      this.defectRate.set({ line }, event.defectRate);
    }
  }

  /** A stage now holds model `version`, published at `publishedAt`. */
  modelHeld(line: string, stage: string, version: number, publishedAt: string | Date): void {
    this.modelVersion.set({ line, stage }, version);
    const at = new Date(publishedAt).getTime();
    if (Number.isFinite(at)) this.#publishedAt.set(`${line}\u0000${stage}`, at);
  }

  /** State gauges from a stage's status (called at scrape time). */
  observeStatus(status: StageStatus): void {
    const { line, stage } = status;
    const consumer = stage;
    if (status.backlog !== null) this.backlog.set({ line, consumer }, status.backlog);
    if (status.modelVersion !== null) this.modelVersion.set({ line, stage }, status.modelVersion);
    if (stage === "trainer") this.paused.set({ line }, status.paused ? 1 : 0);
    const tensors = Number(status.details.tensors);
    if (status.details.tensors != null && Number.isFinite(tensors)) {
      this.tensors.set({ line, stage }, tensors);
    }
    if (stage === "scorer" && typeof status.details.threshold === "number") {
      this.threshold.set({ line }, status.details.threshold);
    }
    this.heapUsed.set({ line, stage }, Deno.memoryUsage().heapUsed);
  }

  /** This registry's metrics as JSON, for merging in the serving thread. */
  async json(): Promise<MetricsJson> {
    return await this.registry.getMetricsAsJSON() as MetricsJson;
  }
}

let threadMetrics: PipelineMetrics | undefined;

/** The metrics of this thread (created on first use). */
export function metrics(): PipelineMetrics {
  return threadMetrics ??= new PipelineMetrics();
}

let processMetrics: client.Registry | undefined;

/**
 * prom-client defaults that read `/proc/self/*` (which Deno grants only with `--allow-all`, so
 * under the tasks' permissions they would read 0 or be absent) or `monitorEventLoopDelay`
 * (which does not see a blocked event loop under Deno): left out rather than exported wrong.
 */
const UNMEASURABLE_DEFAULTS = [
  "process_resident_memory_bytes", // replaced by Deno.memoryUsage().rss below
  "process_virtual_memory_bytes",
  "process_heap_bytes",
  "process_open_fds",
  "process_max_fds",
  "nodejs_eventloop_lag_seconds",
  "nodejs_eventloop_lag_min_seconds",
  "nodejs_eventloop_lag_max_seconds",
  "nodejs_eventloop_lag_mean_seconds",
  "nodejs_eventloop_lag_stddev_seconds",
  "nodejs_eventloop_lag_p50_seconds",
  "nodejs_eventloop_lag_p90_seconds",
  "nodejs_eventloop_lag_p99_seconds",
];

/**
 * Process-wide metrics (resident memory, CPU, handles, GC) from prom-client's defaults,
 * registered once per process and only in the serving thread (Workers would repeat them).
 */
export function processRegistry(): client.Registry {
  if (!processMetrics) {
    const registry = new client.Registry();
    client.collectDefaultMetrics({ register: registry, prefix: "inspect_" });
    for (const name of UNMEASURABLE_DEFAULTS) registry.removeSingleMetric(`inspect_${name}`);
    new client.Gauge({
      name: "inspect_process_resident_memory_bytes",
      help: "Resident memory size in bytes.",
      registers: [registry],
      collect() {
        this.set(Deno.memoryUsage().rss);
      },
    });
    processMetrics = registry;
  }
  return processMetrics;
}

/** Merges registries' JSON into one registry (counters, gauges and histograms summed). */
export function mergeMetrics(parts: MetricsJson[]): client.Registry {
  return client.AggregatorRegistry.aggregate(parts);
}

/** Content type of the text exposition format. */
export const METRICS_CONTENT_TYPE: string = client.Registry.PROMETHEUS_CONTENT_TYPE;
