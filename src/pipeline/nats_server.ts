/**
 * A local `nats-server` with JetStream as a child process: for `run` when nothing listens on
 * `NATS_URL`, and for tests (free port, temporary store).
 *
 * @module
 */
import { connectNats, isSecured, NatsConnectError, type NatsTarget } from "../bus/connection.ts";

/** How to get the server where it is missing. */
export const NATS_INSTALL_HINT =
  "nats-server is not installed: install it with `apt-get install nats-server` " +
  "(Debian/Ubuntu) or from https://github.com/nats-io/nats-server/releases, " +
  "or point NATS_URL at a running server with JetStream enabled (`nats-server -js`).";

/** A running child server. */
export interface NatsServerHandle {
  /** Client URL, e.g. `nats://127.0.0.1:40123`. */
  url: string;
  /** Port it listens on. */
  port: number;
  /** JetStream store directory. */
  storeDir: string;
  /** Stops the server (SIGTERM, then waits for it to exit). */
  stop(): Promise<void>;
  /** Kills the server with SIGKILL (a crash: no clean shutdown) and waits for it to exit. */
  kill(): Promise<void>;
  /** Makes the server re-read its configuration file (SIGHUP), e.g. after a credential change. */
  reload(): void;
  /** Authorization and permission errors the server logged so far (for security tests). */
  readonly violations: readonly string[];
}

/** Options of {@link startNatsServer}. */
export interface StartNatsServerOptions {
  /** JetStream store directory (created if missing). */
  storeDir: string;
  /** Port; 0 (default) picks a free one. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Server binary (default: found on PATH or in /usr/sbin, /usr/local/bin). */
  binary?: string;
  /** Longest wait for "Server is ready" (default 15 s). */
  timeoutMs?: number;
  /**
   * A server configuration file (`-c`): accounts, users, TLS. The command-line port, address
   * and store directory still apply.
   */
  configFile?: string;
  /** Extra environment of the server process (variables a configuration file refers to). */
  env?: Record<string, string>;
  /** Extra command-line arguments (e.g. `--cluster …` for a JetStream cluster node). */
  args?: string[];
}

/** The nats-server binary on this machine, or null. */
export async function findNatsServerBinary(): Promise<string | null> {
  const dirs = [...(Deno.env.get("PATH") ?? "").split(":"), "/usr/sbin", "/usr/local/bin"];
  for (const dir of dirs.filter((d) => d !== "")) {
    const path = `${dir}/nats-server`;
    try {
      const info = await Deno.stat(path);
      if (info.isFile && ((info.mode ?? 0o111) & 0o111) !== 0) return path;
    } catch {
      // not here
    }
  }
  return null;
}

/** Starts `nats-server -js` and resolves once it accepts clients. */
export async function startNatsServer(options: StartNatsServerOptions): Promise<NatsServerHandle> {
  const binary = options.binary ?? await findNatsServerBinary();
  if (!binary) throw new Error(NATS_INSTALL_HINT);
  await Deno.mkdir(options.storeDir, { recursive: true });
  const host = options.host ?? "127.0.0.1";
  const port = options.port && options.port > 0 ? String(options.port) : "-1";
  const child = new Deno.Command(binary, {
    args: [
      ...(options.configFile ? ["-c", options.configFile] : []),
      ...["-js", "-a", host, "-p", port, "-sd", options.storeDir],
      ...(options.args ?? []),
    ],
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const recent: string[] = [];
  const violations: string[] = [];
  let resolveReady!: (port: number) => void;
  let rejectReady!: (error: Error) => void;
  const ready = new Promise<number>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  // Keep reading stderr for the server's whole life: a full pipe would block it.
  const reader = (async () => {
    let listening: number | undefined;
    let pending = "";
    const decoder = new TextDecoder();
    for await (const chunk of child.stderr) {
      pending += decoder.decode(chunk, { stream: true });
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) {
        recent.push(line);
        if (recent.length > 40) recent.shift();
        if (/Violation/.test(line) && violations.length < 1000) violations.push(line);
        const match = line.match(/Listening for client connections on .*:(\d+)\s*$/);
        if (match) listening = Number(match[1]);
        if (/Server is ready/.test(line) && listening !== undefined) resolveReady(listening);
      }
    }
  })();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const timer = setTimeout(
    () => rejectReady(new Error(`nats-server did not start within ${timeoutMs} ms`)),
    timeoutMs,
  );
  child.status.then((status) =>
    rejectReady(new Error(`nats-server exited with code ${status.code}`))
  );
  let listeningPort: number;
  try {
    listeningPort = await ready;
  } catch (error) {
    try {
      child.kill("SIGKILL");
    } catch {
      // already gone
    }
    await child.status;
    await reader.catch(() => undefined);
    throw new Error(`${(error as Error).message}:\n${recent.join("\n")}`);
  } finally {
    clearTimeout(timer);
  }
  let stopped: Promise<void> | undefined;
  const end = (signal: Deno.Signal) => {
    stopped ??= (async () => {
      try {
        child.kill(signal);
      } catch {
        // already gone
      }
      await child.status;
      await reader.catch(() => undefined);
    })();
    return stopped;
  };
  return {
    url: `nats://${host}:${listeningPort}`,
    port: listeningPort,
    storeDir: options.storeDir,
    violations,
    reload() {
      child.kill("SIGHUP");
    },
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
  };
}

/** True when a NATS server answers at `url` (an open server, or `target` with its credentials). */
export async function natsAnswers(target: string | NatsTarget): Promise<boolean> {
  try {
    const nc = await connectNats(asTarget(target), {
      name: "inspect-probe",
      reconnect: false,
      timeoutMs: 2_000,
    });
    await nc.close();
    return true;
  } catch {
    return false;
  }
}

function asTarget(target: string | NatsTarget): NatsTarget {
  return typeof target === "string" ? { url: target, auth: {} } : target;
}

/** A NATS server to use: the one at `url`, or a local child started for it. */
export interface AvailableNats {
  /** URL to connect to. */
  url: string;
  /** The child started here, or null when a server already answered. */
  child: NatsServerHandle | null;
}

/**
 * Uses the server at `target` when it answers. Otherwise, for a loopback URL without
 * credentials, starts a local `nats-server -js` on that port with its store in `storeDir`;
 * a remote URL that does not answer, or a server that refuses the credentials or TLS, is an
 * error (one line, from {@link connectNats}). Throws {@link NATS_INSTALL_HINT} when the
 * binary is missing.
 */
export async function ensureNatsServer(
  target: string | NatsTarget,
  storeDir: string,
): Promise<AvailableNats> {
  const { url, auth } = asTarget(target);
  try {
    const nc = await connectNats({ url, auth }, {
      name: "inspect-probe",
      reconnect: false,
      timeoutMs: 2_000,
    });
    await nc.close();
    return { url, child: null };
  } catch (error) {
    // A server that answered and refused us must not be replaced by an open local one.
    if (!(error instanceof NatsConnectError) || !error.refused) throw error;
    if (isSecured(auth)) throw error;
  }
  let parsed: URL;
  try {
    parsed = new URL(url.includes("://") ? url : `nats://${url}`);
  } catch {
    throw new Error(`NATS_URL ${JSON.stringify(url)} is not a URL`);
  }
  const host = parsed.hostname.replace(/^\[|\]$/g, "");
  if (!["127.0.0.1", "localhost", "::1"].includes(host)) {
    throw new Error(`no NATS server answers at ${url}`);
  }
  const port = Number(parsed.port || 4222);
  const child = await startNatsServer({
    storeDir,
    port,
    host: host === "localhost" ? "127.0.0.1" : host,
  });
  return { url: child.url, child };
}
