/**
 * Accuracy benchmark (`deno task bench:accuracy [--quick] [flags]`): AD² and its ablations
 * against the EfficientAD baseline on polluted Fashion-MNIST, following the paper's §4.1
 * *Overlap* protocol. One class at a time is normal, the other nine are defects; anomalous test
 * images are injected into the training set at each noise ratio (and stay in the test set).
 * Every (class, ratio, variant) is an independent job, run on a pool of Deno Workers. Variants
 * are the paper's four methods and the robust-trainer switches (bench/accuracy_variants.ts).
 *
 * Writes `bench/results/accuracy[-quick].{json,md,png}`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { PdnWidthSchema, TrainingSchema } from "../src/config/schema.ts";
import { FASHION_MNIST_CLASSES, fashionMnistAvailable } from "../src/data/fashion_mnist.ts";
import type { AccuracyConfig, AccuracyJob, AccuracyJobResult } from "./accuracy_job.ts";
import type { AccuracyWorkerJob } from "./accuracy_worker.ts";
import {
  ablationTable,
  type AccuracyGrid,
  atdrPrecisions,
  aurocChart,
  perClassTable,
  pollutionLossTable,
  precisionTable,
  rejectionSummaries,
  rejectionTable,
  summarise,
} from "./accuracy_summary.ts";
import {
  type Environment,
  environment,
  fixed,
  lineChartSvg,
  markdownTable,
  RESULTS_DIR,
  startCommit,
  svgToPng,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { type JobOutcome, WorkerPool } from "./worker_pool.ts";
import { secondsSince } from "./timing.ts";
import { classList, positiveInt, ratioList } from "./cli_args.ts";
import {
  ACCURACY_VARIANTS,
  parseVariantName,
  VARIANT_NAMES,
  type VariantName,
} from "./accuracy_variants.ts";

/**
 * Default configuration, sized from measured times: an AD² step at 32 px with the tiny student
 * takes about 230 ms on one free core, a job (100 steps, statistics, 200 test images) about
 * 26 s, so the full grid (10 classes × 5 ratios × 5 variants = 250 jobs) needs about 110
 * core-minutes: about an hour when both cores are free for the 2 workers, longer when other
 * work shares the machine.
 */
export const DEFAULT_ACCURACY_CONFIG: AccuracyConfig = {
  imageSize: 32,
  studentWidth: "tiny",
  aeLatent: 64,
  steps: 100,
  // 10× the paper's 1e-4: the paper trains 10 000 steps, this budget allows about 100, and at
  // 1e-4 the students barely move in 100 steps (measured at r = 0.2 on two classes: AUROC
  // 0.52–0.74 at 1e-4 against 0.75–0.92 at 1e-3).
  learningRate: 1e-3,
  training: {},
  trainCount: 200,
  testCount: 200,
  statsImages: 64,
  seed: 1,
};

/**
 * The full grid: every class, the paper's Table 4 ratios, the paper's four methods and the
 * robust trainer (the other variants are selectable with --variants).
 */
export const FULL_GRID: AccuracyGrid = {
  classes: [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
  ratios: [0, 0.1, 0.2, 0.3, 0.4],
  variants: ["baseline", "nmfe", "atdr", "ad2", "robust"],
};

/** `--quick`: two classes, three ratios, the paper's four methods (under 10 minutes). */
export const QUICK_GRID: AccuracyGrid = {
  classes: [0, 7],
  ratios: [0, 0.2, 0.4],
  variants: ["baseline", "nmfe", "atdr", "ad2"],
};

/** Everything the results files record about a run. */
export interface AccuracyReport {
  /** Benchmark name. */
  benchmark: "accuracy";
  /** Whether `--quick` chose the grid. */
  quick: boolean;
  /** Shared job settings. */
  config: AccuracyConfig;
  /** Classes, ratios and variants run. */
  grid: AccuracyGrid;
  /** Worker count. */
  workers: number;
  /** Machine and software. */
  environment: Environment;
  /** 1/5/15-minute load averages before the run (the environment has those after it). */
  loadAverageAtStart: number[];
  /** Wall-clock seconds of the whole grid. */
  wallSeconds: number;
  /** Sum of the jobs' own seconds; divided by wallSeconds it shows how much the workers overlap. */
  jobSeconds: number;
  /** Every successful job. */
  results: AccuracyJobResult[];
  /** Jobs that failed, with their error. */
  failures: { job: AccuracyJob; error: string }[];
  /** Mean and per-class AUROC per (ratio, variant). */
  summary: ReturnType<typeof summarise>;
  /** ATDR outlier precision and recall per (ratio, variant). */
  atdrPrecision: ReturnType<typeof atdrPrecisions>;
  /** Training-set hygiene's rejection precision and recall per (ratio, variant). */
  rejection: ReturnType<typeof rejectionSummaries>;
}

const USAGE = `deno task bench:accuracy [--quick] [options]
  --quick               ${QUICK_GRID.classes.length} classes × ratios ${QUICK_GRID.ratios} × ${QUICK_GRID.variants}
  --classes 0,1,...     normal classes (default all 10)
  --ratios 0,0.1,...    noise ratios (default ${FULL_GRID.ratios})
  --variants a,b        of ${VARIANT_NAMES} (default ${FULL_GRID.variants})
  --steps N             training steps per job (default ${DEFAULT_ACCURACY_CONFIG.steps})
  --train-count N       clean normal training images (default ${DEFAULT_ACCURACY_CONFIG.trainCount})
  --test-count N        test images, half normal (default ${DEFAULT_ACCURACY_CONFIG.testCount})
  --image-size N        input side, multiple of 32 (default ${DEFAULT_ACCURACY_CONFIG.imageSize})
  --student-width W     full|small|tiny (default ${DEFAULT_ACCURACY_CONFIG.studentWidth})
  --learning-rate X     Adam learning rate (default ${DEFAULT_ACCURACY_CONFIG.learningRate})
  --training JSON       extra TrainingSchema fields, e.g. '{"atdrOutlierCount":"auto"}'
  --seed N              base seed (default ${DEFAULT_ACCURACY_CONFIG.seed})
  --workers N           parallel Deno Workers (default 2)
  --name NAME           results file stem (default accuracy or accuracy-quick)
  --rerender            rewrite bench/results/NAME.{md,png,json} from the results stored in
                        NAME.json with the current table code; trains nothing`;

/** Parses the command line into a grid, a config, a worker count and an output name. */
export function parseAccuracyArgs(args: string[]): {
  grid: AccuracyGrid;
  config: AccuracyConfig;
  workers: number;
  name: string;
  quick: boolean;
  rerender: boolean;
} {
  const { values } = parseArgs({
    args,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      classes: { type: "string" },
      ratios: { type: "string" },
      variants: { type: "string" },
      steps: { type: "string" },
      "train-count": { type: "string" },
      "test-count": { type: "string" },
      "image-size": { type: "string" },
      "student-width": { type: "string" },
      "learning-rate": { type: "string" },
      training: { type: "string" },
      seed: { type: "string" },
      workers: { type: "string", default: "2" },
      name: { type: "string" },
      rerender: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  const base = values.quick ? QUICK_GRID : FULL_GRID;
  const grid: AccuracyGrid = {
    classes: values.classes ? classList(values.classes) : base.classes,
    ratios: values.ratios ? ratioList(values.ratios) : base.ratios,
    variants: values.variants ? values.variants.split(",").map(parseVariantName) : base.variants,
  };
  const d = DEFAULT_ACCURACY_CONFIG;
  const config: AccuracyConfig = {
    ...d,
    steps: positiveInt(values.steps, d.steps, "steps"),
    trainCount: positiveInt(values["train-count"], d.trainCount, "train-count"),
    testCount: positiveInt(values["test-count"], d.testCount, "test-count"),
    imageSize: positiveInt(values["image-size"], d.imageSize, "image-size"),
    studentWidth: values["student-width"]
      ? PdnWidthSchema.parse(values["student-width"])
      : d.studentWidth,
    learningRate: values["learning-rate"] ? Number(values["learning-rate"]) : d.learningRate,
    seed: values.seed ? Number(values.seed) : d.seed,
  };
  if (!(config.learningRate > 0)) throw new Error("--learning-rate must be a positive number");
  if (values.training) config.training = trainingOverrides(values.training);
  if (!Number.isInteger(config.seed)) throw new Error("--seed must be an integer");
  return {
    grid,
    config,
    workers: positiveInt(values.workers, 2, "workers"),
    name: values.name ?? (values.quick ? "accuracy-quick" : "accuracy"),
    quick: values.quick,
    rerender: values.rerender,
  };
}

/** Runs the grid on `workers` workers, printing progress; failed jobs are kept as failures. */
export async function runAccuracy(
  grid: AccuracyGrid,
  config: AccuracyConfig,
  workers: number,
): Promise<{
  outcomes: JobOutcome<AccuracyWorkerJob, AccuracyJobResult>[];
  wallSeconds: number;
  loadAverageAtStart: number[];
}> {
  const jobs: AccuracyWorkerJob[] = grid.classes.flatMap((normalClass) =>
    grid.ratios.flatMap((ratio) =>
      grid.variants.map((variant) => ({ job: { normalClass, ratio, variant }, config }))
    )
  );
  const pool = new WorkerPool<AccuracyWorkerJob, AccuracyJobResult>(
    new URL("./accuracy_worker.ts", import.meta.url),
    workers,
  );
  const loadAverageAtStart = Deno.loadavg();
  const start = performance.now();
  try {
    const outcomes = await pool.run(jobs, (outcome, done) => {
      const { normalClass, ratio, variant } = outcome.job.job;
      const what = `class ${normalClass} (${FASHION_MNIST_CLASSES[normalClass]}) r=${ratio} ` +
        ACCURACY_VARIANTS[variant].label;
      const detail = outcome.ok
        ? `AUROC ${fixed(outcome.result.auroc)}  step ${outcome.result.stepMs.toFixed(0)} ms  ` +
          `job ${jobSeconds(outcome.result).toFixed(1)} s`
        : `FAILED: ${outcome.error.split("\n")[0]}`;
      console.log(`[${done}/${jobs.length} ${secondsSince(start)} s] ${what}: ${detail}`);
    });
    return { outcomes, wallSeconds: secondsSince(start), loadAverageAtStart };
  } finally {
    pool.terminate();
  }
}

/** Builds the report, prints the tables and writes the JSON, markdown and PNG files. */
export async function writeAccuracyReport(
  name: string,
  quick: boolean,
  grid: AccuracyGrid,
  config: AccuracyConfig,
  workers: number,
  run: Awaited<ReturnType<typeof runAccuracy>>,
): Promise<AccuracyReport> {
  const results = run.outcomes.filter((o) => o.ok).map((o) => o.result);
  const failures = run.outcomes.filter((o) => !o.ok).map((o) => ({
    job: o.job.job,
    error: o.error,
  }));
  const report: AccuracyReport = withSummaries({
    benchmark: "accuracy",
    quick,
    config,
    grid,
    workers,
    environment: await environment(),
    loadAverageAtStart: run.loadAverageAtStart,
    wallSeconds: run.wallSeconds,
    jobSeconds: Math.round(results.reduce((sum, r) => sum + jobSeconds(r), 0)),
    results,
    failures,
  });
  await renderAccuracyReport(name, report);
  return report;
}

/**
 * Re-renders `bench/results/<name>.{json,md,png}` from the results stored in its JSON with the
 * current summary and table code (the measurements themselves are not rerun).
 */
export async function rerenderAccuracyReport(name: string): Promise<AccuracyReport> {
  const stored = JSON.parse(await Deno.readTextFile(new URL(`${name}.json`, RESULTS_DIR)));
  const report = withSummaries(fromLegacyRecord(stored));
  await renderAccuracyReport(name, report);
  return report;
}

/**
 * Records written before variants existed name them `method` (grid `methods`, results
 * `method`, no `rejection`/`defectRate`); the four methods are variants of the same names.
 */
function fromLegacyRecord(stored: Record<string, unknown>): AccuracyReport {
  const record = stored as unknown as AccuracyReport & { grid: { methods?: VariantName[] } };
  if (!record.grid.methods) return record;
  const { methods, ...grid } = record.grid;
  return {
    ...record,
    grid: { ...grid, variants: methods },
    results: record.results.map((result) => {
      const { method, ...rest } = result as AccuracyJobResult & { method: VariantName };
      return { ...rest, variant: method, defectRate: null, rejection: null };
    }),
  };
}

/** The report with its summaries (re)computed from its results. */
function withSummaries(
  report: Omit<AccuracyReport, "summary" | "atdrPrecision" | "rejection">,
): AccuracyReport {
  return {
    ...report,
    summary: summarise(report.results, report.grid),
    atdrPrecision: atdrPrecisions(report.results, report.grid),
    rejection: rejectionSummaries(report.results, report.grid),
  };
}

/** Prints the report's tables and writes its JSON, markdown and PNG files. */
async function renderAccuracyReport(name: string, report: AccuracyReport): Promise<void> {
  const { grid, results, failures, summary, workers } = report;
  const tables = {
    perClass: perClassTable(summary, grid),
    ablation: ablationTable(summary, grid),
    precision: precisionTable(report.atdrPrecision),
    pollutionLoss: pollutionLossTable(results, grid),
    rejection: rejectionTable(report.rejection),
  };
  console.log("\nImage AUROC per class (paper Table 4 layout)\n" + textTable(tables.perClass));
  console.log("\nAblation, mean AUROC (paper Table 3 layout)\n" + textTable(tables.ablation));
  console.log("\nAUROC lost to pollution (mean over classes)\n" + textTable(tables.pollutionLoss));
  console.log("\nATDR outlier precision (pooled over classes)\n" + textTable(tables.precision));
  if (tables.rejection.rows.length) {
    console.log("\nHygiene rejections (pooled over classes)\n" + textTable(tables.rejection));
  }
  const overlap = report.jobSeconds / Math.max(report.wallSeconds, 1e-9);
  console.log(
    `\n${results.length} jobs in ${report.wallSeconds} s wall on ${workers} worker(s): ` +
      `job time / wall time = ${overlap.toFixed(2)}` +
      (failures.length ? `; ${failures.length} FAILED` : ""),
  );

  const chart = aurocChart(
    summary,
    grid,
    `Fashion-MNIST, polluted training set: mean AUROC over ${grid.classes.length} class(es)`,
  );
  const pngPath = new URL(`${name}.png`, RESULTS_DIR).pathname;
  await Deno.mkdir(RESULTS_DIR, { recursive: true });
  await svgToPng(lineChartSvg(chart), pngPath);
  const jsonPath = await writeResultJson(`${name}.json`, report);
  const mdPath = await writeResultText(
    `${name}.md`,
    accuracyMarkdown(report, tables, `${name}.png`),
  );
  console.log(`wrote ${jsonPath}\nwrote ${mdPath}\nwrote ${pngPath}`);
}

function accuracyMarkdown(
  report: AccuracyReport,
  tables: Record<
    "perClass" | "ablation" | "precision" | "pollutionLoss" | "rejection",
    Parameters<typeof markdownTable>[0]
  >,
  png: string,
): string {
  const c = report.config;
  const env = report.environment;
  const overlap = report.jobSeconds / Math.max(report.wallSeconds, 1e-9);
  const lines = [
    `# Accuracy benchmark${report.quick ? " (--quick)" : ""}`,
    "",
    "Fashion-MNIST, one class normal and the other nine anomalous; the training set is " +
    `${c.trainCount} normal training images plus round(r × ${c.trainCount}) anomalous test ` +
    `images (paper §4.1 overlap protocol: they stay in the ${c.testCount}-image test set, ` +
    "half normal). Same seeds, batches and initial weights for every variant. Metric: image AUROC.",
    "",
    "Variants: " +
    report.grid.variants.map((v) =>
      `${ACCURACY_VARIANTS[v].label} = \`${JSON.stringify(ACCURACY_VARIANTS[v].training)}\`` +
      (ACCURACY_VARIANTS[v].hygiene
        ? ` with hygiene \`${JSON.stringify(ACCURACY_VARIANTS[v].hygiene)}\``
        : "")
    ).join("; ") + ".",
    "",
    `Configuration: image ${c.imageSize}×${c.imageSize} (28 px upscaled, grey → RGB), teacher ` +
    `MobileNetV2 (ImageNet), student PDN \`${c.studentWidth}\`, AE latent ${c.aeLatent}, ` +
    `${c.steps} steps of batch 8, Adam lr ${c.learningRate} (paper: 1e-4 over 10 000 steps; ` +
    "this budget allows far fewer steps), statistics/normalisation on " +
    `${c.statsImages} training images, seed ${c.seed}. Other hyper-parameters: TrainingSchema ` +
    "defaults (paper §4.1)" +
    (Object.keys(c.training).length ? ` except ${JSON.stringify(c.training)}` : "") +
    ". Data, weights, batch order and the autoencoder's dropout are seeded, so reruns give " +
    "identical numbers.",
    "",
    (env.command ? `Command: \`${env.command}\`. ` : "") +
    `Run: ${env.date}, commit ${env.commit}, Deno ${env.deno}, tfjs ${env.tfjs} (wasm), ` +
    `${env.cpu}, load average (1/5/15 min) ${loads(report.loadAverageAtStart)} at the start and ` +
    `${loads(env.loadAverage)} at the end (other work shares the machine), ` +
    `${report.workers} worker(s); ` +
    `${report.results.length} jobs in ` +
    `${report.wallSeconds} s wall; sum of job times / wall time ${overlap.toFixed(2)} (how busy ` +
    "the workers were, not a speed-up: jobs run slower when they share cores)." +
    (report.failures.length ? ` **${report.failures.length} job(s) failed** (see JSON).` : ""),
    "",
    "## Image AUROC per class (paper Table 4 layout)",
    "",
    markdownTable(tables.perClass),
    "",
    "## Ablation: mean AUROC (paper Table 3 layout, one column per noise ratio)",
    "",
    markdownTable(tables.ablation),
    "",
    `![mean AUROC against noise ratio](${png})`,
    "",
    "## AUROC lost to pollution",
    "",
    "Per variant, the mean over classes of AUROC(r = 0) − AUROC(r) (issue 6's goals: ≤ 0.02 at " +
    "r = 0.1, ≤ 0.05 at r = 0.3), and its AUROC at r = 0 minus the baseline's and the paper's AD²'s (goal: ≥ −0.005).",
    "",
    markdownTable(tables.pollutionLoss),
    "",
    "## Training-time rejection: ATDR outlier precision and recall",
    "",
    "Precision: share of the samples ATDR down-weighted (one per batch in the paper, k per batch " +
    "for `atdrOutlierCount: auto`) that are injected anomalies, pooled over classes; chance is " +
    "the share a uniformly random pick from the same batches would reach. Recall: share of the " +
    "injected anomalies' batch appearances that were down-weighted. Ratio 0 has no injected " +
    "anomalies, hence no row.",
    "",
    tables.precision.rows.length ? markdownTable(tables.precision) : "(no ATDR picks in this run)",
    "",
    "## Training-set hygiene: rejection precision and recall",
    "",
    "Variants with hygiene stop training on the images it rejects (the live trainer's policy, " +
    "src/stages/hygiene.ts, applied offline). Precision: share of the distinct rejected images " +
    "that are injected anomalies; recall: share of the injected anomalies rejected; pooled over " +
    "classes.",
    "",
    tables.rejection.rows.length
      ? markdownTable(tables.rejection)
      : "(no variant with hygiene in this run)",
    "",
  ];
  return lines.join("\n");
}

/** Parses `--training`: a JSON object of TrainingSchema fields, validated here, not per job. */
function trainingOverrides(text: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new Error(`--training: not JSON (${error instanceof Error ? error.message : error})`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new Error("--training: expected a JSON object of TrainingSchema fields");
  }
  const overrides = parsed as Record<string, unknown>;
  if ("method" in overrides || "learningRate" in overrides) {
    throw new Error("--training: use --variants and --learning-rate for those fields");
  }
  const checked = TrainingSchema.safeParse(overrides);
  if (!checked.success) {
    throw new Error(
      `--training: ${
        checked.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")
      }`,
    );
  }
  return overrides;
}

function loads(average: readonly number[]): string {
  return average.map((l) => l.toFixed(1)).join("/");
}

function jobSeconds(result: AccuracyJobResult): number {
  return result.seconds.setup + result.seconds.train + result.seconds.score;
}

/**
 * The command: parses `args`, runs the grid and writes the results.
 *
 * @returns the exit code (0 ok, 1 a job failed or the dataset is missing, 2 bad arguments).
 */
export async function accuracyMain(args: string[]): Promise<number> {
  void startCommit(); // before anything runs: the results name the code they ran
  let parsed: ReturnType<typeof parseAccuracyArgs>;
  try {
    parsed = parseAccuracyArgs(args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.rerender) {
    try {
      const report = await rerenderAccuracyReport(parsed.name);
      return report.failures.length > 0 ? 1 : 0;
    } catch (error) {
      // A missing or foreign JSON file: say which, write nothing.
      const why = error instanceof Error ? error.message : String(error);
      console.error(`--rerender ${parsed.name}: ${why}`);
      return 1;
    }
  }
  if (!(await fashionMnistAvailable())) {
    console.error("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist");
    return 1;
  }
  const { grid, config, workers, name, quick } = parsed;
  console.log(
    `accuracy: ${grid.classes.length} classes × ${grid.ratios.length} ratios × ` +
      `${grid.variants.length} variants on ${workers} worker(s); config ${JSON.stringify(config)}`,
  );
  const run = await runAccuracy(grid, config, workers);
  const report = await writeAccuracyReport(name, quick, grid, config, workers, run);
  return report.failures.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await accuracyMain(Deno.args));
