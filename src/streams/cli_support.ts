/**
 * Small pieces shared by the `record` and `replay` commands: NATS connection with a clear
 * error, throttled progress lines on stderr, and option parsing helpers.
 *
 * @module
 */
import { connect, type NatsConnection } from "nats";

/** Server used when neither `--server` nor `NATS_URL` is given. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/** `--server`, else the `NATS_URL` environment variable, else {@link DEFAULT_NATS_URL}. */
export function natsUrl(flag: string | undefined): string {
  return flag ?? Deno.env.get("NATS_URL") ?? DEFAULT_NATS_URL;
}

/** Connects to `url`, turning failures into one readable error. */
export async function connectNats(url: string, name: string): Promise<NatsConnection> {
  try {
    return await connect({ servers: url, name, maxReconnectAttempts: 0 });
  } catch (error) {
    throw new Error(
      `cannot connect to NATS at ${url}: ${error instanceof Error ? error.message : error}`,
    );
  }
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
    if (error instanceof UsageError || error instanceof TypeError && isParseArgsError(error)) {
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
