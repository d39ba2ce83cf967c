/**
 * The live mode of the inspection benchmark (`deno task bench:inspect --live`): each surface's
 * polluted camera stream served to a line with the line's own configuration (`--config`,
 * default `pipelines/demo.json`) from a cold start at 10 images/s, the held-out test set scored
 * by the line's scorer at wall-time points (`bench/inspect_live_run.ts` has the protocol).
 * Cells (surface × ratio) run one after another, each on its own server and line, so each is
 * a cold start with the machine to itself.
 *
 * Writes `bench/results/<name>.{json,md,png}` (default name `inspect-live`) after every cell.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { PipelineConfig } from "../src/config/schema.ts";
import { loadPipelineConfig } from "../src/pipeline/config.ts";
import {
  DEFECT_KINDS,
  DEFECT_SIZE_NAMES,
  PHOTO_SURFACES,
  type PhotoSurface,
  type Surface,
  SURFACES,
} from "../src/data/inspect_surfaces.ts";
import { ensureSkimageTextures, loadSkimagePhoto } from "../src/data/skimage_textures.ts";
import { numberList, positiveInt, ratioList } from "./cli_args.ts";
import { ACCURACY_VARIANTS, parseVariantName, type VariantName } from "./accuracy_variants.ts";
import {
  type CameraFormat,
  describeLiveJob,
  type LiveInspectConfig,
  type LiveInspectJob,
  type LiveInspectResult,
  type LivePoint,
  runLiveInspectCell,
} from "./inspect_live_run.ts";
import {
  type Environment,
  environment,
  failureLines,
  fixed,
  lineChartSvg,
  markdownTable,
  RESULTS_DIR,
  startCommit,
  svgToPng,
  type Table,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { secondsSince } from "./timing.ts";

/** Defaults of the live mode (the goals: 10 images/s, 10 minutes from a cold start). */
export const LIVE_DEFAULTS = {
  surfaces: ["brick", "metal", "wood", "pcb"] as Surface[],
  ratios: [0.1, 0.3],
  side: 256,
  rate: 10,
  durationSeconds: 600,
  points: [60, 120, 300, 600],
  testPerCell: 2,
  testNormal: 36,
  format: "png" as CameraFormat,
  seed: 1,
  name: "inspect-live",
};

/** Everything the results files record. */
export interface LiveInspectReport {
  benchmark: "inspect-live";
  /** The line configuration file served. */
  lineConfig: string;
  /** That configuration, as parsed (the line's defaults filled in). */
  pipeline: PipelineConfig;
  config: LiveInspectConfig;
  jobs: LiveInspectJob[];
  environment: Environment;
  loadAverageAtStart: number[];
  wallSeconds: number;
  /** Each cell's result with the load averages when it ended. */
  results: (LiveInspectResult & { loadAverageAtEnd: number[] })[];
  failures: { job: LiveInspectJob; error: string }[];
  /** Set while the run is in progress (or was stopped): cells done so far. */
  partial?: { done: number; of: number };
}

const USAGE = `deno task bench:inspect --live [options]
  --surfaces a,b        of ${SURFACES} (default ${LIVE_DEFAULTS.surfaces})
  --ratios 0.1,0.3      pollution ratios (default ${LIVE_DEFAULTS.ratios})
  --config FILE         line served (default pipelines/demo.json), unchanged but for its name
                        and metrics (off)
  --variants a,b        also/instead serve these training variants over the line's training
                        (e.g. ad2,baseline; default: the line as configured)
  --duration S          seconds the camera publishes (default ${LIVE_DEFAULTS.durationSeconds})
  --points a,b,...      evaluation points, seconds after the first image, each ≤ --duration
                        (default ${LIVE_DEFAULTS.points})
  --rate HZ             camera images per second (default ${LIVE_DEFAULTS.rate})
  --format png|jpeg     camera encoding (default ${LIVE_DEFAULTS.format})
  --test-per-cell N     defective test images per kind × size (default ${LIVE_DEFAULTS.testPerCell})
  --test-normal N       normal test images (default ${LIVE_DEFAULTS.testNormal})
  --seed N              (default ${LIVE_DEFAULTS.seed})
  --name NAME           results file stem (default ${LIVE_DEFAULTS.name})
  --rerender            rewrite NAME.{md,png} from NAME.json; serves nothing`;

/** Parsed command line of the live mode. */
export interface LiveInspectArgs {
  jobs: LiveInspectJob[];
  config: LiveInspectConfig;
  lineConfig: string;
  name: string;
  rerender: boolean;
  help: boolean;
}

/** Parses the live mode's flags (`--live` already removed). */
export function parseLiveInspectArgs(args: string[]): LiveInspectArgs {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      surfaces: { type: "string" },
      ratios: { type: "string" },
      config: { type: "string", default: "pipelines/demo.json" },
      variants: { type: "string" },
      duration: { type: "string" },
      points: { type: "string" },
      rate: { type: "string" },
      format: { type: "string" },
      "test-per-cell": { type: "string" },
      "test-normal": { type: "string" },
      seed: { type: "string" },
      name: { type: "string", default: LIVE_DEFAULTS.name },
      rerender: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  const d = LIVE_DEFAULTS;
  const surfaces = values.surfaces
    ? values.surfaces.split(",").map((name) => {
      if (!(SURFACES as readonly string[]).includes(name)) {
        throw new Error(`--surfaces: unknown surface "${name}" (known: ${SURFACES})`);
      }
      return name as Surface;
    })
    : d.surfaces;
  const ratios = values.ratios ? ratioList(values.ratios) : d.ratios;
  if (ratios.some((r) => r >= 1)) throw new Error("--ratios: a ratio must be below 1");
  const durationSeconds = values.duration ? Number(values.duration) : d.durationSeconds;
  if (!(durationSeconds > 0)) throw new Error("--duration must be a positive number of seconds");
  const points = values.points
    ? numberList(values.points, "points").sort((a, b) => a - b)
    : d.points.filter((p) => p <= durationSeconds);
  if (points.length === 0 || points.some((p) => !(p >= 0 && p <= durationSeconds))) {
    throw new Error(`--points: each point must be in [0, ${durationSeconds}] (--duration)`);
  }
  const rate = values.rate ? Number(values.rate) : d.rate;
  if (!(rate > 0)) throw new Error("--rate must be a positive number of images per second");
  const format = (values.format ?? d.format) as CameraFormat;
  if (format !== "png" && format !== "jpeg") throw new Error("--format must be png or jpeg");
  const variants: (VariantName | undefined)[] = values.variants
    ? values.variants.split(",").map(parseVariantName)
    : [undefined];
  const seed = values.seed ? Number(values.seed) : d.seed;
  if (!Number.isInteger(seed)) throw new Error("--seed must be an integer");
  return {
    // Ratios outermost: a run stopped early has every surface at the first ratio; variants
    // innermost: it has compared them on the same surfaces.
    jobs: ratios.flatMap((ratio) =>
      surfaces.flatMap((surface) =>
        variants.map((variant) => variant ? { surface, ratio, variant } : { surface, ratio })
      )
    ),
    config: {
      side: d.side,
      rate,
      durationSeconds,
      points,
      testPerCell: positiveInt(values["test-per-cell"], d.testPerCell, "test-per-cell"),
      testNormal: positiveInt(values["test-normal"], d.testNormal, "test-normal"),
      format,
      seed,
    },
    lineConfig: values.config,
    name: values.name,
    rerender: values.rerender,
    help: values.help,
  };
}

/** Runs the live mode; returns the process exit code. */
export async function inspectLiveMain(args: string[]): Promise<number> {
  await startCommit();
  let parsed: LiveInspectArgs;
  try {
    parsed = parseLiveInspectArgs(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(USAGE);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  if (parsed.rerender) {
    const stored = JSON.parse(await Deno.readTextFile(new URL(`${parsed.name}.json`, RESULTS_DIR)));
    await renderLiveReport(parsed.name, stored as LiveInspectReport);
    return 0;
  }
  const report = await runLiveInspect(parsed, console.log);
  await renderLiveReport(parsed.name, report);
  return report.failures.length > 0 ? 1 : 0;
}

/**
 * Runs every cell of `parsed` in turn; the results JSON is rewritten after each cell, so a run
 * stopped early leaves what it finished.
 */
export async function runLiveInspect(
  parsed: Omit<LiveInspectArgs, "rerender" | "help">,
  log: (line: string) => void,
): Promise<LiveInspectReport> {
  const { jobs, config, name } = parsed;
  const pipeline = await loadPipelineConfig(parsed.lineConfig);
  if (jobs.some((j) => (PHOTO_SURFACES as readonly string[]).includes(j.surface))) {
    await ensureSkimageTextures(undefined, log);
  }
  log(
    `inspect --live: ${jobs.length} cell(s) of ${config.durationSeconds} s at ${config.rate}/s, ` +
      `points ${config.points} s, line ${parsed.lineConfig}`,
  );
  const loadAverageAtStart = Deno.loadavg();
  const start = performance.now();
  const results: LiveInspectReport["results"] = [];
  const failures: LiveInspectReport["failures"] = [];
  const reportOf = async (): Promise<LiveInspectReport> => {
    const done = results.length + failures.length;
    return {
      benchmark: "inspect-live",
      lineConfig: parsed.lineConfig,
      pipeline,
      config,
      jobs,
      environment: await environment(),
      loadAverageAtStart,
      wallSeconds: secondsSince(start),
      results: [...results],
      failures: [...failures],
      ...(done < jobs.length ? { partial: { done, of: jobs.length } } : {}),
    };
  };
  for (const job of jobs) {
    try {
      const photo = (PHOTO_SURFACES as readonly string[]).includes(job.surface)
        ? await loadSkimagePhoto(job.surface as PhotoSurface)
        : undefined;
      const result = await runLiveInspectCell({ job, config, pipeline, photo, log });
      results.push({ ...result, loadAverageAtEnd: Deno.loadavg() });
    } catch (error) {
      const why = error instanceof Error ? error.message : String(error);
      log(`live ${describeLiveJob(job)} FAILED: ${why}`);
      failures.push({ job, error: why });
    }
    if (results.length + failures.length < jobs.length) {
      await writeResultJson(`${name}.json`, await reportOf());
    }
  }
  return await reportOf();
}

function mean(values: readonly (number | null | undefined)[]): number {
  const finite = values.filter((v): v is number => v !== null && v !== undefined && isFinite(v));
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
}

/** Mean of a per-point quantity over a ratio's cells, or NaN unless every cell has it. */
function meanAt(
  results: readonly LiveInspectResult[],
  at: number,
  pick: (p: LivePoint) => number | null | undefined,
): number {
  const values = results.map((r) => {
    const point = r.points.find((p) => p.atSeconds === at);
    return point ? pick(point) : null;
  });
  return values.every((v) => v !== null && v !== undefined && isFinite(v)) ? mean(values) : NaN;
}

function stepsText(point: LivePoint | undefined): string {
  if (!point?.modelSteps) return "—";
  const [lo, hi] = point.modelSteps;
  return lo === hi ? String(hi) : `${lo}–${hi}`;
}

/** A table group: one ratio with the line's training or one variant. */
interface LiveGroup {
  ratio: number;
  variant?: VariantName;
}

/** The groups of `jobs`, in job order. */
export function liveGroups(jobs: readonly LiveInspectJob[]): LiveGroup[] {
  const groups: LiveGroup[] = [];
  for (const { ratio, variant } of jobs) {
    if (!groups.some((g) => g.ratio === ratio && g.variant === variant)) {
      groups.push(variant ? { ratio, variant } : { ratio });
    }
  }
  return groups;
}

function groupLabel(group: LiveGroup): string {
  return group.variant ? ACCURACY_VARIANTS[group.variant].label : "line";
}

/** The report's tables. */
export function liveInspectTables(report: LiveInspectReport): { title: string; table: Table }[] {
  const { config } = report;
  const points = config.points;
  const groups = liveGroups(report.jobs);
  const ofGroup = (g: LiveGroup) =>
    report.results.filter((r) => r.ratio === g.ratio && r.variant === g.variant);
  const pointOf = (r: LiveInspectResult, at: number) => r.points.find((p) => p.atSeconds === at);

  const perSurface: Table = {
    headers: ["surface", "r", "training", ...points.map((p) => `${p} s`)],
    rows: groups.flatMap((g) => [
      ...ofGroup(g).map((r) => [
        r.surface,
        String(g.ratio),
        groupLabel(g),
        ...points.map((at) => {
          const point = pointOf(r, at);
          if (!point) return "—";
          if (point.auroc === null) return `warming up (${point.verdicts.warming_up})`;
          return `${fixed(point.auroc)} (step ${stepsText(point)})`;
        }),
      ]),
      [
        "mean",
        String(g.ratio),
        groupLabel(g),
        ...points.map((at) => fixed(meanAt(ofGroup(g), at, (p) => p.auroc))),
      ],
    ]),
  };

  const meanTable: Table = {
    headers: [
      "r",
      "training",
      "t (s)",
      "images seen",
      "trainer step",
      "model step",
      "test verdicts scored / warming up",
      "image AUROC",
      "ST map",
      "AE map",
      "stream AUROC",
      "answered after (s)",
    ],
    rows: groups.flatMap((g) =>
      points.map((at) => {
        const cells = ofGroup(g);
        const sum = (pick: (p: LivePoint) => number) =>
          cells.reduce((n, r) => n + (pointOf(r, at) ? pick(pointOf(r, at)!) : 0), 0);
        return [
          String(g.ratio),
          groupLabel(g),
          String(at),
          fixed(meanAt(cells, at, (p) => p.imagesSeen), 0),
          fixed(meanAt(cells, at, (p) => p.trainer?.step), 0),
          fixed(meanAt(cells, at, (p) => p.modelSteps?.[1]), 0),
          `${sum((p) => p.verdicts.scored)} / ${sum((p) => p.verdicts.warming_up)}`,
          fixed(meanAt(cells, at, (p) => p.auroc)),
          fixed(meanAt(cells, at, (p) => p.aurocSt)),
          fixed(meanAt(cells, at, (p) => p.aurocAe)),
          fixed(meanAt(cells, at, (p) => p.streamAuroc)),
          fixed(
            meanAt(
              cells,
              at,
              (p) => p.answeredSeconds === null ? null : p.answeredSeconds - p.publishedSeconds,
            ),
            1,
          ),
        ];
      })
    ),
  };

  const detail: Table = {
    headers: [
      "cell",
      "t (s)",
      "images seen",
      "trainer step",
      "model version",
      "model step",
      "scored / warming / rejected / missing",
      "AUROC",
      "ST",
      "AE",
      "AE explains / map weight",
      "stream AUROC",
      "answered after (s)",
    ],
    rows: report.results.flatMap((r) =>
      r.points.map((p) => [
        describeLiveJob(r),
        String(p.atSeconds),
        String(p.imagesSeen),
        p.trainer ? String(p.trainer.step) : "—",
        p.modelVersions.length ? p.modelVersions.map((v) => `v${v}`).join(",") : "—",
        stepsText(p),
        `${p.verdicts.scored} / ${p.verdicts.warming_up} / ${p.verdicts.rejected} / ${p.verdicts.missing}`,
        fixed(p.auroc),
        fixed(p.aurocSt),
        fixed(p.aurocAe),
        p.trainer?.aeExplained != null && p.trainer.aeMapWeight != null
          ? `${fixed(p.trainer.aeExplained)} / ${fixed(p.trainer.aeMapWeight, 2)}`
          : "—",
        fixed(p.streamAuroc),
        fixed(p.answeredSeconds === null ? null : p.answeredSeconds - p.publishedSeconds, 1),
      ])
    ),
  };

  const last = points.at(-1)!;
  const bySize: Table = {
    headers: ["r", "training", ...DEFECT_SIZE_NAMES, ...DEFECT_KINDS],
    rows: groups.map((g) => {
      const cells = ofGroup(g).flatMap((r) => pointOf(r, last)?.cells ?? []);
      return [
        String(g.ratio),
        groupLabel(g),
        ...DEFECT_SIZE_NAMES.map((s) =>
          fixed(mean(cells.filter((c) => c.size === s).map((c) => c.auroc)))
        ),
        ...DEFECT_KINDS.map((k) =>
          fixed(mean(cells.filter((c) => c.kind === k).map((c) => c.auroc)))
        ),
      ];
    }),
  };

  const goals: Table = {
    headers: [
      "r",
      "training",
      "surfaces",
      `mean AUROC at ${last} s`,
      "issue's goal",
      "first point with mean ≥ 0.90",
      "first scored camera verdict (s, model step)",
    ],
    rows: groups.map((g) => {
      const cells = ofGroup(g);
      const final = meanAt(cells, last, (p) => p.auroc);
      const reached = points.find((at) => meanAt(cells, at, (p) => p.auroc) >= 0.9);
      const goal = g.ratio === 0.1 ? 0.95 : g.ratio === 0.3 ? 0.9 : null;
      return [
        String(g.ratio),
        groupLabel(g),
        String(cells.length),
        fixed(final),
        goal === null ? "—" : `≥ ${goal.toFixed(2)}: ${final >= goal ? "met" : "not met"}`,
        reached === undefined ? `not within ${last} s` : `${reached} s`,
        cells.map((r) =>
          r.firstScored ? `${r.surface} ${r.firstScored.seconds} (${r.firstScored.modelStep})` : "—"
        ).join(", "),
      ];
    }),
  };

  return [
    {
      title: "Held-out test set, image AUROC vs wall time since a cold start (model step)",
      table: perSurface,
    },
    { title: "Mean over surfaces at each point", table: meanTable },
    { title: "Every cell and point", table: detail },
    {
      title: `Image AUROC by defect size and kind at ${last} s (mean over surfaces)`,
      table: bySize,
    },
    { title: "Issue 11's live goals", table: goals },
  ];
}

/** Prints the tables and writes `<name>.{json,md,png}`. */
export async function renderLiveReport(name: string, report: LiveInspectReport): Promise<void> {
  const tables = liveInspectTables(report);
  for (const { title, table } of tables) console.log(`\n${title}\n${textTable(table)}`);
  const c = report.config;
  const p = report.pipeline;
  const ends = report.results.map((r) => r.loadAverageAtEnd.map((x) => x.toFixed(2)).join(" "));
  const lines = [
    "# Inspection benchmark, live",
    "",
    ...(report.partial
      ? [`**Partial run: ${report.partial.done} of ${report.partial.of} cells finished.**`, ""]
      : []),
    `Command: \`${report.environment.command}\` (commit ${report.environment.commit}, ` +
    `${report.wallSeconds} s; load average at start ` +
    `${report.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")}, at the end of each cell ` +
    `${ends.join(" / ") || "—"}; ${report.environment.cpu}).`,
    "",
    `Line \`${report.lineConfig}\` served as \`deno task run\` serves it (every stage in its own ` +
    `Worker, private nats-server with JetStream), metrics off: ${p.model.imageSize} px, ` +
    `${p.model.studentWidth} student, ${p.training.method}, lr ${p.training.learningRate}, ` +
    `batch ${p.training.batchSize}. From a cold start the camera publishes distinct ` +
    `${c.side}-px ${c.format.toUpperCase()} renders at ${c.rate} images/s for ` +
    `${c.durationSeconds} s; at each point (seconds after the first image) ` +
    `${c.testNormal} normal + ${c.testPerCell} per (kind, size) defective held-out test images ` +
    "are published with `Image-Train: no` and scored by the line's scorer with the version it " +
    "holds; the trainer never trains on them and is never paused. Stream AUROC: the camera " +
    "images' own verdicts since the previous point.",
    "",
    ...tables.flatMap(({ title, table }) => [`## ${title}`, "", markdownTable(table), ""]),
    "## Camera and line",
    "",
    ...report.results.map((r) =>
      `- ${describeLiveJob(r)}: ${r.cameraImages} images (${r.injected} defective), ` +
      `${Math.round(r.camera.bytesMean / 1024)} KiB each, render+encode median ` +
      `${r.camera.renderMs} ms, latest ${r.camera.lateMs} ms behind schedule; line ready in ` +
      `${r.startupSeconds} s; trainer at the end: step ${r.finalTrainer?.step ?? "?"}, ` +
      `${r.finalTrainer?.imagesIn ?? "?"} images in, ${r.finalTrainer?.heldOut ?? "?"} held out; ` +
      `test images in training batches: ${r.testImagesTrainedOn}; camera verdicts back after ` +
      `p50 ${fixed(r.cameraLatency?.p50, 1)} / p99 ${fixed(r.cameraLatency?.p99, 1)} / max ` +
      `${fixed(r.cameraLatency?.max, 1)} s; scorer retried ${r.finalScorer?.retried ?? "?"}, ` +
      `already answered ${r.finalScorer?.alreadyAnswered ?? "?"}, failed ` +
      `${r.finalScorer?.processingFailed ?? "?"}`
    ),
    "",
    ...failureLines(report.failures, describeLiveJob),
  ];
  const json = await writeResultJson(`${name}.json`, report);
  const md = await writeResultText(`${name}.md`, lines.join("\n"));
  console.log(`wrote ${json}\nwrote ${md}`);
  if (report.results.length === 0) return;
  const png = new URL(`${name}.png`, RESULTS_DIR).pathname;
  const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2"];
  const groups = liveGroups(report.jobs);
  const firstRatio = Math.min(...groups.map((g) => g.ratio));
  const orNull = (v: number | null | undefined) =>
    v !== null && v !== undefined && isFinite(v) ? v : null;
  await svgToPng(
    lineChartSvg({
      title: `Live from a cold start at ${c.rate} images/s: held-out image AUROC`,
      xLabel: `seconds since the first image (images seen = ${c.rate} × seconds)`,
      yLabel: "image AUROC",
      x: c.points,
      series: [
        ...report.results.map((r, i) => ({
          name: describeLiveJob(r),
          color: palette[i % palette.length],
          dashed: r.ratio > firstRatio,
          values: c.points.map((at) => orNull(r.points.find((x) => x.atSeconds === at)?.auroc)),
        })),
        ...groups.map((g) => ({
          name: `mean r=${g.ratio} ${groupLabel(g)}`,
          color: g.variant === "baseline" ? "#777777" : "#000000",
          dashed: g.ratio > firstRatio,
          values: c.points.map((at) =>
            orNull(
              meanAt(
                report.results.filter((r) => r.ratio === g.ratio && r.variant === g.variant),
                at,
                (x) => x.auroc,
              ),
            )
          ),
        })),
      ],
    }),
    png,
  );
  console.log(`wrote ${png}`);
}
