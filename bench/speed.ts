/**
 * Speed benchmark (`deno task bench:speed [flags]`):
 *  1. training-step time (batch 8) and scoring time per image for the default configuration
 *     (ModelSchema defaults) and the paper's network (256×256, student `full`), per tfjs
 *     backend (unavailable ones reported with initBackend's reason);
 *  2. the same PDN networks timed by the PyTorch peer in the same run, as ratios ours/PyTorch
 *     for the like-for-like PDN-only step and forward pass (our full detector step, with the
 *     MobileNetV2 teacher and the autoencoder, is reported beside them);
 *  3. RSS and `tf.memory().numTensors` over a long scoring run (goal: flat);
 *  4. end-to-end pipeline throughput and verdict latency through NATS against the bare model
 *     (`speed_pipeline.ts`).
 *
 * `--sections` picks the parts to run; the others are kept from the previous `speed.json`,
 * so one part can be re-measured without the ~30 minutes of the rest.
 *
 * Every measurement runs in its own Deno process, one at a time, so one failure (e.g. wasm
 * running out of its 4 GiB), a slow backend or a timeout cannot spoil the others, and RSS is
 * the measured run's alone. Writes
 * `bench/results/speed.{json,md}`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BackendSchema, ModelSchema, PdnWidthSchema } from "../src/config/schema.ts";
import type {
  MemoryRunJob,
  MemoryRunResult,
  MemorySample,
  SpeedBackend,
  SpeedCase,
  SpeedMeasurement,
  SpeedMetric,
} from "./speed_measure.ts";
import type { SpeedChildJob } from "./speed_child.ts";
import { ensureTorch, type PeerMode, type PeerTiming, runTorchPeer } from "./torch_peer.ts";
import { runChild } from "./child_process.ts";
import {
  type Environment,
  environment,
  fixed,
  markdownTable,
  RESULTS_DIR,
  startCommit,
  type Table,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { secondsSince } from "./timing.ts";
import { ortBackendName, ortThreadsOf } from "./speed_ort.ts";
import {
  DEFAULT_PIPELINE_OPTIONS,
  type PipelineBenchOptions,
  pipelineMarkdown,
  pipelineNotes,
  type PipelineSection,
  pipelineTable,
  pipelineVerdicts,
  runPipelineBench,
} from "./speed_pipeline.ts";

const CHILD_URL = new URL("./speed_child.ts", import.meta.url);
const BATCH = 8;
const METRICS: SpeedMetric[] = ["pdnForward", "pdnTrainStep", "detectorScore", "detectorTrainStep"];
const METRIC_LABELS: Record<SpeedMetric, string> = {
  pdnForward: "PDN forward",
  pdnTrainStep: "PDN-only train step",
  detectorScore: "detector scoring",
  detectorTrainStep: "detector train step (AD²)",
};

/** The two network configurations: the product default and the paper's EfficientAD-S. */
export function speedCases(): SpeedCase[] {
  const defaults = ModelSchema.parse({});
  return [
    { name: "default", imageSize: defaults.imageSize, studentWidth: defaults.studentWidth },
    { name: "paper", imageSize: 256, studentWidth: "full" },
  ];
}

/** The parts of the speed benchmark, selectable with `--sections`. */
export const SPEED_SECTIONS = ["nets", "memory", "pipeline"] as const;
/** One part: network timings (with the peer), the long scoring run, the pipeline. */
export type SpeedSection = (typeof SPEED_SECTIONS)[number];

/** Settings of a speed run. */
export interface SpeedOptions {
  /** Parts to run; the others are kept from the previous results. */
  sections: SpeedSection[];
  /** Backends to try, in order. */
  backends: SpeedBackend[];
  /** Cases by name. */
  cases: SpeedCase[];
  /** Most timed calls per measurement after the first call. */
  maxCalls: number;
  /** Stop repeating once timed calls took this many seconds. */
  budgetSeconds: number;
  /** Stop a measurement (kill its process) after this many seconds. */
  timeoutSeconds: number;
  /** Run the PyTorch peer. */
  peer: boolean;
  /** Merge the rows measured now into the previous results instead of replacing them. */
  keepOtherRows: boolean;
  /** Long scoring run settings (`images` 0 skips it). */
  memory: MemoryRunJob;
  /** Pipeline throughput and latency settings. */
  pipeline: PipelineBenchOptions;
}

/** One measurement of one metric, case and backend. */
export interface SpeedEntry {
  /** Case name. */
  caseName: string;
  /** Requested backend. */
  backend: SpeedBackend;
  /** What was timed. */
  metric: SpeedMetric;
  /** Images per call (below 8 only where batch 8 ran out of memory). */
  batch: number;
  /** Median ms per call (per image for `detectorScore`), or null. */
  ms: number | null;
  /** First call in ms (compilation included), or null. */
  firstCallMs: number | null;
  /** Timed calls. */
  calls: number;
  /** Why there is no number (unavailable backend, failure, timeout, skipped). */
  note?: string;
  /** Set on rows re-measured into an earlier run (`--keep-other-rows`): the command and date. */
  remeasured?: string;
}

/** One PyTorch peer timing. */
export interface PeerEntry {
  /** Case name. */
  caseName: string;
  /** `fwd` or `train`. */
  mode: PeerMode;
  /** The peer's result. */
  timing: PeerTiming;
}

/** Summary of the long scoring run. */
export interface MemorySummary extends Partial<MemoryVerdict> {
  /** Settings. */
  job: MemoryRunJob;
  /** Samples taken over the run (empty when it failed). */
  samples: MemorySample[];
  /** Steady-state scoring time per image. */
  msPerImage: number | null;
  /** Failure reason. */
  note?: string;
}

/** Whether the long run's memory stayed flat, and the numbers that decide it. */
export interface MemoryVerdict {
  /** numTensors at the last sample minus at the first. */
  tensorGrowth: number;
  /** wasm linear memory at the end minus after warm-up (MiB); null off wasm. */
  wasmGrowthMiB: number | null;
  /**
   * Highest RSS in the second half of the run minus the highest RSS between warm-up (10 %)
   * and half-way (MiB): garbage collection makes RSS saw-toothed, so new highs, not the last
   * sample, show growth.
   */
  rssNewHighMiB: number;
  /** No tensor or wasm growth and `rssNewHighMiB` under {@link RSS_NEW_HIGH_LIMIT_MIB}. */
  flat: boolean;
}

/** RSS new-high margin (MiB) under which the long run counts as flat. */
export const RSS_NEW_HIGH_LIMIT_MIB = 64;

/** Decides whether memory stayed flat over samples in run order (at least one). */
export function memoryVerdict(samples: readonly MemorySample[], images: number): MemoryVerdict {
  if (samples.length === 0) throw new RangeError("memoryVerdict needs at least one sample");
  const first = samples[0];
  const last = samples[samples.length - 1];
  const warm = samples.find((s) => s.imagesScored >= images * 0.1) ?? first;
  const firstHalf = samples.filter((s) =>
    s.imagesScored >= warm.imagesScored && s.imagesScored <= images / 2
  );
  const secondHalf = samples.filter((s) => s.imagesScored > images / 2);
  const highest = (list: readonly MemorySample[]) => Math.max(...list.map((s) => s.rssMiB));
  const rssNewHighMiB = secondHalf.length && firstHalf.length
    ? highest(secondHalf) - highest(firstHalf)
    : 0;
  const tensorGrowth = last.numTensors - first.numTensors;
  const wasmGrowthMiB = last.wasmMemoryMiB !== null && warm.wasmMemoryMiB !== null
    ? last.wasmMemoryMiB - warm.wasmMemoryMiB
    : null;
  return {
    tensorGrowth,
    wasmGrowthMiB,
    rssNewHighMiB,
    flat: tensorGrowth === 0 && (wasmGrowthMiB ?? 0) === 0 &&
      rssNewHighMiB < RSS_NEW_HIGH_LIMIT_MIB,
  };
}

/** Everything speed.json records. */
export interface SpeedReport {
  /** Benchmark name. */
  benchmark: "speed";
  /** Machine and software. */
  environment: Environment;
  /** Settings. */
  options: SpeedOptions;
  /** Our measurements. */
  entries: SpeedEntry[];
  /** PyTorch peer measurements. */
  peer: PeerEntry[];
  /** Long scoring run. */
  memory: MemorySummary | null;
  /** Pipeline throughput and latency. */
  pipeline: PipelineSection;
  /** Wall-clock seconds of the whole benchmark. */
  wallSeconds: number;
}

/** Runs every measurement, one at a time, printing progress. */
export async function runSpeed(options: SpeedOptions): Promise<SpeedReport> {
  const start = performance.now();
  const entries: SpeedEntry[] = [];
  const peer: PeerEntry[] = [];
  const unavailable = new Map<SpeedBackend, string>();
  const log = (text: string) => console.log(`[${secondsSince(start)} s] ${text}`);
  const run = (section: SpeedSection) => options.sections.includes(section);
  const peerProblem = options.peer && run("nets") ? await ensureTorch(log) : null;
  for (const speedCase of run("nets") ? options.cases : []) {
    if (options.peer && peerProblem) {
      for (const mode of ["fwd", "train"] as const) {
        peer.push({ caseName: speedCase.name, mode, timing: { ok: false, reason: peerProblem } });
      }
      log(`${speedCase.name} PyTorch: ${peerProblem}`);
    } else if (options.peer) {
      for (const mode of ["fwd", "train"] as const) {
        const timing = await runTorchPeer(mode, speedCase.studentWidth, speedCase.imageSize, BATCH);
        peer.push({ caseName: speedCase.name, mode, timing });
        log(
          `${speedCase.name} PyTorch ${mode}: ` +
            (timing.ok ? `${timing.medianMs} ms (threads=${timing.threads})` : timing.reason),
        );
      }
    }
    for (const backend of options.backends) {
      for (const metric of METRICS) {
        let batch = BATCH;
        while (true) {
          const entry = await measureEntry(
            { speedCase, backend, metric, batch },
            options,
            entries,
            unavailable,
          );
          entries.push(entry);
          log(
            `${speedCase.name} ${backend} ${METRIC_LABELS[metric]} (batch ${batch}): ` +
              (entry.ms === null ? entry.note : `${fixed(entry.ms, 1)} ms` +
                (metric === "detectorScore" ? " per image" : "") + ` (${entry.calls} timed)`),
          );
          // Out of memory in a training step: find the largest batch that fits (the wasm
          // backend's memory is capped at 4 GiB), down to the detector's minimum of 2.
          if (!isOutOfMemory(entry.note) || !metric.endsWith("TrainStep") || batch <= 2) break;
          batch /= 2;
        }
        if (unavailable.has(backend)) break;
      }
    }
  }
  const memory = run("memory") && options.memory.images > 0 ? await runMemory(options, log) : null;
  const pipeline: PipelineSection = run("pipeline")
    ? await runPipelineBench(options.pipeline, log)
    : { measured: false, reason: "not run (`--sections`)" };
  return {
    benchmark: "speed",
    environment: await environment(),
    options,
    entries,
    peer,
    memory,
    pipeline,
    wallSeconds: secondsSince(start),
  };
}

/** True for the errors tfjs-wasm gives when its memory is exhausted. */
function isOutOfMemory(note: string | undefined): boolean {
  return note !== undefined &&
    /memory access out of bounds|out of memory|maximum memory size|cannot enlarge memory|allocation failed/i
      .test(note);
}

async function measureEntry(
  { speedCase, backend, metric, batch }: {
    speedCase: SpeedCase;
    backend: SpeedBackend;
    metric: SpeedMetric;
    batch: number;
  },
  options: SpeedOptions,
  done: readonly SpeedEntry[],
  unavailable: Map<SpeedBackend, string>,
): Promise<SpeedEntry> {
  const base = {
    caseName: speedCase.name,
    backend,
    metric,
    batch,
    ms: null,
    firstCallMs: null,
    calls: 0,
  };
  const reason = unavailable.get(backend);
  if (reason) return { ...base, note: `unavailable: ${reason}` };
  const skip = skipReason(speedCase, backend, metric, options, done);
  if (skip) return { ...base, note: skip };
  const outcome = await runChild<SpeedChildJob, SpeedMeasurement>(
    CHILD_URL,
    {
      kind: "speed",
      job: {
        backend,
        speedCase,
        metric,
        batch,
        maxCalls: options.maxCalls,
        budgetMs: options.budgetSeconds * 1000,
      },
    },
    options.timeoutSeconds * 1000,
  );
  if (!outcome.ok) return { ...base, note: outcome.error.split("\n")[0] };
  const measured = outcome.result;
  if (!measured.ok) {
    if (measured.unavailable) unavailable.set(backend, measured.reason);
    return {
      ...base,
      note: measured.unavailable ? `unavailable: ${measured.reason}` : measured.reason,
    };
  }
  const per = metric === "detectorScore" ? batch : 1;
  return {
    ...base,
    ms: measured.timing.medianMs / per,
    firstCallMs: measured.timing.firstCallMs,
    calls: measured.timing.samplesMs.length,
  };
}

/**
 * Skips a measurement that cannot finish in time: when the same backend and metric on a case
 * with less work timed out, or two calls at its steady time × the work ratio (an extrapolation,
 * said so in the note) exceed the timeout.
 */
function skipReason(
  speedCase: SpeedCase,
  backend: SpeedBackend,
  metric: SpeedMetric,
  options: SpeedOptions,
  done: readonly SpeedEntry[],
): string | undefined {
  for (const other of options.cases) {
    const ratio = workOf(speedCase) / workOf(other);
    if (other === speedCase || ratio <= 1) continue;
    const previous = done.find((e) =>
      e.caseName === other.name && e.backend === backend && e.metric === metric &&
      e.batch === BATCH
    );
    if (!previous) continue;
    if (previous.ms === null && previous.note?.startsWith("not finished")) {
      return `skipped: timed out on the smaller "${other.name}" case`;
    }
    if (previous.ms !== null) {
      // Steady per-call time scaled by the work ratio, twice: the first call and one timed call.
      const perCall = previous.ms * (metric === "detectorScore" ? BATCH : 1);
      const estimate = (2 * perCall * ratio) / 1000;
      if (estimate > options.timeoutSeconds) {
        return `skipped: 2 calls ≈ 2 × ${fixed(perCall / 1000, 1)} s ("${other.name}") × ` +
          `${ratio.toFixed(0)} (work ratio) ≈ ${estimate.toFixed(0)} s > ` +
          `${options.timeoutSeconds} s limit`;
      }
    }
  }
  return undefined;
}

/** Relative conv work of a case: pixels × (width multiplier)² (PDN channel products). */
function workOf(speedCase: SpeedCase): number {
  const widthScale = { tiny: 0.5, small: 1, full: 2 }[speedCase.studentWidth];
  return speedCase.imageSize ** 2 * widthScale ** 2;
}

async function runMemory(
  options: SpeedOptions,
  log: (text: string) => void,
): Promise<MemorySummary> {
  const job = options.memory;
  log(
    `long scoring run: ${job.images} images, ${job.speedCase.imageSize} px, ` +
      `${job.speedCase.studentWidth}, ${job.backend}`,
  );
  // Generous limit: ten times a pessimistic 100 ms per image, at least 10 minutes.
  const timeoutMs = Math.max(600_000, job.images * 1000);
  const outcome = await runChild<SpeedChildJob, MemoryRunResult>(
    CHILD_URL,
    { kind: "memory", job },
    timeoutMs,
  );
  const failed = (note: string): MemorySummary => ({ job, samples: [], msPerImage: null, note });
  if (!outcome.ok) return failed(outcome.error.split("\n")[0]);
  if (!outcome.result.ok) return failed(outcome.result.reason);
  const { samples, msPerImage } = outcome.result;
  const verdict = memoryVerdict(samples, job.images);
  log(
    `long run: numTensors growth ${verdict.tensorGrowth}, wasm memory growth ` +
      `${verdict.wasmGrowthMiB} MiB, RSS new high ${verdict.rssNewHighMiB} MiB → ` +
      `${verdict.flat ? "flat" : "NOT flat"}; ${fixed(msPerImage, 1)} ms/image`,
  );
  return { job, samples, msPerImage, ...verdict };
}

/** Our timings beside the peer's: one row per case, backend and metric. */
export function speedTable(report: SpeedReport): Table {
  const rows: string[][] = [];
  for (const entry of report.entries) {
    const peerMode: PeerMode | undefined = entry.metric === "pdnForward"
      ? "fwd"
      : entry.metric === "pdnTrainStep"
      ? "train"
      : undefined;
    // The peer runs batch 8 only: other batches have no like-for-like partner.
    const peer = peerMode && entry.batch === BATCH
      ? report.peer.find((p) => p.caseName === entry.caseName && p.mode === peerMode)?.timing
      : undefined;
    const peerMs = peer?.ok ? peer.medianMs : null;
    const ratio = entry.ms !== null && peerMs ? `${(entry.ms / peerMs).toFixed(2)}×` : "—";
    const speedCase = report.options.cases.find((c) => c.name === entry.caseName)!;
    rows.push([
      `${entry.caseName} (${speedCase.imageSize} px, ${speedCase.studentWidth})`,
      entry.backend,
      `${METRIC_LABELS[entry.metric]} (batch ${entry.batch})` +
      (entry.metric === "detectorScore" ? ", per image" : ""),
      entry.ms === null ? "—" : fixed(entry.ms, 1),
      peerMode && !entry.note?.startsWith("unavailable")
        ? (peerMs === null ? (peer && !peer.ok ? "failed" : "—") : fixed(peerMs, 0))
        : "",
      peerMode && !entry.note?.startsWith("unavailable") ? ratio : "",
      [shortNote(entry.note), entry.remeasured ? `re-measured: ${entry.remeasured}` : ""]
        .filter(Boolean).join("; "),
    ]);
  }
  return {
    headers: ["case", "backend", "what", "ours ms", "PyTorch ms", "ours/PyTorch", "note"],
    rows,
    align: ["left", "left", "left", "right", "right", "right", "left"],
  };
}

/**
 * The engines side by side, one row per case and metric, one column per backend of the run
 * (tfjs backends and `onnxruntime-Nt`), then the PyTorch peer: ms at batch 8 (per image for
 * scoring), and for the PDN rows each engine's ratio to the peer.
 */
export function engineTable(report: SpeedReport): Table {
  const backends = [...new Set(report.entries.filter((e) => e.ms !== null).map((e) => e.backend))];
  const rows: string[][] = [];
  for (const speedCase of report.options.cases) {
    for (const metric of METRICS) {
      const peerMode = metric === "pdnForward" ? "fwd" : metric === "pdnTrainStep" ? "train" : null;
      const peer = report.peer.find((p) => p.caseName === speedCase.name && p.mode === peerMode)
        ?.timing;
      const peerMs = peer?.ok ? peer.medianMs : null;
      const cells = backends.map((backend) => {
        const entry = report.entries.find((e) =>
          e.caseName === speedCase.name && e.backend === backend && e.metric === metric &&
          e.ms !== null
        );
        if (!entry || entry.ms === null) return "—";
        const batch = entry.batch === BATCH ? "" : ` (batch ${entry.batch})`;
        const ratio = peerMs && entry.batch === BATCH
          ? ` (${(entry.ms / peerMs).toFixed(2)}×)`
          : "";
        return `${fixed(entry.ms, 1)}${batch}${ratio}`;
      });
      if (cells.every((c) => c === "—") && peerMs === null) continue;
      rows.push([
        `${speedCase.name} (${speedCase.imageSize} px, ${speedCase.studentWidth})`,
        METRIC_LABELS[metric] + (metric === "detectorScore" ? ", per image" : ""),
        ...cells,
        peerMode ? (peerMs === null ? "—" : fixed(peerMs, 0)) : "",
      ]);
    }
  }
  return {
    headers: ["case", "what (ms)", ...backends, "PyTorch"],
    rows,
    align: ["left", "left", ...backends.map(() => "right" as const), "right"],
  };
}

/** A table cell for a note: full notes are listed under the table ({@link noteList}). */
function shortNote(note: string | undefined): string {
  if (!note) return "";
  if (note.startsWith("unavailable")) return "unavailable (reason below)";
  return note.length > 90 ? `${note.slice(0, 87)}...` : note;
}

/** Each distinct reason a backend was unavailable, and every other long note, in full. */
export function noteList(report: SpeedReport): string[] {
  const notes = new Set<string>();
  for (const entry of report.entries) {
    if (entry.note && (entry.note.startsWith("unavailable") || entry.note.length > 90)) {
      notes.add(`${entry.backend}: ${entry.note}`);
    }
  }
  for (const p of report.peer) {
    if (!p.timing.ok) notes.add(`PyTorch ${p.caseName} ${p.mode}: ${p.timing.reason}`);
  }
  return [...notes];
}

/** The long run's samples. */
export function memoryTable(memory: MemorySummary): Table {
  return {
    headers: [
      "images scored",
      "seconds",
      "RSS MiB",
      "JS heap MiB",
      "wasm memory MiB",
      "numTensors",
      "tensor MiB",
    ],
    rows: memory.samples.map((s) => [
      String(s.imagesScored),
      fixed(s.seconds, 1),
      String(s.rssMiB),
      String(s.jsHeapMiB),
      s.wasmMemoryMiB === null ? "—" : String(s.wasmMemoryMiB),
      String(s.numTensors),
      fixed(s.tensorMiB, 1),
    ]),
  };
}

function speedMarkdown(report: SpeedReport): string {
  const env = report.environment;
  const peerInfo = report.peer.find((p) => p.timing.ok)?.timing;
  const lines = [
    "# Speed benchmark",
    "",
    (env.command ? `Command: \`${env.command}\`. ` : "") +
    `Run: ${env.date}, commit ${env.commit}, Deno ${env.deno}, tfjs ${env.tfjs}, ${env.cpu}, ` +
    `${env.memoryGiB} GiB; ${report.wallSeconds} s in all. Median of up to ` +
    `${report.options.maxCalls} timed calls after one warm-up call (fewer when calls are ` +
    `slow), each measurement in its own Deno process, one at a time. tfjs wasm is single-threaded ` +
    "under Deno" +
    (peerInfo?.ok
      ? `; the PyTorch peer (torch ${peerInfo.torch}) ran ${peerInfo.threads} thread(s).`
      : "."),
    "",
    "PDN rows are like for like with the peer (`/work/shared/peer/pdn_torch.py`): a frozen " +
    "random PDN teacher, a PDN student with the same output channels (384/192/96 for " +
    "full/small/tiny), hard-mined (p = 0.999) squared error, one Adam step. The detector rows " +
    "are the product's real work: MobileNetV2 teacher, two-headed student, autoencoder and the " +
    "AD² loss; scoring is per image in batches of 8.",
    "",
    markdownTable(speedTable(report)),
    "",
    ...noteList(report).map((note) => `- ${note}`),
    "",
    "## Engines side by side",
    "",
    "ms at batch 8 (scoring: per image), ratio to the PyTorch peer of the same run in brackets. " +
    "`onnxruntime-Nt`: ONNX Runtime (CPU) with N intra-op threads on the graph exported from " +
    "the live weights (`src/model/onnx/`); its train steps run on the ORT training engine " +
    "(`training.engine`, the trainer's default: forward and hand-built backward graphs on ORT, " +
    "the loss's output gradient on tfjs-wasm, Adam in TypeScript; " +
    "`src/model/training_engine.ts`). Load " +
    `averages at the end of the run: ${
      report.environment.loadAverage?.map((l) => l.toFixed(2)).join(", ") ?? "n/a"
    } ` +
    "(the machine is shared: other work slows every column alike, the peer's too).",
    "",
    markdownTable(engineTable(report)),
    "",
    "## Long scoring run (RSS and tensors)",
    "",
  ];
  const memory = report.memory;
  if (!memory) lines.push("Not run (`--images 0`).");
  else if (memory.samples.length === 0) lines.push(`Failed: ${memory.note}`);
  else {
    const c = memory.job.speedCase;
    lines.push(
      `${memory.job.images} synthetic images scored in batches of ${memory.job.batch} ` +
        `(${c.imageSize} px, student ${c.studentWidth}, ${memory.job.backend}), ` +
        `${fixed(memory.msPerImage, 1)} ms per image, in a process of its own. numTensors ` +
        `growth ${memory.tensorGrowth}; wasm memory growth after the first 10 % ` +
        `${memory.wasmGrowthMiB ?? "n/a"} MiB; highest RSS of the second half minus highest ` +
        `RSS from 10 % to half-way ${memory.rssNewHighMiB} MiB → ` +
        `**${memory.flat ? "flat" : "NOT flat"}** (flat: no tensor or wasm-memory growth and ` +
        `an RSS new high under ${RSS_NEW_HIGH_LIMIT_MIB} MiB; RSS saw-tooths with garbage ` +
        "collection of the JS heap).",
      "",
      markdownTable(memoryTable(memory)),
    );
  }
  lines.push("", pipelineMarkdown(report.pipeline));
  return lines.join("\n");
}

/**
 * `fresh` with the parts it did not run taken from `previous` (the last `speed.json`): the
 * network timings come with the run's environment and options, which describe them.
 */
export function mergeSpeedReports(
  fresh: SpeedReport,
  previous: SpeedReport | null,
  sections: readonly SpeedSection[],
  keepOtherRows = false,
): SpeedReport {
  if (!previous) return fresh;
  let nets = sections.includes("nets") ? fresh : previous;
  if (sections.includes("nets") && keepOtherRows) {
    // Rows measured now replace the same (case, backend, metric) rows; the rest, and the run
    // they came from (header, peer timings not re-run), stay.
    const key = (e: SpeedEntry) => `${e.caseName}/${e.backend}/${e.metric}`;
    const remeasured = new Set(fresh.entries.map(key));
    const stamp = `${fresh.environment.command ?? "bench:speed"}, ${fresh.environment.date}`;
    const peerKey = (p: PeerEntry) => `${p.caseName}/${p.mode}`;
    const freshPeers = new Set(fresh.peer.map(peerKey));
    nets = {
      ...previous,
      entries: [
        ...previous.entries.filter((e) => !remeasured.has(key(e))),
        ...fresh.entries.map((e) => ({ ...e, remeasured: stamp })),
      ],
      peer: [...previous.peer.filter((p) => !freshPeers.has(peerKey(p))), ...fresh.peer],
    };
    const order = (e: SpeedEntry) => [
      previous.options.cases.findIndex((c) => c.name === e.caseName),
      previous.options.backends.indexOf(e.backend),
      METRICS.indexOf(e.metric),
    ];
    nets.entries.sort((a, b) => {
      const [x, y] = [order(a), order(b)];
      return x[0] - y[0] || x[1] - y[1] || x[2] - y[2];
    });
  }
  return {
    ...nets,
    memory: sections.includes("memory") ? fresh.memory : previous.memory,
    pipeline: sections.includes("pipeline") ? fresh.pipeline : previous.pipeline,
  };
}

async function readPreviousReport(): Promise<SpeedReport | null> {
  try {
    const text = await Deno.readTextFile(new URL("speed.json", RESULTS_DIR));
    const report = JSON.parse(text) as SpeedReport;
    // Files from before batch halving have no `batch`: every entry then ran batch 8.
    report.entries = report.entries.map((entry) => ({ ...entry, batch: entry.batch ?? BATCH }));
    return report;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

const USAGE = `deno task bench:speed [options]
  --backends a,b      backends to try (default wasm,onnxruntime-1t,onnxruntime-2t,cpu,webgpu,
                      tensorflow,tensorflow-gpu); onnxruntime-Nt is ONNX Runtime, N threads
  --cases a,b         default,paper (default both)
  --max-calls N       timed calls per measurement after the warm-up (default 3)
  --budget-s S        stop repeating after S s of timed calls (default 30)
  --timeout-s S       stop one measurement after S s (default 600)
  --no-peer           skip the PyTorch peer
  --images N          long scoring run length (default 10000; 0 skips it)
  --memory-size N     long run image side (default 64)
  --memory-width W    long run student width (default tiny)
  --sections a,b      parts to run: nets,memory,pipeline (default all); the others are kept
                      from the previous bench/results/speed.json
  --rerender          only rewrite speed.md from speed.json (alone)
  --keep-other-rows   with nets: the rows measured now replace the same rows of the previous
                      speed.json and every other row stays (e.g. --cases paper --backends wasm)
  --pipeline-images N images per pipeline phase (default ${DEFAULT_PIPELINE_OPTIONS.images})
  --pipeline-rate F   paced phase publish rate as a fraction of the saturated throughput
                      (default ${DEFAULT_PIPELINE_OPTIONS.rateFraction})`;

/** Parses the command line. */
export function parseSpeedArgs(args: string[]): SpeedOptions {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      backends: {
        type: "string",
        default: "wasm,onnxruntime-1t,onnxruntime-2t,cpu,webgpu,tensorflow,tensorflow-gpu",
      },
      cases: { type: "string", default: "default,paper" },
      "max-calls": { type: "string", default: "3" },
      "budget-s": { type: "string", default: "30" },
      "timeout-s": { type: "string", default: "600" },
      "no-peer": { type: "boolean", default: false },
      "keep-other-rows": { type: "boolean", default: false },
      images: { type: "string", default: "10000" },
      "memory-size": { type: "string", default: "64" },
      "memory-width": { type: "string", default: "tiny" },
      sections: { type: "string", default: SPEED_SECTIONS.join(",") },
      "pipeline-images": { type: "string", default: String(DEFAULT_PIPELINE_OPTIONS.images) },
      "pipeline-rate": { type: "string", default: String(DEFAULT_PIPELINE_OPTIONS.rateFraction) },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const all = speedCases();
  const cases = values.cases.split(",").map((name) => {
    const found = all.find((c) => c.name === name.trim());
    if (!found) throw new Error(`--cases: unknown case "${name}" (default, paper)`);
    return found;
  });
  const number = (text: string, what: string, min: number) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < min) throw new Error(`--${what} must be a number ≥ ${min}`);
    return n;
  };
  const memorySize = number(values["memory-size"], "memory-size", 32);
  const sections = values.sections.split(",").map((name) => {
    const section = SPEED_SECTIONS.find((s) => s === name.trim());
    if (!section) throw new Error(`--sections: unknown section "${name}" (nets, memory, pipeline)`);
    return section;
  });
  const rateFraction = number(values["pipeline-rate"], "pipeline-rate", 0);
  if (!(rateFraction > 0 && rateFraction <= 1)) {
    throw new Error("--pipeline-rate must be in (0, 1]");
  }
  return {
    sections,
    backends: values.backends.split(",").map((b) => parseSpeedBackend(b.trim())),
    cases,
    maxCalls: Math.round(number(values["max-calls"], "max-calls", 1)),
    budgetSeconds: number(values["budget-s"], "budget-s", 0),
    timeoutSeconds: number(values["timeout-s"], "timeout-s", 1),
    peer: !values["no-peer"],
    keepOtherRows: values["keep-other-rows"],
    memory: {
      backend: "wasm",
      speedCase: {
        name: "memory",
        imageSize: ModelSchema.shape.imageSize.parse(memorySize),
        studentWidth: PdnWidthSchema.parse(values["memory-width"]),
      },
      images: Math.round(number(values.images, "images", 0)),
      batch: BATCH,
      samples: 20,
    },
    pipeline: {
      ...DEFAULT_PIPELINE_OPTIONS,
      images: Math.round(number(values["pipeline-images"], "pipeline-images", 10)),
      rateFraction,
    },
  };
}

/**
 * The command: parses `args`, runs every measurement and writes the results.
 *
 * @returns the exit code (0 ok, 2 bad arguments). Unavailable backends and failed
 *   measurements are results, not errors.
 */
export async function speedMain(args: string[]): Promise<number> {
  void startCommit(); // before anything runs: the results name the code they ran
  if (args.length === 1 && args[0] === "--rerender") {
    // Rewrites speed.md from speed.json (after a change to the markdown), measuring nothing.
    const previous = await readPreviousReport();
    if (!previous) {
      console.error(`--rerender: no readable ${new URL("speed.json", RESULTS_DIR).pathname}`);
      return 1;
    }
    console.log(`wrote ${await writeResultText("speed.md", speedMarkdown(previous))}`);
    return 0;
  }
  let options: SpeedOptions;
  try {
    options = parseSpeedArgs(args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  const fresh = await runSpeed(options);
  const partial = options.keepOtherRows ||
    SPEED_SECTIONS.some((section) => !options.sections.includes(section));
  const report = mergeSpeedReports(
    fresh,
    partial ? await readPreviousReport() : null,
    options.sections,
    options.keepOtherRows,
  );
  if (options.sections.includes("nets")) {
    console.log("\n" + textTable(speedTable(report)));
    for (const note of noteList(report)) console.log(`- ${note}`);
  }
  if (options.sections.includes("memory") && report.memory?.samples.length) {
    console.log("\n" + textTable(memoryTable(report.memory)));
  }
  if (options.sections.includes("pipeline") && report.pipeline.measured) {
    console.log("\n" + pipelineNotes(report.pipeline).join("\n"));
    console.log("\n" + textTable(pipelineTable(report.pipeline)));
    for (const line of pipelineVerdicts(report.pipeline)) console.log(`- ${line}`);
  }
  const json = await writeResultJson("speed.json", report);
  const md = await writeResultText("speed.md", speedMarkdown(report));
  console.log(`\nwrote ${json}\nwrote ${md}`);
  return 0;
}

if (import.meta.main) Deno.exit(await speedMain(Deno.args));

/** A `--backends` entry: a tfjs backend name or `onnxruntime-Nt`. */
function parseSpeedBackend(name: string): SpeedBackend {
  const threads = ortThreadsOf(name);
  if (threads !== null) {
    if (threads < 1) throw new Error(`--backends: ${name} needs at least 1 thread`);
    return ortBackendName(threads) as SpeedBackend;
  }
  const parsed = BackendSchema.safeParse(name);
  if (!parsed.success) {
    throw new Error(
      `--backends: unknown backend "${name}" (${BackendSchema.options.join(", ")}, onnxruntime-Nt)`,
    );
  }
  return parsed.data;
}
