/**
 * Stream benchmark (`deno task bench:stream [flags]`): the accuracy benchmark's polluted
 * Fashion-MNIST jobs replayed through the live pipeline over NATS with online training, each
 * against the offline job of the same (class, ratio, variant). Per cell:
 *
 * 1. offline: `bench:accuracy`'s job (`AccuracyJobRunner`, `DEFAULT_ACCURACY_CONFIG`);
 * 2. live (`stream_live.ts`): the same training images as PNGs, pass after pass, until the
 *    trainer publishes its first version at the offline step count; the trainer is paused and
 *    the same test images are published; AUROC of their verdicts' scores;
 * 3. training-time rejection from the line's training events against the split's labels.
 *
 * Writes `bench/results/<name>.{json,md}`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { initBackend } from "../src/model/backend.ts";
import {
  FASHION_MNIST_CLASSES,
  fashionMnistAvailable,
  type FashionMnistSplit,
  loadFashionMnist,
} from "../src/data/fashion_mnist.ts";
import { pollutedSplitFrom } from "../src/data/polluted_split.ts";
import { DEFAULT_ACCURACY_CONFIG } from "./accuracy.ts";
import { type AccuracyConfig, AccuracyJobRunner } from "./accuracy_job.ts";
import { parseVariantName, type VariantName } from "./accuracy_variants.ts";
import {
  type Environment,
  environment,
  fixed,
  markdownTable,
  signed,
  startCommit,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { encodeSamples, runLiveCell, trainSampleOf } from "./stream_live.ts";
import {
  downWeightTable,
  liveTestAuroc,
  meanRows,
  rejectionMetrics,
  type StreamCell,
  type StreamCellResult,
  streamTable,
} from "./stream_summary.ts";
import { secondsSince } from "./timing.ts";
import { classList, positiveInt, ratioList } from "./cli_args.ts";

/** The cells a run covers. */
export interface StreamGrid {
  /** Normal classes. */
  classes: number[];
  /** Noise ratios, ascending. */
  ratios: number[];
  /** Training variants. */
  variants: VariantName[];
}

/** Default grid: the two ratios, the paper's AD² and the robust trainer. */
export const DEFAULT_STREAM_GRID: StreamGrid = {
  classes: [0, 7],
  ratios: [0.1, 0.3],
  variants: ["ad2", "robust"],
};

/** Parsed command line. */
export interface StreamArgs {
  /** Cells to run. */
  grid: StreamGrid;
  /** The offline job's settings (also the live line's). */
  config: AccuracyConfig;
  /** Live runs per cell (the offline job is deterministic and runs once). */
  repeats: number;
  /** Results file stem. */
  name: string;
  /** `--help` was given. */
  help: boolean;
}

/** Usage text. */
export const STREAM_USAGE = `deno task bench:stream [options]
  --classes 0,7         normal classes (default ${DEFAULT_STREAM_GRID.classes})
  --ratios 0.1,0.3      noise ratios (default ${DEFAULT_STREAM_GRID.ratios})
  --variants a,b        variants of bench/accuracy_variants.ts (default ${DEFAULT_STREAM_GRID.variants})
  --steps N             training steps, offline and before the live model is frozen (default ${DEFAULT_ACCURACY_CONFIG.steps})
  --train-count N       clean normal training images (default ${DEFAULT_ACCURACY_CONFIG.trainCount}; smaller for quick checks)
  --test-count N        test images, half normal (default ${DEFAULT_ACCURACY_CONFIG.testCount})
  --repeats N           live runs per cell, to see the live run's own spread (default 1)
  --name NAME           results file stem (default stream)
  --help                this text`;

/** Parses the command line; throws with a message naming the bad flag. */
export function parseStreamArgs(args: string[]): StreamArgs {
  const { values } = parseArgs({
    args,
    strict: true,
    allowPositionals: false,
    options: {
      classes: { type: "string" },
      ratios: { type: "string" },
      variants: { type: "string" },
      steps: { type: "string" },
      "train-count": { type: "string" },
      "test-count": { type: "string" },
      repeats: { type: "string" },
      name: { type: "string", default: "stream" },
      help: { type: "boolean", default: false },
    },
  });
  const d = DEFAULT_STREAM_GRID;
  const grid: StreamGrid = {
    classes: values.classes ? classList(values.classes) : [...d.classes],
    ratios: values.ratios ? ratioList(values.ratios) : [...d.ratios],
    variants: values.variants ? values.variants.split(",").map(parseVariantName) : [...d.variants],
  };
  const base = DEFAULT_ACCURACY_CONFIG;
  const config: AccuracyConfig = {
    ...base,
    steps: positiveInt(values.steps, base.steps, "steps"),
    trainCount: positiveInt(values["train-count"], base.trainCount, "train-count"),
    testCount: positiveInt(values["test-count"], base.testCount, "test-count"),
  };
  if (!/^[\w.-]+$/.test(values.name)) throw new Error(`--name: "${values.name}" is no file stem`);
  return {
    grid,
    config,
    repeats: positiveInt(values.repeats, 1, "repeats"),
    name: values.name,
    help: values.help,
  };
}

/** Everything the results files record. */
export interface StreamReport {
  /** Benchmark name. */
  benchmark: "stream";
  /** Cells run. */
  grid: StreamGrid;
  /** Live runs per cell. */
  repeats: number;
  /** Offline job settings, shared by the live lines. */
  config: AccuracyConfig;
  /** Machine and software. */
  environment: Environment;
  /** 1/5/15-minute load averages before the run. */
  loadAverageAtStart: number[];
  /** Wall seconds of the whole run. */
  wallSeconds: number;
  /** Every live run that finished (with its cell's offline result). */
  results: (StreamCellResult & { pipeline: unknown })[];
  /** Cells that failed. */
  failures: { cell: StreamCell; error: string }[];
  /** Mean rows per (ratio, variant). */
  means: ReturnType<typeof meanRows>;
}

/** Runs the grid cell by cell (offline, then live), printing a line per phase. */
export async function runStream(
  grid: StreamGrid,
  config: AccuracyConfig,
  repeats: number,
): Promise<Pick<StreamReport, "results" | "failures" | "wallSeconds" | "loadAverageAtStart">> {
  const loadAverageAtStart = Deno.loadavg();
  const start = performance.now();
  await initBackend("wasm");
  const [train, test] = await Promise.all([loadFashionMnist("train"), loadFashionMnist("test")]);
  const runner = new AccuracyJobRunner();
  const results: StreamReport["results"] = [];
  const failures: StreamReport["failures"] = [];
  const cells = grid.classes.flatMap((normalClass) =>
    grid.ratios.flatMap((ratio) =>
      grid.variants.map((variant) => ({ normalClass, ratio, variant }))
    )
  );
  for (const [n, cell] of cells.entries()) {
    const what = `class ${cell.normalClass} (${FASHION_MNIST_CLASSES[cell.normalClass]}) ` +
      `r=${cell.ratio} ${cell.variant}`;
    const log = (line: string) =>
      console.log(`[${n + 1}/${cells.length} ${secondsSince(start)} s] ${what} ${line}`);
    try {
      for await (const result of runCell(cell, config, repeats, train, test, runner, log)) {
        results.push(result);
        log(
          `live #${result.repeat} AUROC ${fixed(result.liveAuroc)} offline ` +
            `${fixed(result.offlineAuroc)} (${signed(result.gap)}); down-weight P/R ` +
            `${fixed(result.live.downWeightPrecision)}/${fixed(result.live.downWeightRecall)}, ` +
            `rejection P/R ${fixed(result.live.hygiene.precision)}/` +
            `${fixed(result.live.hygiene.recall)}; live ${result.seconds.live} s, offline ` +
            `${result.seconds.offline} s`,
        );
      }
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      failures.push({ cell, error: message });
      log(`FAILED: ${message.split("\n")[0]}`);
    }
  }
  return { results, failures, wallSeconds: secondsSince(start), loadAverageAtStart };
}

/** The cell's offline job once, then `repeats` live runs, yielded as they finish. */
async function* runCell(
  cell: StreamCell,
  config: AccuracyConfig,
  repeats: number,
  trainSplit: FashionMnistSplit,
  testSplit: FashionMnistSplit,
  runner: AccuracyJobRunner,
  log: (line: string) => void,
): AsyncGenerator<StreamReport["results"][number]> {
  const offlineStart = performance.now();
  const offline = await runner.run(cell, config);
  const offlineSeconds = secondsSince(offlineStart);
  log(`offline: AUROC ${fixed(offline.auroc)} (${offlineSeconds} s)`);

  const split = pollutedSplitFrom(trainSplit, testSplit, {
    normalClass: cell.normalClass,
    ratio: cell.ratio,
    trainCount: config.trainCount,
    testCount: config.testCount,
    // The offline job's split seed (bench/accuracy_job.ts): the same images, in the same order.
    seed: config.seed * 1000 + cell.normalClass,
  });
  if (split.train.length !== offline.trainSize || split.injected !== offline.injected) {
    throw new Error(
      `split differs from the offline job's: ${split.train.length}/${split.injected} training ` +
        `images/injected, offline ${offline.trainSize}/${offline.injected}`,
    );
  }
  const train = await encodeSamples(split.train, config.imageSize);
  const test = await encodeSamples(split.test, config.imageSize);
  const trainLabels = split.train.map((s) => s.anomalous);
  for (let repeat = 1; repeat <= repeats; repeat++) {
    const live = await runLiveCell({ cell, config, train, test, log });
    const liveAuroc = liveTestAuroc(
      live.verdicts,
      live.testIds,
      split.test.map((s) => s.anomalous),
      live.model.version,
    );
    yield {
      ...cell,
      repeat,
      liveAuroc,
      offlineAuroc: offline.auroc,
      gap: liveAuroc - offline.auroc,
      live: rejectionMetrics(
        live.events,
        (id) => trainSampleOf(id, trainLabels),
        split.injected,
        live.model.step,
      ),
      offlineDownWeight: offline.atdrPicks,
      stepsTrained: Math.max(0, ...live.events.map((e) => e.step)),
      modelVersion: live.model.version,
      modelStep: live.model.step,
      passes: live.passes,
      imagesPublished: live.imagesPublished,
      trainSize: split.train.length,
      injected: split.injected,
      testSize: split.test.length,
      seconds: { live: live.seconds, offline: offlineSeconds },
      pipeline: live.pipeline,
    };
  }
}

/** Prints the tables and writes the JSON and markdown files. */
export async function writeStreamReport(
  name: string,
  grid: StreamGrid,
  config: AccuracyConfig,
  repeats: number,
  run: Awaited<ReturnType<typeof runStream>>,
): Promise<StreamReport> {
  const report: StreamReport = {
    benchmark: "stream",
    grid,
    repeats,
    config,
    environment: await environment(),
    ...run,
    means: meanRows(run.results),
  };
  const tables = { main: streamTable(run.results), downWeight: downWeightTable(run.results) };
  console.log("\nLive stream against offline\n" + textTable(tables.main));
  console.log(
    "\nGap, live spread, ATDR down-weighting live vs offline (pooled)\n" +
      textTable(tables.downWeight),
  );
  if (run.failures.length) console.log(`${run.failures.length} cell(s) FAILED (see JSON)`);
  const jsonPath = await writeResultJson(`${name}.json`, report);
  const mdPath = await writeResultText(`${name}.md`, streamMarkdown(report, tables));
  console.log(`wrote ${jsonPath}\nwrote ${mdPath}`);
  return report;
}

function streamMarkdown(
  report: StreamReport,
  tables: {
    main: Parameters<typeof markdownTable>[0];
    downWeight: Parameters<typeof markdownTable>[0];
  },
): string {
  const c = report.config;
  const env = report.environment;
  const loads = (l: number[]) => l.map((x) => x.toFixed(2)).join(" / ");
  return [
    "# Stream benchmark: live pipeline against offline training",
    "",
    "Each cell is a `bench:accuracy` job (Fashion-MNIST overlap protocol: " +
    `${c.trainCount} normal training images plus round(r × ${c.trainCount}) anomalous test ` +
    `images, ${c.testCount} test images half anomalous; ${c.imageSize} px, student ` +
    `\`${c.studentWidth}\`, AE latent ${c.aeLatent}, lr ${c.learningRate}, ${c.steps} steps of ` +
    `batch 8, statistics on ${c.statsImages} images, seed ${c.seed}), run twice:`,
    "",
    "- **offline**: `AccuracyJobRunner` exactly as `bench:accuracy` runs it;",
    "- **live**: a private nats-server with JetStream and `runPipeline` (ingest, trainer, scorer " +
    "each in a Worker, as `deno task run`). The same training images, as 8-bit PNGs of the " +
    "offline pixels, are published on `inspect.<line>.image`, pass after pass in a seeded " +
    "order with fresh Image-Ids (`-pK`), each pass once the trainer has trained on the last, " +
    `until the trainer publishes version 1, which warm-up puts at exactly step ${c.steps}; ` +
    "no later version is published. The trainer is paused, the scorer has loaded v1, and the " +
    "test images are published; live AUROC is over their verdicts' scores (all `scored` by v1). " +
    "**steps** is v1's step count; the trainer may take a step or two more before the pause " +
    "reaches it (`stepsTrained` in the JSON), which no version holds and no metric counts. " +
    `Live runs per cell: ${report.repeats}; the offline job is seeded and runs once.`,
    "",
    "Training-time rejection, from the line's training events up to the frozen step, against " +
    "the split's labels (which never travel): **down-weight P** = share of ATDR-down-weighted " +
    "batch appearances that are injected anomalies, **R** = share of injected anomalies' batch " +
    "appearances that were down-weighted (the offline job's `atdrPicks` measure the same); " +
    "**rejection P** = share of the trainer's hygiene rejections (`rejected`) that are injected " +
    "anomalies, **R** = distinct injected anomalies rejected at least once / injected. Hygiene " +
    "is the variant's, as offline (none for the paper's variants: a rejection cap of 0); a " +
    "rejected image comes back with the next pass under a new Image-Id. Mean " +
    "rows: AUROC averaged over the live runs, precision and recall pooled over their counts. " +
    "**live spread**: the largest max − min of live AUROC among one class's repeats, the " +
    "live run's own noise (needs `--repeats` ≥ 2).",
    "",
    "Where live and offline still differ by design: the live trainer fits the teacher " +
    "statistics on the first images buffered and the map normalisation on the newest " +
    `${c.statsImages}, offline on a seeded sample; live batches take the newest untrained ` +
    "images and top up with replays, offline batches are epoch-wise shuffles; live passes " +
    "re-send every image under a new Image-Id, so hygiene's rejections last one pass there and " +
    "the whole run offline. Both seed the autoencoder's dropout per step (model seed).",
    "",
    (env.command ? `Command: \`${env.command}\`. ` : "") +
    `Run: ${env.date}, commit ${env.commit}, Deno ${env.deno}, tfjs ${env.tfjs} (wasm), ` +
    `${env.cpu}, load average ${loads(report.loadAverageAtStart)} at the start and ` +
    `${loads(env.loadAverage)} at the end; ${report.results.length} live runs in ` +
    `${report.wallSeconds} s.` +
    (report.failures.length ? ` **${report.failures.length} cell(s) failed** (see JSON).` : ""),
    "",
    "## Live against offline",
    "",
    markdownTable(tables.main),
    "",
    "## Gap, live spread and ATDR down-weighting, live against offline (pooled over classes)",
    "",
    markdownTable(tables.downWeight),
    "",
  ].join("\n");
}

/**
 * The command: parses `args`, runs the grid and writes the results.
 *
 * @returns the exit code (0 ok, 1 a cell failed or the dataset is missing, 2 bad arguments).
 */
export async function streamMain(args: string[]): Promise<number> {
  void startCommit(); // before anything runs: the results name the code they ran
  let parsed: StreamArgs;
  try {
    parsed = parseStreamArgs(args);
  } catch (error) {
    console.error(`${error instanceof Error ? error.message : error}\n\n${STREAM_USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(STREAM_USAGE);
    return 0;
  }
  if (!(await fashionMnistAvailable())) {
    console.error("Fashion-MNIST is missing: apt-get install dataset-fashion-mnist");
    return 1;
  }
  const { grid, config, name, repeats } = parsed;
  const cells = grid.classes.length * grid.ratios.length * grid.variants.length;
  console.log(
    `stream: ${cells} cell(s), each offline then ${repeats} live run(s); ` +
      `config ${JSON.stringify(config)}`,
  );
  const run = await runStream(grid, config, repeats);
  const report = await writeStreamReport(name, grid, config, repeats, run);
  return report.failures.length > 0 ? 1 : 0;
}

if (import.meta.main) Deno.exit(await streamMain(Deno.args));
