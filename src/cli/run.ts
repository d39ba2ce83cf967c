/**
 * `main.ts run`: serves one line — ingest, trainer and scorer, each in its own Worker — plus
 * the control service, until SIGINT/SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { runCommand as runWithExitCodes } from "../streams/cli_support.ts";
import {
  DASHBOARD_OPTIONS_HELP,
  PIPELINE_CLI_OPTIONS,
  PIPELINE_OPTIONS_HELP,
  servePipeline,
} from "./pipeline_cli.ts";

/** Help text of `run`. */
export const RUN_HELP = `usage: main.ts run [--line LINE | --config FILE] [options]

Serves a production line: ingest, trainer and scorer each run in their own Deno Worker, so
training never blocks scoring. Cameras publish images on inspect.LINE.image; verdicts appear
on inspect.LINE.verdict, training events on inspect.LINE.training; the control service
(inspect.LINE.control.*) shows in $SRV.INFO / $SRV.STATS. With no options it serves line
"demo" from pipelines/demo.json. SIGINT/SIGTERM drain the consumers, acknowledge finished
work, publish the last model version, save a checkpoint and exit.

A live dashboard (verdict feed, anomalous parts with heatmaps, charts, pause/resume/snapshot)
is served at http://127.0.0.1:8090/ (dashboard.* in the pipeline file).

options:
${PIPELINE_OPTIONS_HELP}
${DASHBOARD_OPTIONS_HELP}`;

/** Entry point of `main.ts run`; returns the exit code (0 ok, 1 failure, 2 usage). */
export function runCommand(args: string[]): Promise<number> {
  return runWithExitCodes("run", async () => {
    const { values } = parseArgs({
      args,
      options: PIPELINE_CLI_OPTIONS,
      strict: true,
    });
    if (values.help) {
      console.log(RUN_HELP);
      return 0;
    }
    return await servePipeline(values, ["ingest", "trainer", "scorer"], true, {
      dashboard: true,
    });
  });
}
