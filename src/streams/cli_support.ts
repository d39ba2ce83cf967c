/**
 * Small pieces shared by the `record` and `replay` commands: NATS connection with a clear
 * error, throttled progress lines on stderr, and option parsing helpers.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import {
  connectNats as connectNatsTarget,
  type NatsFlagValues,
  NatsSettingsError,
  natsTarget,
} from "../bus/connection.ts";

export { DEFAULT_NATS_URL } from "../bus/connection.ts";

/** `--server`, else the `NATS_URL` environment variable, else the default (credentials removed). */
export function natsUrl(flag: string | undefined): string {
  return natsTarget({ server: flag }).url;
}

/**
 * Connects a one-shot command (no reconnect) with the connection flags (`--server`,
 * `--creds`, `--user`, ...) or their environment variables; failures are one clear line.
 */
export async function connectNats(flags: NatsFlagValues, name: string): Promise<NatsConnection> {
  return await connectNatsTarget(natsTarget(flags), { name, reconnect: false });
}

/** A usage error: the command prints it with its help hint and exits with status 2. */
export class UsageError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Parses a positive finite number option, or throws a {@link UsageError}. */
export function positiveNumber(flag: string, value: string): number {
  const n = Number(value);
  if (!(n > 0) || !Number.isFinite(n)) {
    throw new UsageError(`--${flag} must be a positive number, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Parses a positive integer option, or throws a {@link UsageError}. */
export function positiveInteger(flag: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n <= 0) {
    throw new UsageError(`--${flag} must be a positive integer, got ${JSON.stringify(value)}`);
  }
  return n;
}

/** Throttled progress lines on stderr (one per `everyMs` at most, plus the final one). */
export interface ProgressReporter {
  /** Reports the current state; printed if `everyMs` has passed since the last line. */
  update(line: string): void;
  /** Prints the final state unconditionally. */
  done(line: string): void;
}

/** Creates a {@link ProgressReporter} prefixed with `label`. */
export function progressReporter(label: string, everyMs = 1000): ProgressReporter {
  const encoder = new TextEncoder();
  let last = -Infinity;
  const print = (line: string) => Deno.stderr.writeSync(encoder.encode(`${label}: ${line}\n`));
  return {
    update(line: string) {
      const now = performance.now();
      if (now - last >= everyMs) {
        last = now;
        print(line);
      }
    },
    done: print,
  };
}

/** The command line as text, for `stream.json`'s `createdBy`. */
export function commandLine(command: string, args: string[]): string {
  const quote = (arg: string) =>
    /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'\\''`)}'`;
  return ["main.ts", command, ...args].map(quote).join(" ");
}

/**
 * Runs a command body, printing errors on stderr and mapping them to exit codes: usage
 * errors (including unknown flags) 2, anything else 1.
 */
export async function runCommand(name: string, body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (
      error instanceof UsageError || error instanceof NatsSettingsError ||
      error instanceof TypeError && isParseArgsError(error)
    ) {
      console.error(`${name}: ${message} (see ${name} --help)`);
      return 2;
    }
    console.error(`${name}: ${message}`);
    return 1;
  }
}

function isParseArgsError(error: TypeError): boolean {
  return "code" in error && String(error.code).startsWith("ERR_PARSE_ARGS");
}
