/**
 * Scratch probe of the robust-trainer switches (helper "robust"), until they join
 * `bench:accuracy`: for each (normal class, noise ratio, variant) it trains a detector on the
 * polluted Fashion-MNIST split, scores the test set (combined, student–teacher and AE maps)
 * and measures training-time rejection — the ATDR picks — against the injected anomalies.
 *
 * Usage: deno run --allow-all bench/robust_probe.ts --classes 0,1 --ratios 0,0.1,0.3
 *   --variants paper,auto_exclude --steps 150 --out /tmp/probe.jsonl
 * Each result is appended to `--out` as one JSON line.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { ModelSchema, type TrainingConfig, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { batchesOf, toBatch } from "../src/model/batches.ts";
import { loadFashionMnist } from "../src/data/fashion_mnist.ts";
import { pollutedSplitFrom } from "../src/data/polluted_split.ts";
import { SeededRandom } from "../src/data/prng.ts";
import { auroc } from "../src/metrics/auroc.ts";
import { greyToRgbImages } from "./fashion_images.ts";

/** The variants compared: training-config overrides on top of the schema defaults. */
export const PROBE_VARIANTS: Record<string, Partial<TrainingConfig>> = {
  baseline: { method: "baseline" },
  paper: { method: "ad2" },
  paper_exclude: { method: "ad2", protectAutoencoder: "exclude" },
  auto: { method: "ad2", atdrOutlierCount: "auto" },
  auto_weights: { method: "ad2", atdrOutlierCount: "auto", protectAutoencoder: "weights" },
  auto_exclude: { method: "ad2", atdrOutlierCount: "auto", protectAutoencoder: "exclude" },
  auto_exclude_xi0: {
    method: "ad2",
    atdrOutlierCount: "auto",
    protectAutoencoder: "exclude",
    xi: 0,
  },
};

/** One measured (class, ratio, variant). */
export interface ProbeResult {
  /** Normal class. */
  normalClass: number;
  /** Noise ratio r. */
  ratio: number;
  /** Variant name (see {@link PROBE_VARIANTS}). */
  variant: string;
  /** Image AUROC of the combined score, the ST map alone and the AE map alone. */
  auroc: number;
  /** AUROC of the student–teacher score alone. */
  stAuroc: number;
  /** AUROC of the autoencoder score alone. */
  aeAuroc: number;
  /** Training-time rejection (ATDR picks): picks that were injected / all picks. */
  precision: number | null;
  /** Injected batch appearances that were picked / all injected batch appearances. */
  recall: number | null;
  /** Picks per batch, on average. */
  picksPerBatch: number;
  /** Final defect-rate estimate ("auto" only). */
  defectRate: number | null;
  /** True contamination of the training set: injected / train size. */
  trueRate: number;
  /** Training seconds. */
  trainSeconds: number;
}

const args = parseArgs({
  options: {
    classes: { type: "string", default: "0" },
    ratios: { type: "string", default: "0,0.1,0.3" },
    variants: { type: "string", default: "baseline,paper,auto_exclude" },
    steps: { type: "string", default: "150" },
    "train-count": { type: "string", default: "200" },
    "test-count": { type: "string", default: "200" },
    "image-size": { type: "string", default: "64" },
    "learning-rate": { type: "string", default: "0.001" },
    seed: { type: "string", default: "1" },
    out: { type: "string", default: "/tmp/robust_probe.jsonl" },
    report: { type: "string" },
    command: { type: "string", default: "" },
  },
});

/** Mean of the present numbers, null when there are none. */
function meanOf(values: readonly (number | null)[]): number | null {
  const present = values.filter((v): v is number => v !== null);
  return present.length === 0 ? null : present.reduce((a, b) => a + b, 0) / present.length;
}

/**
 * Writes `bench/results/robust-probe.{json,md}` from a results file: per (variant, ratio) the
 * mean over classes of AUROC (combined, ST, AE) and of rejection precision/recall, plus the
 * drop from r = 0.
 */
export async function writeReport(resultsPath: string, command: string): Promise<void> {
  const results: ProbeResult[] = (await Deno.readTextFile(resultsPath)).trim().split("\n")
    .map((line) => JSON.parse(line));
  const variants = [...new Set(results.map((r) => r.variant))];
  const ratios = [...new Set(results.map((r) => r.ratio))].sort((a, b) => a - b);
  const classes = [...new Set(results.map((r) => r.normalClass))].sort((a, b) => a - b);
  const fmt = (x: number | null, digits = 3) => x === null ? "–" : x.toFixed(digits);
  const rows: string[] = [];
  for (const variant of variants) {
    for (const ratio of ratios) {
      const cell = results.filter((r) => r.variant === variant && r.ratio === ratio);
      if (cell.length === 0) continue;
      const at0 = results.filter((r) =>
        r.variant === variant && r.ratio === 0 &&
        cell.some((c) => c.normalClass === r.normalClass)
      );
      const drop = at0.length === cell.length
        ? (meanOf(at0.map((r) => r.auroc))! - meanOf(cell.map((r) => r.auroc))!)
        : null;
      rows.push(
        `| ${variant} | ${ratio} | ${
          cell.map((r) => r.normalClass).sort((a, b) => a - b).join(",")
        } | ` +
          `${fmt(meanOf(cell.map((r) => r.auroc)))} | ${fmt(drop)} | ` +
          `${fmt(meanOf(cell.map((r) => r.stAuroc)))} | ${
            fmt(meanOf(cell.map((r) => r.aeAuroc)))
          } | ` +
          `${fmt(meanOf(cell.map((r) => r.precision)), 2)} | ${
            fmt(meanOf(cell.map((r) => r.recall)), 2)
          } | ` +
          `${fmt(meanOf(cell.map((r) => r.picksPerBatch)), 2)} | ` +
          `${fmt(meanOf(cell.map((r) => r.defectRate)), 3)} / ${
            fmt(meanOf(cell.map((r) => r.trueRate)), 3)
          } |`,
      );
    }
  }
  const md = [
    "# Robust-trainer probe (helper robust, scratch: not bench:accuracy)",
    "",
    `Command: \`${command}\``,
    "",
    `Classes ${classes.join(", ")}; every number is measured, means over the classes listed in`,
    "the row. Rejection precision/recall = ATDR picks (training-time rejection candidates) against",
    "the injected anomalies of the split's manifest, counted over every batch of the run.",
    "",
    "| variant | r | classes | AUROC | drop vs r=0 | ST AUROC | AE AUROC | rej. precision | rej. recall | picks/batch | est. / true defect rate |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
    ...rows,
    "",
  ].join("\n");
  await Deno.writeTextFile("bench/results/robust-probe.md", md);
  await Deno.writeTextFile(
    "bench/results/robust-probe.json",
    JSON.stringify({ command, results }, null, 2) + "\n",
  );
}

const numbers = (text: string) => text.split(",").map(Number);

async function main(): Promise<void> {
  await initBackend("wasm");
  const opts = args.values;
  const [trainSplit, testSplit] = await Promise.all([
    loadFashionMnist("train"),
    loadFashionMnist("test"),
  ]);
  const size = Number(opts["image-size"]);
  const steps = Number(opts.steps);
  const seed = Number(opts.seed);
  for (const normalClass of numbers(opts.classes!)) {
    for (const ratio of numbers(opts.ratios!)) {
      const split = pollutedSplitFrom(trainSplit, testSplit, {
        normalClass,
        ratio,
        trainCount: Number(opts["train-count"]),
        testCount: Number(opts["test-count"]),
        seed: seed * 1000 + normalClass,
      });
      const train = greyToRgbImages(split.train.map((s) => s.image), size);
      const test = greyToRgbImages(split.test.map((s) => s.image), size);
      const injected = split.train.map((s) => s.anomalous);
      const labels = split.test.map((s) => s.anomalous);
      for (const variant of opts.variants!.split(",")) {
        const overrides = PROBE_VARIANTS[variant];
        if (!overrides) throw new Error(`unknown variant ${variant}`);
        const result = await probeOne({
          normalClass,
          ratio,
          variant,
          overrides,
          train,
          test,
          injected,
          labels,
          size,
          steps,
          seed,
          learningRate: Number(opts["learning-rate"]),
        });
        await Deno.writeTextFile(opts.out!, JSON.stringify(result) + "\n", { append: true });
        console.log(JSON.stringify(result));
      }
    }
  }
}

interface ProbeInput {
  normalClass: number;
  ratio: number;
  variant: string;
  overrides: Partial<TrainingConfig>;
  train: Float32Array[];
  test: Float32Array[];
  injected: boolean[];
  labels: boolean[];
  size: number;
  steps: number;
  seed: number;
  learningRate: number;
}

async function probeOne(input: ProbeInput): Promise<ProbeResult> {
  const restore = seedMathRandom(input.seed * 1000 + input.normalClass);
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: input.size, studentWidth: "tiny", seed: input.seed }),
    TrainingSchema.parse({ ...input.overrides, learningRate: input.learningRate }),
  );
  try {
    const t0 = performance.now();
    const random = new SeededRandom(input.seed);
    const statsSample = random.sample(input.train, Math.min(64, input.train.length));
    detector.fitTeacherStats(batchesOf(statsSample, input.size, 16));
    const b = detector.training.batchSize;
    let order: number[] = [];
    let picks = 0, truePicks = 0, injectedSeen = 0, batches = 0;
    let defectRate: number | null = null;
    for (let step = 0; step < input.steps; step++) {
      if (order.length < b) {
        order = random.shuffled(Array.from({ length: input.train.length }, (_, i) => i));
      }
      const indices = order.splice(0, b);
      const batch = toBatch(indices.map((i) => input.train[i]), input.size);
      try {
        const report = detector.trainStep(batch);
        defectRate = report.defectRate;
        batches++;
        picks += report.outliers.length;
        truePicks += report.outliers.filter((i) => input.injected[indices[i]]).length;
        injectedSeen += indices.filter((i) => input.injected[i]).length;
      } finally {
        batch.dispose();
      }
    }
    detector.fitMapNormalisation(batchesOf(statsSample, input.size, 16));
    const trainSeconds = (performance.now() - t0) / 1000;
    const reports = [];
    for (const batch of batchesOf(input.test, input.size, 16)) {
      reports.push(...detector.score(batch));
    }
    const injectedCount = input.injected.filter(Boolean).length;
    return {
      normalClass: input.normalClass,
      ratio: input.ratio,
      variant: input.variant,
      auroc: auroc(reports.map((r) => r.score), input.labels),
      stAuroc: auroc(reports.map((r) => r.stScore), input.labels),
      aeAuroc: auroc(reports.map((r) => r.aeScore), input.labels),
      precision: picks > 0 ? truePicks / picks : null,
      recall: injectedSeen > 0 ? truePicks / injectedSeen : null,
      picksPerBatch: picks / batches,
      defectRate,
      trueRate: injectedCount / input.train.length,
      trainSeconds: Math.round(trainSeconds),
    };
  } finally {
    detector.dispose();
    restore();
  }
}

/** Seeds Math.random (dropout) so every variant sees the same stream; returns the restorer. */
function seedMathRandom(seed: number): () => void {
  const original = Math.random;
  const random = new SeededRandom(seed);
  Math.random = () => random.next();
  return () => {
    Math.random = original;
  };
}

if (import.meta.main) {
  if (args.values.report) await writeReport(args.values.report, args.values.command!);
  else await main();
}
