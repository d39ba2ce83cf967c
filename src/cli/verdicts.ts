/**
 * `main.ts verdicts`: follows a line's verdicts, one line each, as a person on the line (or a
 * shell script) wants to see them.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { assertLineName, verdictSubject } from "../bus/subjects.ts";
import { connectNats, positiveInteger, runCommand, UsageError } from "../streams/cli_support.ts";
import { NATS_CLI_OPTIONS, NATS_OPTIONS_HELP } from "../bus/connection.ts";

const HELP =
  `usage: main.ts verdicts --line LINE [--json] [--count N] [--server URL] [connection options]

Prints the verdicts published on inspect.LINE.verdict as they arrive, until Ctrl-C or N verdicts.

options:
  --line LINE    the line to follow (default demo)
  --json         print each verdict's JSON as published instead of a summary line
  --count N      stop after N verdicts
${NATS_OPTIONS_HELP}
  --help         this text`;

/** Entry point of `main.ts verdicts`. */
export function verdictsCommand(args: string[]): Promise<number> {
  return runCommand("verdicts", async () => {
    const { values } = parseArgs({
      args,
      options: {
        line: { type: "string", default: "demo" },
        json: { type: "boolean", default: false },
        count: { type: "string" },
        ...NATS_CLI_OPTIONS,
        help: { type: "boolean", default: false },
      },
      strict: true,
    });
    if (values.help) {
      console.log(HELP);
      return 0;
    }
    try {
      assertLineName(values.line);
    } catch (error) {
      throw new UsageError((error as Error).message);
    }
    const limit = values.count === undefined ? undefined : positiveInteger("--count", values.count);
    const connection = await connectNats(values, "inspect-verdicts");
    const subscription = connection.subscribe(verdictSubject(values.line), { max: limit });
    const stop = () => subscription.unsubscribe();
    Deno.addSignalListener("SIGINT", stop);
    try {
      for await (const message of subscription) {
        const text = new TextDecoder().decode(message.data);
        console.log(values.json ? text : summarise(text));
      }
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      await connection.close();
    }
    return 0;
  });
}

/**
 * `id  status  score/threshold  flag`, with the region of an anomalous image — or the raw text
 * if it is not a verdict.
 */
export function summarise(text: string): string {
  let verdict: Record<string, unknown>;
  try {
    verdict = JSON.parse(text);
  } catch {
    return text;
  }
  const id = String(verdict.imageId ?? `(seq ${verdict.imageSeq})`);
  const status = String(verdict.status);
  if (status === "scored") {
    const score = Number(verdict.score).toFixed(3);
    const threshold = Number(verdict.threshold).toFixed(3);
    const flag = verdict.anomalous ? "ANOMALOUS" : "ok";
    const region = verdict.region as
      | { x: number; y: number; width: number; height: number }
      | null
      | undefined;
    const where = region
      ? `  at x ${region.x} y ${region.y} ${region.width}×${region.height} px` +
        `, ${(100 * Number(verdict.anomalousFraction ?? 0)).toFixed(1)} % above`
      : "";
    return `${id}  scored  ${score} / ${threshold}  ${flag}${where}  (model v${verdict.modelVersion})`;
  }
  if (status === "rejected") {
    const error = verdict.error as { code?: string; message?: string } | undefined;
    return `${id}  rejected  ${error?.code}: ${error?.message}`;
  }
  return `${id}  ${status}`;
}
