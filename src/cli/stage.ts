/**
 * `main.ts stage ingest|trainer|scorer --line L`: one stage alone in this process, e.g. more
 * scorer processes for a busy line (they share its durable consumer) or a trainer on another
 * machine.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { STAGE_NAMES, type StageName } from "../stages/stage.ts";
import { runCommand, UsageError } from "../streams/cli_support.ts";
import { PIPELINE_CLI_OPTIONS, PIPELINE_OPTIONS_HELP, servePipeline } from "./pipeline_cli.ts";

/** Help text of `stage`. */
export const STAGE_HELP =
  `usage: main.ts stage ingest|trainer|scorer [--line LINE | --config FILE] [options]

Runs one stage of a line in this process, with its own control service. Several scorer (or
ingest) processes of one line split its images between them; run one trainer per line.

options:
${PIPELINE_OPTIONS_HELP}`;

/** Entry point of `main.ts stage`; returns the exit code (0 ok, 1 failure, 2 usage). */
export function stageCommand(args: string[]): Promise<number> {
  return runCommand("stage", async () => {
    const { values, positionals } = parseArgs({
      args,
      options: PIPELINE_CLI_OPTIONS,
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      console.log(STAGE_HELP);
      return 0;
    }
    if (positionals.length !== 1 || !STAGE_NAMES.includes(positionals[0] as StageName)) {
      throw new UsageError(`name exactly one stage: ${STAGE_NAMES.join(", ")}`);
    }
    return await servePipeline(values, [positionals[0] as StageName], false);
  });
}
