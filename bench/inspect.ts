/**
 * Inspection benchmark (`deno task bench:inspect [flags]`): small local defects on textured
 * parts at camera resolution, from a cold start (issue 11). Seven surfaces
 * (`src/data/inspect_surfaces.ts`: three CC0 photographs from Debian's python3-skimage, which
 * set-up fetches with `apt-get download`, three procedural textures and a PCB), six defect
 * kinds at three sizes (0.1 %, 0.6 %, 3 % of the image), 256-px camera images, pollution r.
 *
 * Two kinds of job, run on the shared worker pool:
 * - training jobs (per surface × r × variant): the default line's detector (input size,
 *   student, learning rate, buffer from `--config`, default `pipelines/demo.json`) trained as
 *   the live trainer does, image by image from a cold start, evaluated along a learning curve;
 *   AD² and the EfficientAD baseline side by side;
 * - `--nn` jobs (per surface × representation): a teacher-feature nearest-neighbour upper
 *   bound for each input representation and MobileNetV2 tap, with no training.
 *
 * Writes `bench/results/<name>.{json,md,png}` (default name `inspect`). `--live` serves the
 * surfaces to a running line through NATS instead (`bench/inspect_live.ts`).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPipelineConfig } from "../src/pipeline/config.ts";
import { MaturitySchema, PdnWidthSchema } from "../src/config/schema.ts";
import { matureStep } from "../src/stages/maturity.ts";
import {
  DEFECT_KINDS,
  DEFECT_SIZE_NAMES,
  type Surface,
  SURFACES,
} from "../src/data/inspect_surfaces.ts";
import { ensureSkimageTextures } from "../src/data/skimage_textures.ts";
import {
  type CurvePoint,
  describeJob,
  type InspectConfig,
  type InspectJob,
  type InspectNnResult,
  type InspectResult,
  type InspectTrainResult,
  type Representation,
  REPRESENTATIONS,
} from "./inspect_job.ts";
import type { InspectWorkerJob } from "./inspect_worker.ts";
import { type JobOutcome, WorkerPool } from "./worker_pool.ts";
import { numberList, positiveInt, ratioList } from "./cli_args.ts";
import { ACCURACY_VARIANTS, parseVariantName, type VariantName } from "./accuracy_variants.ts";
import {
  type Environment,
  environment,
  failureLines,
  fixed,
  lineChartSvg,
  markdownTable,
  RESULTS_DIR,
  svgToPng,
  type Table,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { secondsSince } from "./timing.ts";
import { inspectLiveMain } from "./inspect_live.ts";

/** Camera-side settings that do not come from the line's configuration. */
const BENCH_DEFAULTS = {
  side: 256,
  stepsPerImage: 1,
  trainCount: 200,
  curve: [25, 50, 100, 200],
  testPerCell: 2,
  testNormal: 36,
  bankImages: 30,
  bankPatches: 4096,
  topKShare: 0.01,
  seed: 1,
};

/** The line rate the learning curve's wall-time axis assumes (images per second). */
export const LINE_RATE = 10;

/** What a run does. */
export interface InspectGrid {
  surfaces: Surface[];
  ratios: number[];
  variants: VariantName[];
  /** Representations of the `--nn` bound (empty: no bound jobs). */
  representations: Representation[];
  /** Whether training jobs run. */
  train: boolean;
}

/** Everything the results files record. */
export interface InspectReport {
  benchmark: "inspect";
  /** The line configuration the detector settings came from. */
  lineConfig: string;
  /** That line's `trainer.warmupSteps` (the maturity criteria's minimum). */
  warmupSteps?: number;
  config: InspectConfig;
  grid: InspectGrid;
  workers: number;
  environment: Environment;
  loadAverageAtStart: number[];
  wallSeconds: number;
  results: InspectResult[];
  failures: { job: InspectJob; error: string }[];
  /** Set while the run is in progress (or was stopped): jobs done so far. */
  partial?: { done: number; of: number };
}

const USAGE = `deno task bench:inspect [options]
  --live                served live through NATS instead (own flags: --live --help)
  --surfaces a,b        of ${SURFACES} (default all)
  --ratios 0,0.1,0.3    pollution ratios of the training jobs (default 0,0.1,0.3)
  --variants ad2,baseline
  --no-train            skip the training jobs
  --nn [REPS]           also run the teacher nearest-neighbour bound for these
                        representations (default ${REPRESENTATIONS})
  --config FILE         line whose model/training/trainer settings are used
                        (default pipelines/demo.json)
  --image-size N        override the line's input size (multiple of 32, divides 256)
  --student-width W     override the line's student width
  --taps a,b            MobileNetV2 teacher taps instead of the line's teacher
  --learning-rate X     override the line's learning rate
  --steps-per-image X   training steps per arriving image (default ${BENCH_DEFAULTS.stepsPerImage})
  --train-count N       training stream length (default ${BENCH_DEFAULTS.trainCount})
  --curve a,b,...       learning-curve points in images seen (default ${BENCH_DEFAULTS.curve})
  --test-per-cell N     defective test images per kind × size (default ${BENCH_DEFAULTS.testPerCell})
  --test-normal N       normal test images (default ${BENCH_DEFAULTS.testNormal})
  --seed N              (default ${BENCH_DEFAULTS.seed})
  --buffer-auroc        also score the trainer buffer's own images at each curve point
                        (defective vs normal: does replay memorise the buffer's defects?)
  --workers N           parallel Deno Workers (default 2)
  --name NAME           results file stem (default inspect)
  --rerender            rewrite NAME.{md,png} from NAME.json (e.g. of a run stopped early:
                        the JSON is rewritten after every job); trains nothing`;

/** Parses the command line. */
export async function parseInspectArgs(args: string[]): Promise<{
  grid: InspectGrid;
  config: InspectConfig;
  workers: number;
  name: string;
  lineConfig: string;
  warmupSteps: number;
  rerender: boolean;
}> {
  const nnIndex = args.indexOf("--nn");
  // `--nn` with or without a list: normalise to `--nn=LIST` for parseArgs.
  if (nnIndex >= 0) {
    const next = args[nnIndex + 1];
    const list = next && !next.startsWith("--") ? next : REPRESENTATIONS.join(",");
    args = [
      ...args.slice(0, nnIndex),
      `--nn=${list}`,
      ...args.slice(nnIndex + (list === next ? 2 : 1)),
    ];
  }
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      surfaces: { type: "string" },
      ratios: { type: "string" },
      variants: { type: "string" },
      "no-train": { type: "boolean", default: false },
      nn: { type: "string" },
      config: { type: "string", default: "pipelines/demo.json" },
      "image-size": { type: "string" },
      "student-width": { type: "string" },
      taps: { type: "string" },
      "learning-rate": { type: "string" },
      "steps-per-image": { type: "string" },
      "train-count": { type: "string" },
      curve: { type: "string" },
      "test-per-cell": { type: "string" },
      "test-normal": { type: "string" },
      seed: { type: "string" },
      "buffer-auroc": { type: "boolean", default: false },
      workers: { type: "string", default: "2" },
      name: { type: "string", default: "inspect" },
      rerender: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const line = await loadPipelineConfig(values.config);
  const d = BENCH_DEFAULTS;
  const surfaces = values.surfaces ? values.surfaces.split(",").map(parseSurface) : [...SURFACES];
  const representations = values.nn ? values.nn.split(",").map(parseRepresentation) : [];
  const trainCount = positiveInt(values["train-count"], d.trainCount, "train-count");
  const curve = values.curve ? numberList(values.curve, "curve") : d.curve;
  if (curve.some((n) => !Number.isInteger(n) || n < 1 || n > trainCount)) {
    throw new Error(`--curve: points must be integers in [1, ${trainCount}] (--train-count)`);
  }
  const config: InspectConfig = {
    side: d.side,
    imageSize: positiveInt(values["image-size"], line.model.imageSize, "image-size"),
    teacher: values.taps
      ? { kind: "mobilenet_v2", taps: values.taps.split(",").map((t) => t.trim()) }
      : line.model.teacher,
    studentWidth: values["student-width"]
      ? PdnWidthSchema.parse(values["student-width"])
      : line.model.studentWidth,
    learningRate: values["learning-rate"]
      ? Number(values["learning-rate"])
      : line.training.learningRate,
    stepsPerImage: values["steps-per-image"] ? Number(values["steps-per-image"]) : d.stepsPerImage,
    trainCount,
    curve,
    bufferSize: line.trainer.bufferSize,
    statsImages: line.trainer.statsImages,
    testPerCell: positiveInt(values["test-per-cell"], d.testPerCell, "test-per-cell"),
    testNormal: positiveInt(values["test-normal"], d.testNormal, "test-normal"),
    bankImages: d.bankImages,
    bankPatches: d.bankPatches,
    topKShare: d.topKShare,
    seed: values.seed ? Number(values.seed) : d.seed,
    bufferAuroc: values["buffer-auroc"],
  };
  if (config.side % config.imageSize !== 0 || config.imageSize % 32 !== 0) {
    throw new Error(`--image-size must be a multiple of 32 dividing ${config.side}`);
  }
  if (!(config.learningRate > 0)) throw new Error("--learning-rate must be a positive number");
  if (!(config.stepsPerImage > 0)) throw new Error("--steps-per-image must be positive");
  if (!Number.isInteger(config.seed)) throw new Error("--seed must be an integer");
  return {
    grid: {
      surfaces,
      ratios: values.ratios ? ratioList(values.ratios) : [0, 0.1, 0.3],
      variants: values.variants
        ? values.variants.split(",").map(parseVariantName)
        : ["ad2", "baseline"],
      representations,
      train: !values["no-train"],
    },
    config,
    workers: positiveInt(values.workers, 2, "workers"),
    name: values.name,
    lineConfig: values.config,
    warmupSteps: line.trainer.warmupSteps,
    rerender: values.rerender,
  };
}

function parseSurface(name: string): Surface {
  if (!(SURFACES as readonly string[]).includes(name)) {
    throw new Error(`--surfaces: unknown surface "${name}" (known: ${SURFACES})`);
  }
  return name as Surface;
}

function parseRepresentation(name: string): Representation {
  if (!(REPRESENTATIONS as readonly string[]).includes(name)) {
    throw new Error(`--nn: unknown representation "${name}" (known: ${REPRESENTATIONS})`);
  }
  return name as Representation;
}

/** The run's jobs: bound jobs first (cheap, and they inform the rest), then training. */
export function inspectJobs(grid: InspectGrid): InspectJob[] {
  const nn: InspectJob[] = grid.representations.flatMap((representation) =>
    grid.surfaces.map((surface) => ({ type: "nn" as const, surface, representation }))
  );
  // Variants innermost: a run stopped early has compared them on the same surfaces.
  const train: InspectJob[] = !grid.train
    ? []
    : grid.ratios.flatMap((ratio) =>
      grid.surfaces.flatMap((surface) =>
        grid.variants.map((variant) => ({ type: "train" as const, surface, ratio, variant }))
      )
    );
  return [...nn, ...train];
}

/** Runs the benchmark; returns the process exit code. */
export async function inspectMain(args: string[]): Promise<number> {
  if (args.includes("--live")) return await inspectLiveMain(args.filter((a) => a !== "--live"));
  let parsed: Awaited<ReturnType<typeof parseInspectArgs>>;
  try {
    parsed = await parseInspectArgs(args);
  } catch (error) {
    console.error(error instanceof Error ? error.message : String(error));
    console.error(USAGE);
    return 2;
  }
  const { grid, config, workers, name } = parsed;
  if (parsed.rerender) {
    const stored = JSON.parse(await Deno.readTextFile(new URL(`${name}.json`, RESULTS_DIR)));
    await renderInspectReport(name, stored as InspectReport);
    return 0;
  }
  await ensureSkimageTextures(undefined, console.log);
  const jobs = inspectJobs(grid);
  console.log(
    `inspect: ${jobs.length} jobs on ${workers} worker(s); config ${JSON.stringify(config)}`,
  );
  const pool = new WorkerPool<InspectWorkerJob, InspectResult>(
    new URL("./inspect_worker.ts", import.meta.url),
    workers,
  );
  const loadAverageAtStart = Deno.loadavg();
  const start = performance.now();
  const settled: JobOutcome<InspectWorkerJob, InspectResult>[] = [];
  const reportOf = async (outcomes: JobOutcome<InspectWorkerJob, InspectResult>[]) => ({
    benchmark: "inspect" as const,
    lineConfig: parsed.lineConfig,
    warmupSteps: parsed.warmupSteps,
    config,
    grid,
    workers,
    environment: await environment(),
    loadAverageAtStart,
    wallSeconds: secondsSince(start),
    results: outcomes.flatMap((o) => o.ok ? [o.result] : []),
    failures: outcomes.flatMap((o) => o.ok ? [] : [{ job: o.job.job, error: o.error }]),
    ...(outcomes.length < jobs.length
      ? { partial: { done: outcomes.length, of: jobs.length } }
      : {}),
  });
  // Long runs on a shared machine: the results so far are on disk after every job, so a run
  // stopped early still leaves a report of what it finished.
  let writing: Promise<unknown> = Promise.resolve();
  let outcomes;
  try {
    outcomes = await pool.run(jobs.map((job) => ({ job, config })), (outcome, done) => {
      settled.push(outcome);
      if (done < jobs.length) {
        const snapshot = settled.slice();
        writing = writing.then(async () =>
          await writeResultJson(`${name}.json`, await reportOf(snapshot))
        );
      }
      const what = describeJob(outcome.job.job);
      const detail = !outcome.ok
        ? `FAILED: ${outcome.error.split("\n")[0]}`
        : outcome.result.type === "train"
        ? `AUROC ${fixed(outcome.result.curve.at(-1)?.auroc)} (curve ${
          outcome.result.curve.map((p) => fixed(p.auroc, 2)).join(" ")
        }), step ${outcome.result.stepMs} ms`
        : outcome.result.taps.map((t) => `${t.tap} ${fixed(t.auroc)}`).join(", ");
      console.log(`[${done}/${jobs.length} ${secondsSince(start)} s] ${what}: ${detail}`);
    });
  } finally {
    pool.terminate();
  }
  await writing;
  const report: InspectReport = await reportOf(outcomes);
  await renderInspectReport(name, report);
  return report.failures.length > 0 ? 1 : 0;
}

/** The report's tables. */
export function inspectTables(report: InspectReport): { title: string; table: Table }[] {
  const train = report.results.filter((r): r is InspectTrainResult => r.type === "train");
  const nn = report.results.filter((r): r is InspectNnResult => r.type === "nn");
  const { grid } = report;
  const out: { title: string; table: Table }[] = [];
  if (nn.length) out.push(...nnTables(nn, grid));
  if (train.length) {
    out.push(...trainTables(train, grid, report.config, report.warmupSteps ?? 25));
  }
  return out;
}

function mean(values: readonly number[]): number {
  const finite = values.filter(Number.isFinite);
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : NaN;
}

function nnTables(
  results: InspectNnResult[],
  grid: InspectGrid,
): { title: string; table: Table }[] {
  const taps = results[0].taps.map((t) => t.tap);
  const reps = grid.representations.filter((r) => results.some((x) => x.representation === r));
  const tapLabel = (tap: string) => {
    const t = results[0].taps.find((x) => x.tap === tap)!;
    return tap === "all" ? "all taps (detector)" : `${tap} (stride ${t.stride})`;
  };
  const bound = (
    rep: Representation,
    tap: string,
    pick: (t: InspectNnResult["taps"][0]) => number,
  ) =>
    mean(
      results.filter((r) => r.representation === rep).map((r) =>
        pick(r.taps.find((t) => t.tap === tap)!)
      ),
    );
  const summary: Table = {
    headers: ["representation", ...taps.map(tapLabel), "all taps, top-k mean", "all taps, pixel"],
    rows: reps.map((rep) => [
      rep,
      ...taps.map((tap) => fixed(bound(rep, tap, (t) => t.auroc))),
      fixed(bound(rep, "all", (t) => t.aurocTopK)),
      fixed(bound(rep, "all", (t) => t.pixelAuroc)),
    ]),
  };
  const perSurface: Table = {
    headers: ["surface", ...reps],
    rows: grid.surfaces.map((surface) => [
      surface,
      ...reps.map((rep) =>
        fixed(results.find((r) => r.surface === surface && r.representation === rep)?.taps[0].auroc)
      ),
    ]),
  };
  const bySize: Table = {
    headers: ["representation", ...DEFECT_SIZE_NAMES, ...DEFECT_KINDS],
    rows: reps.map((rep) => {
      const cells = results.filter((r) => r.representation === rep).flatMap((r) => r.taps[0].cells);
      return [
        rep,
        ...DEFECT_SIZE_NAMES.map((s) =>
          fixed(mean(cells.filter((c) => c.size === s).map((c) => c.auroc)))
        ),
        ...DEFECT_KINDS.map((k) =>
          fixed(mean(cells.filter((c) => c.kind === k).map((c) => c.auroc)))
        ),
      ];
    }),
  };
  return [
    {
      title:
        "Teacher nearest-neighbour bound: image AUROC, mean over surfaces (max patch distance)",
      table: summary,
    },
    {
      title: "Teacher nearest-neighbour bound per surface (all taps, image AUROC)",
      table: perSurface,
    },
    {
      title:
        "Teacher nearest-neighbour bound by defect size and kind (all taps, mean over surfaces)",
      table: bySize,
    },
  ];
}

function trainTables(
  results: InspectTrainResult[],
  grid: InspectGrid,
  config: InspectConfig,
  warmupSteps: number,
): { title: string; table: Table }[] {
  const final = (r: InspectTrainResult) => r.curve.at(-1)!;
  const find = (surface: Surface, ratio: number, variant: VariantName) =>
    results.find((r) => r.surface === surface && r.ratio === ratio && r.variant === variant);
  const jobsOf = (ratio: number, variant: VariantName) =>
    grid.surfaces.map((s) => find(s, ratio, variant)).filter((r): r is InspectTrainResult => !!r);
  const label = (v: VariantName) => ACCURACY_VARIANTS[v].label;
  const combos = grid.ratios.flatMap((ratio) =>
    grid.variants.map((variant) => ({ ratio, variant }))
  );
  const perSurface: Table = {
    headers: ["surface", ...combos.map(({ ratio, variant }) => `r=${ratio} ${label(variant)}`)],
    rows: [
      ...grid.surfaces.map((surface) => [
        surface,
        ...combos.map(({ ratio, variant }) => {
          const r = find(surface, ratio, variant);
          return r ? fixed(final(r).auroc) : "—";
        }),
      ]),
      [
        "mean",
        ...combos.map(({ ratio, variant }) =>
          fixed(mean(jobsOf(ratio, variant).map((r) => final(r).auroc)))
        ),
      ],
    ],
  };
  const partsBySurface: Table = {
    headers: ["surface", "r", "variant", "image", "ST map", "AE map", "AE explains", "AE weight"],
    rows: grid.surfaces.flatMap((surface) =>
      combos.flatMap(({ ratio, variant }) => {
        const r = find(surface, ratio, variant);
        if (!r) return [];
        const f = final(r);
        return [[
          surface,
          String(ratio),
          label(variant),
          fixed(f.auroc),
          fixed(f.aurocSt),
          fixed(f.aurocAe),
          fixed(f.aeExplained),
          fixed(f.aeMapWeight, 2),
        ]];
      })
    ),
  };
  const scoresTable: Table = {
    headers: [
      "r",
      "variant",
      "image (max)",
      "image (top-k mean)",
      "ST map",
      "AE map",
      "pixel",
      "step ms",
    ],
    rows: combos.map(({ ratio, variant }) => {
      const rs = jobsOf(ratio, variant);
      return [
        String(ratio),
        label(variant),
        fixed(mean(rs.map((r) => final(r).auroc))),
        fixed(mean(rs.map((r) => final(r).aurocTopK))),
        fixed(mean(rs.map((r) => final(r).aurocSt))),
        fixed(mean(rs.map((r) => final(r).aurocAe))),
        fixed(mean(rs.map((r) => r.pixelAuroc))),
        fixed(mean(rs.map((r) => r.stepMs)), 0),
      ];
    }),
  };
  const points = [...new Set(config.curve)].sort((a, b) => a - b);
  const curveTable: Table = {
    headers: [
      "r",
      "variant",
      ...points.map((p) => `${p} images`),
      `wall s at ${LINE_RATE}/s (last point)`,
    ],
    rows: combos.map(({ ratio, variant }) => {
      const rs = jobsOf(ratio, variant);
      return [
        String(ratio),
        label(variant),
        ...points.map((p) =>
          fixed(mean(rs.map((r) => r.curve.find((c) => c.imagesSeen === p)?.auroc ?? NaN)))
        ),
        fixed(mean(rs.map((r) => wallSecondsAt(final(r)))), 0),
      ];
    }),
  };
  const cellRatio = grid.ratios.includes(0.1) ? 0.1 : grid.ratios[0];
  const cellTable: Table = {
    headers: [
      "surface",
      "kind",
      ...DEFECT_SIZE_NAMES.flatMap((size) => grid.variants.map((v) => `${size} ${label(v)}`)),
    ],
    rows: grid.surfaces.flatMap((surface) =>
      DEFECT_KINDS.map((kind) => [
        surface,
        kind,
        ...DEFECT_SIZE_NAMES.flatMap((size) =>
          grid.variants.map((variant) =>
            fixed(
              find(surface, cellRatio, variant)?.cells.find((c) =>
                c.kind === kind && c.size === size
              )?.auroc,
              2,
            )
          )
        ),
      ])
    ),
  };
  const maturity = maturityTable(results, grid, config, warmupSteps);
  const memorisation = bufferTable(results, grid, config);
  return [
    {
      title: "Final image AUROC per surface (max of the map, the product's score)",
      table: perSurface,
    },
    {
      title: "Final model, mean over surfaces: image score choices, map parts, pixel AUROC",
      table: scoresTable,
    },
    {
      title: "Map parts per surface: image AUROC of each map alone, the autoencoder's explained " +
        "variance of the teacher features and its map's weight in the score",
      table: partsBySurface,
    },
    {
      title: "Cold-start learning curve: mean image AUROC over surfaces vs images seen",
      table: curveTable,
    },
    { title: `Image AUROC per surface × kind × size at r = ${cellRatio}`, table: cellTable },
    ...(maturity ? [{ title: maturity.title, table: maturity.table }] : []),
    ...(memorisation ? [memorisation] : []),
  ];
}

/**
 * `--buffer-auroc`: along the curve, the test AUROC (defects never trained on) beside the AUROC
 * of the buffer's own images (the defects the trainer keeps replaying), mean over surfaces.
 */
function bufferTable(
  results: InspectTrainResult[],
  grid: InspectGrid,
  config: InspectConfig,
): { title: string; table: Table } | null {
  if (!results.some((r) => r.curve.some((p) => p.aurocBuffer !== undefined))) return null;
  const points = [...new Set(config.curve)].sort((a, b) => a - b);
  const at = (r: InspectTrainResult, p: number) => r.curve.find((c) => c.imagesSeen === p);
  const rows = grid.ratios.flatMap((ratio) =>
    grid.variants.flatMap((variant) => {
      const rs = results.filter((r) => r.ratio === ratio && r.variant === variant);
      if (!rs.length) return [];
      const pick = (p: number, f: (c: CurvePoint) => number | undefined) =>
        mean(rs.map((r) => {
          const c = at(r, p);
          return c ? f(c) ?? NaN : NaN;
        }));
      return [[
        String(ratio),
        ACCURACY_VARIANTS[variant].label,
        ...points.map((p) =>
          `${fixed(pick(p, (c) => c.auroc))} / ${fixed(pick(p, (c) => c.aurocBuffer))} (${
            fixed(pick(p, (c) => c.bufferDefective), 0)
          }/${fixed(pick(p, (c) => c.bufferHeld), 0)}; ${fixed(pick(p, (c) => c.steps), 0)} st)`
        ),
      ]];
    })
  );
  return {
    title: "Memorisation: test AUROC / buffer AUROC (defective / held images; steps) vs images " +
      "seen, mean over surfaces",
    table: { headers: ["r", "variant", ...points.map((p) => `${p} images`)], rows },
  };
}

/**
 * Where the label-free maturity criteria fire on each job's loss history, and the AUROC of
 * the first curve point at or after that step against the final model's.
 */
function maturityTable(
  results: InspectTrainResult[],
  grid: InspectGrid,
  config: InspectConfig,
  warmupSteps: number,
): { title: string; table: Table } | null {
  const withLosses = results.filter((r) => r.losses?.length);
  if (!withLosses.length) return null;
  const defaults = MaturitySchema.parse({ criterion: "loss_plateau" });
  const criteria = [
    { name: `steps ≥ ${warmupSteps}`, options: { ...defaults, criterion: "steps" as const } },
    {
      name: `loss plateau (window ${defaults.window}, tol ${defaults.tolerance})`,
      options: defaults,
    },
    { name: "loss plateau (window 10, tol 0.05)", options: { ...defaults, window: 10 } },
    { name: "loss plateau (window 50, tol 0.05)", options: { ...defaults, window: 50 } },
    {
      name: "loss plateau (window 50, tol 0.02)",
      options: { ...defaults, window: 50, tolerance: 0.02 },
    },
  ];
  const rows = criteria.flatMap(({ name, options }) =>
    grid.ratios.flatMap((ratio) =>
      grid.variants.map((variant) => {
        const jobs = withLosses.filter((r) => r.ratio === ratio && r.variant === variant);
        const fired = jobs.map((r) => {
          const step = matureStep(r.losses, { ...options, minSteps: warmupSteps });
          const point = step === null ? undefined : r.curve.find((p) => p.steps >= step);
          return { step, auroc: point?.auroc ?? NaN, final: r.curve.at(-1)!.auroc };
        });
        return [
          name,
          String(ratio),
          ACCURACY_VARIANTS[variant].label,
          `${fired.filter((f) => f.step !== null).length}/${jobs.length}`,
          fixed(mean(fired.map((f) => f.step ?? NaN)), 0),
          fixed(mean(fired.map((f) => f.auroc))),
          fixed(mean(fired.map((f) => f.final))),
        ];
      })
    )
  );
  return {
    title: `Label-free maturity: where each criterion fires (mean over surfaces; AUROC of the ` +
      `first curve point at or after it, curve ${config.curve})`,
    table: {
      headers: ["criterion", "r", "variant", "fired", "mean step", "AUROC there", "final AUROC"],
      rows,
    },
  };
}

/**
 * Wall time a live line at {@link LINE_RATE} images/s needs to reach a curve point on this
 * machine: the images must have arrived and the trainer must have taken the steps.
 */
export function wallSecondsAt(point: { imagesSeen: number; trainSeconds: number }): number {
  return Math.max(point.imagesSeen / LINE_RATE, point.trainSeconds);
}

async function renderInspectReport(name: string, report: InspectReport): Promise<void> {
  const tables = inspectTables(report);
  for (const { title, table } of tables) console.log(`\n${title}\n${textTable(table)}`);
  const c = report.config;
  const lines = [
    "# Inspection benchmark",
    "",
    ...(report.partial
      ? [`**Partial run: ${report.partial.done} of ${report.partial.of} jobs finished.**`, ""]
      : []),
    `Command: \`${report.environment.command}\` (commit ${report.environment.commit}, ` +
    `${report.wallSeconds} s on ${report.workers} worker(s), load average at start ` +
    `${report.loadAverageAtStart.map((x) => x.toFixed(2)).join(" ")}, at end ` +
    `${report.environment.loadAverage.map((x) => x.toFixed(2)).join(" ")}).`,
    "",
    `Camera images ${c.side} px; ${c.trainCount}-image training stream per job, ` +
    `${c.testNormal} normal + ${c.testPerCell} per (kind, size) defective test images; detector ` +
    `${c.imageSize} px, ${c.studentWidth} student, lr ${c.learningRate}, ${c.stepsPerImage} step(s) ` +
    `per arriving image, settings of \`${report.lineConfig}\`. Learning-curve wall time assumes ` +
    `${LINE_RATE} images/s: max(images / ${LINE_RATE}, training seconds measured here).`,
    "",
    ...tables.flatMap(({ title, table }) => [`## ${title}`, "", markdownTable(table), ""]),
    ...failureLines(report.failures, describeJob),
  ];
  const json = await writeResultJson(`${name}.json`, report);
  const md = await writeResultText(`${name}.md`, lines.join("\n"));
  const train = report.results.filter((r): r is InspectTrainResult => r.type === "train");
  if (train.length) {
    const points = [...new Set(c.curve)].sort((a, b) => a - b);
    const png = new URL(`${name}.png`, RESULTS_DIR).pathname;
    const palette = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b"];
    const combos = report.grid.ratios.flatMap((ratio) =>
      report.grid.variants.map((variant) => ({ ratio, variant }))
    );
    await svgToPng(
      lineChartSvg({
        title: "Cold start: mean image AUROC over surfaces",
        xLabel: `images seen (at ${LINE_RATE}/s: seconds × ${LINE_RATE})`,
        yLabel: "image AUROC",
        x: points,
        series: combos.map(({ ratio, variant }, i) => ({
          name: `r=${ratio} ${ACCURACY_VARIANTS[variant].label}`,
          color: palette[i % palette.length],
          dashed: variant === "baseline",
          values: points.map((p) => {
            const v = mean(
              train.filter((r) => r.ratio === ratio && r.variant === variant)
                .map((r) => r.curve.find((x) => x.imagesSeen === p)?.auroc ?? NaN),
            );
            return Number.isFinite(v) ? v : null;
          }),
        })),
      }),
      png,
    );
    console.log(`wrote ${png}`);
  }
  console.log(`wrote ${json}\nwrote ${md}`);
}

if (import.meta.main) Deno.exit(await inspectMain(Deno.args));
