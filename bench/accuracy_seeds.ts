/**
 * `deno task bench:accuracy:seeds --inputs accuracy,accuracy-seed2,… [--name accuracy-seeds]`:
 * combines `bench:accuracy` results made with different `--seed`s (and otherwise the same
 * configuration) into mean ± sd over seeds per variant and ratio, and issue 6's goals per seed.
 * Why: one seed's 10-class mean moves by about as much as the goals' tolerances when only the
 * trajectory changes, so a comparison is only as good as its spread over seeds.
 *
 * Runs nothing: it reads `bench/results/<input>.json` and writes `<name>.json` and `<name>.md`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { AccuracyJobResult } from "./accuracy_job.ts";
import {
  type SeededAuroc,
  seededGoals,
  seededGoalsTable,
  seededMeans,
  seededMeansTable,
  seedGrid,
} from "./accuracy_seeds_summary.ts";
import {
  benchCommand,
  markdownTable,
  RESULTS_DIR,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";

/** The parts of a `bench:accuracy` results file this reads. */
interface AccuracyRecord {
  config: Record<string, unknown> & { seed: number };
  environment: { commit: string; command?: string };
  results: AccuracyJobResult[];
}

const USAGE = `deno task bench:accuracy:seeds --inputs NAME,NAME,… [--name accuracy-seeds]

  --inputs   bench:accuracy result names under bench/results/ (without .json), made with
             different --seed values and otherwise the same configuration
  --name     output name (default accuracy-seeds)`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      inputs: { type: "string" },
      name: { type: "string", default: "accuracy-seeds" },
      help: { type: "boolean", short: "h" },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return;
  }
  if (!values.inputs) throw new Error(`--inputs is required\n\n${USAGE}`);
  const inputs = values.inputs.split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (inputs.length === 0) throw new Error(`--inputs names no results file\n\n${USAGE}`);
  const files = await Promise.all(inputs.map(readRecord));
  checkSameConfiguration(inputs, files);
  const records: SeededAuroc[] = files.flatMap((file) =>
    file.results.map((r) => ({
      seed: file.config.seed,
      variant: r.variant,
      ratio: r.ratio,
      normalClass: r.normalClass,
      auroc: r.auroc,
    }))
  );
  const grid = seedGrid(records);
  const means = seededMeans(records, grid);
  const goals = seededGoals(records, grid);
  const meansTable = seededMeansTable(means, grid);
  const goalsTable = seededGoalsTable(goals);
  console.log(textTable(meansTable));
  console.log();
  console.log(textTable(goalsTable));

  const sources = files.map((f, i) =>
    `- \`${inputs[i]}.json\`: seed ${f.config.seed}, commit ${f.environment.commit}` +
    (f.environment.command ? `, \`${f.environment.command}\`` : "")
  );
  const markdown = [
    "# Accuracy over seeds",
    "",
    `Command: \`${benchCommand()}\`. Each seed changes the data split, initial weights, batch ` +
    "order and dropout; everything else is the configuration of the inputs (the same in all).",
    "",
    "Inputs:",
    ...sources,
    "",
    "## Mean AUROC over classes, per seed",
    "",
    markdownTable(meansTable),
    "",
    "## Issue 6's goals per seed",
    "",
    "Mean ± sample sd over seeds, per-seed values in brackets. Cost at r = 0: the variant's " +
    "AUROC minus the baseline's and the paper's AD²'s (goal ≥ −0.005); loss: AUROC(r = 0) − " +
    "AUROC(r) (goals ≤ 0.02 at r = 0.1 and ≤ 0.05 at r = 0.3). Each per-seed value is a mean " +
    "over the classes of paired differences (same seed, class and data). The standard error of " +
    "a mean over n seeds is sd / √n: differences smaller than about twice that are not resolved.",
    "",
    markdownTable(goalsTable),
    "",
  ].join("\n");
  const data = {
    benchmark: "accuracy-seeds",
    command: benchCommand(),
    inputs: inputs.map((name, i) => ({
      name,
      seed: files[i].config.seed,
      commit: files[i].environment.commit,
      command: files[i].environment.command ?? null,
    })),
    grid,
    means,
    goals,
  };
  console.log(`wrote ${await writeResultJson(`${values.name}.json`, data)}`);
  console.log(`wrote ${await writeResultText(`${values.name}.md`, markdown)}`);
}

async function readRecord(name: string): Promise<AccuracyRecord> {
  const url = new URL(`${name}.json`, RESULTS_DIR);
  let text: string;
  try {
    text = await Deno.readTextFile(url);
  } catch (error) {
    throw new Error(`--inputs: cannot read ${url.pathname}: ${(error as Error).message}`);
  }
  let record: Partial<AccuracyRecord> & { benchmark?: string };
  try {
    record = JSON.parse(text);
  } catch (error) {
    throw new Error(`--inputs: ${url.pathname} is not JSON: ${(error as Error).message}`);
  }
  if (record.benchmark !== "accuracy" || !record.config || !Array.isArray(record.results)) {
    throw new Error(`--inputs: ${url.pathname} is not a bench:accuracy results file`);
  }
  return record as AccuracyRecord;
}

/** Throws naming the first configuration field (other than the seed) that differs. */
function checkSameConfiguration(names: readonly string[], files: readonly AccuracyRecord[]) {
  const { seed: _seed, ...reference } = files[0].config;
  files.slice(1).forEach((file, i) => {
    const { seed: _other, ...config } = file.config;
    for (const key of new Set([...Object.keys(reference), ...Object.keys(config)])) {
      if (JSON.stringify(reference[key]) !== JSON.stringify(config[key])) {
        throw new Error(
          `--inputs: ${names[i + 1]} has config.${key} = ${JSON.stringify(config[key])}, ` +
            `${names[0]} has ${JSON.stringify(reference[key])}; only the seed may differ`,
        );
      }
    }
  });
}

if (import.meta.main) {
  try {
    await main();
  } catch (error) {
    console.error(`bench:accuracy:seeds: ${(error as Error).message}`);
    Deno.exit(1);
  }
}
