/**
 * `record`: captures live core-NATS image traffic into a fixture stream directory.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { recordStream } from "../streams/record.ts";
import { assertStreamDirWritable } from "../streams/format.ts";
import {
  commandLine,
  connectNats,
  natsUrl,
  positiveInteger,
  positiveNumber,
  progressReporter,
  runCommand,
  UsageError,
} from "../streams/cli_support.ts";
import { NATS_CLI_OPTIONS, NATS_OPTIONS_HELP } from "../bus/connection.ts";

/** Help text of `record`. */
export const RECORD_HELP =
  `usage: main.ts record --out DIR [--subject SUBJECT] [--duration S] [--count N]
                      [--server URL] [connection options] [--force]

Records core-NATS messages (subject, headers, payload, timing) into the stream directory DIR
(format: fixtures/README.md). Stops after --count messages, after --duration seconds
(whichever comes first) or on Ctrl-C; what was recorded is kept. The manifest stays empty:
labels never travel with images.

options:
  --subject SUBJECT  subject to subscribe to, wildcards allowed (default: inspect.>)
  --out DIR          stream directory to create; must be absent or empty
  --duration S       stop after S seconds
  --count N          stop after N messages
${NATS_OPTIONS_HELP}
  --force            replace an existing stream in DIR
  --help             show this text`;

/** Entry point of `main.ts record`; returns the exit code (0 ok, 1 failure, 2 usage). */
export function recordCommand(args: string[]): Promise<number> {
  return runCommand("record", async () => {
    const { values, positionals } = parseArgs({
      args,
      options: {
        subject: { type: "string", default: "inspect.>" },
        out: { type: "string" },
        duration: { type: "string" },
        count: { type: "string" },
        ...NATS_CLI_OPTIONS,
        force: { type: "boolean", default: false },
        help: { type: "boolean", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      console.log(RECORD_HELP);
      return 0;
    }
    if (positionals.length > 0) throw new UsageError(`unexpected argument ${positionals[0]}`);
    if (!values.out) throw new UsageError("--out DIR is required");
    if (!/^[^\s]+$/.test(values.subject)) throw new UsageError("--subject must be one word");
    const count = values.count === undefined ? undefined : positiveInteger("count", values.count);
    const durationMs = values.duration === undefined
      ? undefined
      : positiveNumber("duration", values.duration) * 1000;
    // Refuse before connecting: no broker is needed to learn the directory is taken.
    await assertStreamDirWritable(values.out, values.force);

    const url = natsUrl(values.server);
    const connection = await connectNats(values, "inspect-record");
    const stop = new AbortController();
    const onSigint = () => stop.abort();
    Deno.addSignalListener("SIGINT", onSigint);
    const progress = progressReporter("record");
    const limits = [count && `${count} messages`, durationMs && `${durationMs / 1000} s`]
      .filter(Boolean).join(" or ");
    progress.done(
      `recording ${values.subject} from ${url} into ${values.out}` +
        (limits ? ` (until ${limits})` : " (until Ctrl-C)"),
    );
    try {
      const result = await recordStream({
        connection,
        subject: values.subject,
        out: values.out,
        force: values.force,
        count,
        durationMs,
        signal: stop.signal,
        createdBy: commandLine("record", args),
        onProgress: (p) => progress.update(`${p.recorded} messages, ${formatBytes(p.bytes)}`),
      });
      progress.done(
        `done: ${result.recorded} messages, ${formatBytes(result.bytes)} in ${values.out}`,
      );
      return 0;
    } finally {
      Deno.removeSignalListener("SIGINT", onSigint);
      await connection.close();
    }
  });
}

function formatBytes(bytes: number): string {
  return bytes < 1024 * 1024
    ? `${(bytes / 1024).toFixed(1)} KiB`
    : `${(bytes / 1048576).toFixed(1)} MiB`;
}
