/**
 * `replay`: publishes a fixture stream onto NATS with its recorded timing or at a fixed rate.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type ReplayPacing, replayStream } from "../streams/replay.ts";
import { readStreamInfo } from "../streams/format.ts";
import { assertLineName } from "../streams/contract.ts";
import {
  connectNats,
  natsUrl,
  positiveNumber,
  progressReporter,
  runCommand,
  UsageError,
} from "../streams/cli_support.ts";
import { NATS_CLI_OPTIONS, NATS_OPTIONS_HELP } from "../bus/connection.ts";

/** Help text of `replay`. */
export const REPLAY_HELP =
  `usage: main.ts replay DIR [--line LINE] [--speed X | --rate HZ] [--id-suffix=SUFFIX]
                      [--server URL] [connection options] [--all-subjects]

Publishes the messages of the stream directory DIR (format: fixtures/README.md) with their
recorded headers and payloads. Ground-truth labels (manifest.ndjson) are never published.

options:
  --line LINE      publish images on inspect.LINE.image instead of their recorded line
  --speed X        keep the recorded timing, X times faster (default 1; "max": no waiting)
  --rate HZ        ignore the recorded timing and publish HZ messages per second
  --id-suffix=S    append S to every Image-Id (e.g. --id-suffix=-p2), so replaying a stream
                   again onto a line that has seen it is not rejected as duplicate_image_id
${NATS_OPTIONS_HELP}
  --all-subjects   also publish recorded non-image subjects (skipped by default, so stale
                   verdicts are never replayed onto a live bus)
  --help           show this text`;

/** Entry point of `main.ts replay`; returns the exit code (0 ok, 1 failure, 2 usage). */
export function replayCommand(args: string[]): Promise<number> {
  return runCommand("replay", async () => {
    const { values, positionals } = parseArgs({
      args,
      options: {
        line: { type: "string" },
        speed: { type: "string" },
        rate: { type: "string" },
        "id-suffix": { type: "string" },
        ...NATS_CLI_OPTIONS,
        "all-subjects": { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      console.log(REPLAY_HELP);
      return 0;
    }
    if (positionals.length !== 1) throw new UsageError("exactly one stream directory is required");
    const dir = positionals[0];
    if (values.speed !== undefined && values.rate !== undefined) {
      throw new UsageError("--speed and --rate exclude each other");
    }
    if (values.line !== undefined) {
      try {
        assertLineName(values.line);
      } catch (error) {
        throw new UsageError(error instanceof Error ? error.message : String(error));
      }
    }
    const pacing: ReplayPacing = values.rate !== undefined
      ? { kind: "rate", hz: positiveNumber("rate", values.rate) }
      : {
        kind: "recorded",
        speed: values.speed === "max" ? Infinity : positiveNumber("speed", values.speed ?? "1"),
      };
    const info = await readStreamInfo(dir); // fails clearly before connecting

    const url = natsUrl(values.server);
    const connection = await connectNats(values, "inspect-replay");
    const stop = new AbortController();
    const onSigint = () => stop.abort();
    Deno.addSignalListener("SIGINT", onSigint);
    const progress = progressReporter("replay");
    progress.done(
      `replaying ${info.count} messages of ${info.name} from ${dir} to ${url}` +
        (values.line ? ` as line ${values.line}` : ""),
    );
    try {
      const result = await replayStream({
        connection,
        dir,
        line: values.line,
        pacing,
        idSuffix: values["id-suffix"],
        allSubjects: values["all-subjects"],
        signal: stop.signal,
        onProgress: (p) =>
          progress.update(`${p.published}/${info.count} published, ${p.skipped} skipped`),
      });
      progress.done(
        `${result.aborted ? "stopped" : "done"}: ${result.published} published, ` +
          `${result.skipped} skipped (non-image subjects)`,
      );
      return result.aborted ? 130 : 0;
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
      await connection.close();
    }
  });
}
