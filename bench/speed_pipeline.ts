/**
 * Pipeline part of the speed benchmark (`deno task bench:speed --sections pipeline`):
 * end-to-end throughput and verdict latency through NATS at the default configuration,
 * against the bare model's scoring throughput (goal: the pipeline reaches
 * {@link THROUGHPUT_GOAL} of it).
 *
 *  1. Bare model: the scorer's engine (`scoreWithMaps`) on batches of its `batchSize`, in a process of its
 *     own (`speed_pipeline_child.ts`), images/s after warm-up; once before and once after the
 *     pipeline, the faster run being the reference (load drift on a shared machine then cannot
 *     flatter the ratio).
 *  2. Pipeline (`speed_pipeline_live.ts`): the line `deno task run` serves, on a private
 *     nats-server, warmed up with `trainer.warmupSteps` shortened; per trainer mode (training,
 *     as shipped; paused) a saturated burst and a paced run at a fraction of the burst's
 *     throughput, every verdict timed from its image's publication.
 *
 * This module holds the settings, the statistics (pure), the orchestration and the report.
 *
 * @module
 */
import type { PipelineConfig } from "../src/config/schema.ts";
import { runChild } from "./child_process.ts";
import { type Environment, environment, fixed, markdownTable, type Table } from "./report.ts";
import type { BareScoringJob, BareScoringResult } from "./speed_pipeline_child.ts";
import { withScorerThreads } from "../src/pipeline/cores.ts";
import { STAGE_NAMES } from "../src/stages/stage.ts";
import {
  benchPipelineConfig,
  DEFAULT_PIPELINE_FILE,
  type LiveRecord,
  type LoadPhase,
  measureLivePipeline,
  type PayloadInfo,
  type PhaseRecord,
  type TrainerMode,
} from "./speed_pipeline_live.ts";
import { secondsSince } from "./timing.ts";

const CHILD_URL = new URL("./speed_pipeline_child.ts", import.meta.url);

/** Pipeline throughput as a share of the bare model's that the pipeline should reach. */
export const THROUGHPUT_GOAL = 0.9;
/** Share of verdict arrivals left out at each end of a phase when measuring its rate. */
export const STEADY_TRIM = 0.1;

/** Settings of the pipeline measurement. */
export interface PipelineBenchOptions {
  /** Images per phase (each mode has a saturated and a paced phase). */
  images: number;
  /** Paced publish rate as a fraction of the saturated throughput of the same mode. */
  rateFraction: number;
  /** `trainer.warmupSteps` for the run (the shipped file says 25): scoring starts sooner. */
  warmupSteps: number;
  /** Stop waiting for a phase's verdicts once none came for this many seconds. */
  idleTimeoutSeconds: number;
  /** Seconds of timed batches of the bare model. */
  bareSeconds: number;
}

/** The defaults of `deno task bench:speed`. */
export const DEFAULT_PIPELINE_OPTIONS: PipelineBenchOptions = {
  images: 2000,
  rateFraction: 0.7,
  warmupSteps: 5,
  idleTimeoutSeconds: 60,
  bareSeconds: 20,
};

/** Latency percentiles, ms. */
export interface LatencySummary {
  /** Median. */
  p50: number;
  /** 99th percentile. */
  p99: number;
  /** Largest. */
  max: number;
}

/** One phase, summarised. */
export interface PhaseSummary {
  /** Trainer mode. */
  mode: TrainerMode;
  /** Saturated burst or paced. */
  phase: LoadPhase;
  /** Publish rate aimed at (paced), null for the burst. */
  targetRate: number | null;
  /** Images published. */
  published: number;
  /** `scored` verdicts received. */
  scored: number;
  /** Other verdicts received, by status (expected: none). */
  otherVerdicts: Record<string, number>;
  /** Images without a verdict when waiting stopped. */
  missing: number;
  /** Images/s at which the client published (first to last publication). */
  publishRate: number | null;
  /** Steady-state scored verdicts per second ({@link steadyThroughput}). */
  throughput: number | null;
  /** `throughput` / bare model's images/s (saturated phases). */
  ratioToBare: number | null;
  /** Verdict arrival − image publication over scored images. */
  latencyMs: LatencySummary | null;
  /** Trainer steps taken during the phase. */
  trainerSteps: number;
  /** Model versions of the first and last scored verdict. */
  modelVersions: { first: number; last: number } | null;
  /** Seconds from the first publication to the last verdict. */
  seconds: number;
}

/** The pipeline section of `speed.json`. */
export interface PipelineBenchReport {
  /** Always true here (see {@link PipelineSection}). */
  measured: true;
  /** Machine and software of this section's run (it may be newer than the others'). */
  environment: Environment;
  /** Wall-clock seconds of this section. */
  wallSeconds: number;
  /** Settings. */
  options: PipelineBenchOptions;
  /** The configuration that ran, in short. */
  config: {
    /** Pipeline file it comes from. */
    file: string;
    /** `model` section. */
    model: PipelineConfig["model"];
    /** Scorer batch size (also the bare model's). */
    scorerBatch: number;
    /** Training batch size. */
    trainingBatch: number;
    /** Trainer publication cadence. */
    publishEverySteps: number;
    /** Trainer publication cadence. */
    publishEverySeconds: number;
    /** Replay steps per new image (absent in reports before it was recorded). */
    replayStepsPerImage?: number;
    /** The trainer thread's nice value (absent in reports before it was recorded). */
    trainerNiceness?: number;
  };
  /** Camera images. */
  payload: PayloadInfo | null;
  /** Seconds until the scorer had a model. */
  warmupSeconds: number | null;
  /** The bare model, before and after the pipeline. */
  bare: BareScoringResult[];
  /** The reference: the faster bare run's images/s, null if neither ran. */
  bareImagesPerSecond: number | null;
  /** The phases in run order. */
  phases: PhaseSummary[];
  /** Why the live part stopped early, if it did. */
  failure?: string;
}

/** The pipeline section: measured, or why not (also what older result files hold). */
export type PipelineSection = PipelineBenchReport | { measured: false; reason: string };

/**
 * Nearest-rank percentile: the smallest value with at least `q` of the values at or below
 * it (`q` in (0, 1]). Null for no values.
 */
export function percentile(values: readonly number[], q: number): number | null {
  if (!(q > 0 && q <= 1)) throw new RangeError(`percentile: q must be in (0, 1], got ${q}`);
  if (values.length === 0) return null;
  const sorted = values.slice().sort((a, b) => a - b);
  return sorted[Math.ceil(q * sorted.length) - 1];
}

/** p50, p99 and max of `values` (ms), or null for none. */
export function latencySummary(values: readonly number[]): LatencySummary | null {
  if (values.length === 0) return null;
  return {
    p50: percentile(values, 0.5)!,
    p99: percentile(values, 0.99)!,
    max: Math.max(...values),
  };
}

/**
 * Events per second over the middle of a run: arrival times (ms, any order) sorted, `trim`
 * of them left out at each end (start-up and draining), then intervals ÷ time between the
 * first and last kept arrival. Null with fewer than two kept arrivals or no time between them.
 */
export function steadyThroughput(arrivalsMs: readonly number[], trim = STEADY_TRIM): number | null {
  if (!(trim >= 0 && trim < 0.5)) throw new RangeError(`trim must be in [0, 0.5), got ${trim}`);
  const sorted = arrivalsMs.slice().sort((a, b) => a - b);
  const cut = Math.floor(trim * (sorted.length - 1));
  const first = cut;
  const last = sorted.length - 1 - cut;
  if (last <= first) return null;
  const spanMs = sorted[last] - sorted[first];
  return spanMs > 0 ? ((last - first) * 1000) / spanMs : null;
}

/** `pipeline / bare`, null when either is missing or bare is not positive. */
export function throughputRatio(pipeline: number | null, bare: number | null): number | null {
  return pipeline === null || bare === null || !(bare > 0) ? null : pipeline / bare;
}

/** Summarises one phase's timings; `bareImagesPerSecond` gives the saturated ratio. */
export function summarisePhase(
  record: PhaseRecord,
  bareImagesPerSecond: number | null,
): PhaseSummary {
  const { timings } = record;
  const scored = timings.filter((t) => t.status === "scored" && t.arrivedMs !== null);
  const otherVerdicts: Record<string, number> = {};
  for (const t of timings) {
    if (t.status !== null && t.status !== "scored") {
      otherVerdicts[t.status] = (otherVerdicts[t.status] ?? 0) + 1;
    }
  }
  const published = timings.map((t) => t.publishedMs);
  const publishSpan = published.length > 1 ? Math.max(...published) - Math.min(...published) : 0;
  const throughput = steadyThroughput(scored.map((t) => t.arrivedMs!));
  const versions = scored
    .slice()
    .sort((a, b) => a.arrivedMs! - b.arrivedMs!)
    .map((t) => t.modelVersion)
    .filter((v): v is number => v !== null);
  return {
    mode: record.mode,
    phase: record.phase,
    targetRate: record.targetRate,
    published: timings.length,
    scored: scored.length,
    otherVerdicts,
    missing: timings.filter((t) => t.arrivedMs === null).length,
    publishRate: publishSpan > 0 ? ((timings.length - 1) * 1000) / publishSpan : null,
    throughput,
    ratioToBare: record.phase === "saturated"
      ? throughputRatio(throughput, bareImagesPerSecond)
      : null,
    latencyMs: latencySummary(scored.map((t) => t.arrivedMs! - t.publishedMs)),
    trainerSteps: record.trainerSteps,
    modelVersions: versions.length > 0
      ? { first: versions[0], last: versions[versions.length - 1] }
      : null,
    seconds: record.seconds,
  };
}

/**
 * Runs the bare model, the live pipeline, the bare model again; failures become notes, never
 * exceptions.
 */
export async function runPipelineBench(
  options: PipelineBenchOptions,
  log: (text: string) => void,
): Promise<PipelineBenchReport> {
  const start = performance.now();
  const config = await benchPipelineConfig(options.warmupSteps);
  const job: BareScoringJob = {
    model: config.model,
    // The scorer's engine and threads as `run` gives them (the trainer beside it).
    inference: withScorerThreads(config, STAGE_NAMES).inference,
    batch: config.scorer.batchSize,
    warmupBatches: 3,
    minBatches: 10,
    minSeconds: options.bareSeconds,
  };
  const bare = [await runBare(job, "before the pipeline", log)];
  let live: LiveRecord | null = null;
  let failure: string | undefined;
  try {
    live = await measureLivePipeline(
      {
        config,
        images: options.images,
        idleTimeoutSeconds: options.idleTimeoutSeconds,
      },
      (saturated) => {
        const { throughput } = summarisePhase(saturated, null);
        return throughput === null ? null : throughput * options.rateFraction;
      },
      log,
    );
    failure = live.failure;
  } catch (error) {
    failure = error instanceof Error ? error.message : String(error);
    log(`pipeline failed: ${failure}`);
  }
  bare.push(await runBare(job, "after the pipeline", log));
  const bareIps = fastestBare(bare);
  return {
    measured: true,
    environment: await environment(),
    wallSeconds: secondsSince(start),
    options,
    config: {
      file: DEFAULT_PIPELINE_FILE,
      model: config.model,
      scorerBatch: config.scorer.batchSize,
      trainingBatch: config.training.batchSize,
      publishEverySteps: config.trainer.publishEverySteps,
      publishEverySeconds: config.trainer.publishEverySeconds,
      replayStepsPerImage: config.trainer.replayStepsPerImage,
      trainerNiceness: config.trainer.niceness,
    },
    payload: live?.payload ?? null,
    warmupSeconds: live?.warmupSeconds ?? null,
    bare,
    bareImagesPerSecond: bareIps,
    phases: live?.phases.map((phase) => summarisePhase(phase, bareIps)) ?? [],
    ...(failure === undefined ? {} : { failure }),
  };
}

async function runBare(
  job: BareScoringJob,
  when: string,
  log: (text: string) => void,
): Promise<BareScoringResult> {
  log(
    `bare model ${when}: ${job.model.imageSize} px, ${job.model.studentWidth}, ` +
      `${job.model.backend} (scoring engine ${job.inference.engine}, threads ` +
      `${job.inference.threads}), batches of ${job.batch}, own process`,
  );
  const outcome = await runChild<BareScoringJob, BareScoringResult>(
    CHILD_URL,
    job,
    Math.max(300, job.minSeconds * 10) * 1000,
  );
  const result: BareScoringResult = outcome.ok
    ? outcome.result
    : { ok: false, reason: outcome.error.split("\n")[0] };
  log(
    result.ok
      ? `bare model ${when}: ${fixed(result.imagesPerSecond, 1)} images/s ` +
        `(${result.batches} batches, median ${fixed(result.medianBatchMs, 1)} ms)`
      : `bare model ${when}: ${result.reason}`,
  );
  return result;
}

/** The fastest successful bare run's images/s, null if none succeeded. */
export function fastestBare(runs: readonly BareScoringResult[]): number | null {
  const rates = runs.flatMap((run) => run.ok ? [run.imagesPerSecond] : []);
  return rates.length > 0 ? Math.max(...rates) : null;
}

const MODE_LABELS: Record<TrainerMode, string> = {
  training: "training on (as shipped)",
  paused: "training paused",
};

/** The bare model and every phase: throughput, share of bare, latency. */
export function pipelineTable(report: PipelineBenchReport): Table {
  const rows = report.bare.map((bare, i) => [
    `bare model, ${i === 0 ? "before" : "after"} the pipeline`,
    `${bare.ok ? bare.backend : "scoring engine"} scoreWithMaps, batches of ` +
    `${report.config.scorerBatch}, own process`,
    bare.ok ? String(bare.batches * report.config.scorerBatch) : "—",
    bare.ok ? fixed(bare.imagesPerSecond, 1) : bare.reason,
    bare.ok && bare.imagesPerSecond === report.bareImagesPerSecond ? "reference" : "",
    "",
    "",
    "",
    "",
    "",
  ]);
  for (const p of report.phases) {
    const other = Object.entries(p.otherVerdicts).map(([s, n]) => `${n} ${s}`);
    if (p.missing > 0) other.push(`${p.missing} missing`);
    rows.push([
      `pipeline, ${MODE_LABELS[p.mode]}`,
      p.phase === "saturated"
        ? "saturated (burst, published flat out)"
        : `paced at ${fixed(p.targetRate, 1)} images/s`,
      String(p.published) + (other.length ? ` (${other.join(", ")})` : ""),
      fixed(p.throughput, 1),
      p.ratioToBare === null
        ? ""
        : `${p.ratioToBare.toFixed(2)}× ${
          p.ratioToBare >= THROUGHPUT_GOAL ? "(goal met)" : "(below goal)"
        }`,
      fixed(p.latencyMs?.p50, 0),
      fixed(p.latencyMs?.p99, 0),
      fixed(p.latencyMs?.max, 0),
      String(p.trainerSteps),
      p.modelVersions ? `v${p.modelVersions.first}–v${p.modelVersions.last}` : "—",
    ]);
  }
  return {
    headers: [
      "what",
      "load",
      "images",
      "images/s",
      `÷ bare (goal ≥ ${THROUGHPUT_GOAL})`,
      "p50 ms",
      "p99 ms",
      "max ms",
      "trainer steps",
      "model",
    ],
    rows,
    align: ["left", "left", "right", "right", "right", "right", "right", "right", "right", "left"],
  };
}

/** Plain-text lines saying how the section was measured (markdown and console). */
export function pipelineNotes(report: PipelineBenchReport): string[] {
  const env = report.environment;
  const c = report.config;
  const o = report.options;
  const cores = coreCount(env);
  return [
    (env.command ? `Command: \`${env.command}\`. ` : "") +
    `Run: ${env.date}, commit ${env.commit}, ${env.cpu}, load average ` +
    `${env.loadAverage.map((l) => l.toFixed(2)).join(" / ")} at the end; ` +
    `${report.wallSeconds} s for this section.`,
    `Configuration: \`${c.file}\` (what \`deno task run\` serves: ${c.model.imageSize} px, ` +
    `student ${c.model.studentWidth}, ${c.model.backend}, scorer batch ${c.scorerBatch}, ` +
    `training batch ${c.trainingBatch}, a new model version every ${c.publishEverySteps} ` +
    `steps or ${c.publishEverySeconds} s` +
    (c.replayStepsPerImage === undefined
      ? ""
      : `, ${c.replayStepsPerImage} replay steps per new image, trainer at nice ` +
        c.trainerNiceness) +
    `) with the first version after ` +
    `\`trainer.warmupSteps\` ${o.warmupSteps} steps (maturity "steps") so scoring starts sooner` +
    (report.warmupSeconds === null
      ? "."
      : ` (the scorer had its first model ${report.warmupSeconds.toFixed(0)} s after the ` +
        "first image)."),
    `Pipeline: a private nats-server with JetStream, \`runPipeline\` with ingest, trainer and ` +
    `scorer each in its own Worker; the camera (publisher) and the verdict subscriber run in ` +
    `the benchmark's main thread, on the same machine` +
    (report.payload
      ? `, publishing the ${report.payload.distinct} images of \`${report.payload.stream}\` ` +
        `(${report.payload.size ?? "?"} px, mean ${report.payload.meanBytes} bytes; ingest ` +
        `resizes them to ${c.model.imageSize} px) cycled under unique Image-Ids with ` +
        "Captured-At."
      : "."),
    `Throughput: scored verdicts per second between the first and last ${STEADY_TRIM * 100} % ` +
    `of a phase's verdicts (steady state). Latency: verdict arrival − image publication, ` +
    `one clock. Per trainer mode: a burst of ${o.images} images published flat out ` +
    `(saturation: latency there is mostly queueing, an image waits for those published before ` +
    `it, so it grows with the burst), then ${o.images} images at ` +
    `${Math.round(o.rateFraction * 100)} % of that mode's saturated throughput.`,
    `Trainer: "training" is the product as shipped (online training runs all the time images ` +
    `arrive); "paused" uses the trainer's pause action (the control endpoint ` +
    `\`inspect.<line>.control.trainer.pause\`), so only ingest and scorer work. On this ` +
    `${cores}-core machine the trainer competes with ingest, scorer, nats-server and the ` +
    `client for CPU, which is why both are reported. The bare model ran alone in a process ` +
    `of its own, before and after the pipeline; the ratio is against the faster of the two.`,
  ];
}

function coreCount(env: Environment): string {
  return env.cpu.match(/× (\d+)$/)?.[1] ?? "?";
}

/** The headline: each saturated ratio against the goal. */
export function pipelineVerdicts(report: PipelineBenchReport): string[] {
  return report.phases.filter((p) => p.phase === "saturated").map((p) =>
    `${MODE_LABELS[p.mode]}: ${fixed(p.throughput, 1)} images/s = ` +
    (p.ratioToBare === null
      ? "no ratio"
      : `${(p.ratioToBare * 100).toFixed(0)} % of the bare model's ` +
        `${fixed(report.bareImagesPerSecond, 1)} → goal ≥ ` +
        `${THROUGHPUT_GOAL * 100} % ${p.ratioToBare >= THROUGHPUT_GOAL ? "met" : "NOT met"}`)
  );
}

/** The "Pipeline throughput and latency" section of `speed.md`. */
export function pipelineMarkdown(section: PipelineSection): string {
  const lines = ["## Pipeline throughput and latency", ""];
  if (!section.measured) {
    lines.push(`Not measured: ${section.reason}.`, "");
    return lines.join("\n");
  }
  lines.push(
    ...pipelineNotes(section).flatMap((note) => [note, ""]),
    markdownTable(pipelineTable(section)),
    "",
    ...pipelineVerdicts(section).map((line) => `- ${line}`),
  );
  if (section.failure) lines.push(`- pipeline stopped early: ${section.failure}`);
  lines.push("");
  return lines.join("\n");
}
