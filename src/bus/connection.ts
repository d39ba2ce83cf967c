/**
 * How every command reaches NATS: the server URL, one authentication method and TLS, taken
 * from the `nats` CLI's flags (`--server`, `--creds`, `--nkey`, `--user`, `--password`,
 * `--token`, `--tlsca`, `--tlscert`, `--tlskey`) or the matching environment variables
 * (`NATS_URL`, `NATS_CREDS`, `NATS_NKEY`, `NATS_USER`, `NATS_PASSWORD`, `NATS_TOKEN`,
 * `NATS_CA`, `NATS_CERT`, `NATS_KEY`); a flag wins over its variable. `user:pass@` or
 * `token@` in a URL are honoured and removed from the URL.
 *
 * Secrets (passwords, tokens, seeds) live only in a {@link NatsAuth} in memory: never in a
 * pipeline file, never in a log line ({@link describeNats} names the method, not the secret),
 * never in a status answer. A connection that fails at start fails with one line naming the
 * server, the method and what the server (or TLS) said.
 *
 * @module
 */
import {
  type Authenticator,
  connect,
  type ConnectionOptions,
  credsAuthenticator,
  type NatsConnection,
  nkeyAuthenticator,
  nkeys,
  type TlsOptions,
} from "nats";

/** Server used when neither `--server` nor `NATS_URL` is given. */
export const DEFAULT_NATS_URL = "nats://127.0.0.1:4222";

/** Credentials and TLS files of a connection (file paths; the secrets stay in memory). */
export interface NatsAuth {
  /** User name (with {@link password}). */
  user?: string;
  /** Password of {@link user}. */
  password?: string;
  /** Authentication token. */
  token?: string;
  /** Credentials file (user JWT + NKey seed), as `nsc` and the `nats` CLI write it. */
  credsFile?: string;
  /** File holding a user NKey seed (`SU...`). */
  nkeySeedFile?: string;
  /** CA certificate(s) (PEM) that signed the server's certificate. */
  tlsCaFile?: string;
  /** Client certificate (PEM), for servers that verify clients. */
  tlsCertFile?: string;
  /** Private key (PEM) of {@link tlsCertFile}. */
  tlsKeyFile?: string;
}

/** Where and how to connect: credential-free server URL(s) plus authentication. */
export interface NatsTarget {
  /** Server URL, or several separated by commas; never holds credentials. */
  url: string;
  /** Authentication and TLS. */
  auth: NatsAuth;
}

/** Connection flags as `node:util` parseArgs returns them. */
export interface NatsFlagValues {
  server?: string;
  creds?: string;
  nkey?: string;
  user?: string;
  password?: string;
  token?: string;
  tlsca?: string;
  tlscert?: string;
  tlskey?: string;
}

/** `node:util` parseArgs options of {@link NatsFlagValues} (the `nats` CLI's names). */
export const NATS_CLI_OPTIONS = {
  server: { type: "string" },
  creds: { type: "string" },
  nkey: { type: "string" },
  user: { type: "string" },
  password: { type: "string" },
  token: { type: "string" },
  tlsca: { type: "string" },
  tlscert: { type: "string" },
  tlskey: { type: "string" },
} as const;

/** Help lines of {@link NATS_CLI_OPTIONS}. */
export const NATS_OPTIONS_HELP =
  `  --server URL        NATS server(s), comma separated (default: $NATS_URL or ${DEFAULT_NATS_URL});
                      user:password@ or token@ in the URL are used as credentials
  --creds FILE        credentials file: user JWT + NKey seed ($NATS_CREDS)
  --nkey FILE         file holding a user NKey seed ($NATS_NKEY)
  --user USER         user name ($NATS_USER), with --password PASSWORD ($NATS_PASSWORD)
  --token TOKEN       authentication token ($NATS_TOKEN)
  --tlsca FILE        CA certificate(s) of the server, PEM ($NATS_CA)
  --tlscert FILE      client certificate, PEM ($NATS_CERT), with --tlskey FILE ($NATS_KEY)
                      (prefer the environment or a file over --password/--token: command
                      lines are visible to other users of the machine)`;

/** A connection setting that cannot work (the command exits with status 2). */
export class NatsSettingsError extends Error {
  /** Creates the error. */
  constructor(message: string) {
    super(message);
    this.name = "NatsSettingsError";
  }
}

/** A connection that failed at start; the message is one line meant for the user. */
export class NatsConnectError extends Error {
  /** The server's or the TLS layer's own words (e.g. `Authorization Violation`). */
  readonly reason: string;
  /** True when nothing listened at the URL (the server is not running there). */
  readonly refused: boolean;
  /** Creates the error. */
  constructor(message: string, reason: string, refused: boolean) {
    super(message);
    this.name = "NatsConnectError";
    this.reason = reason;
    this.refused = refused;
  }
}

type Env = (name: string) => string | undefined;

const processEnv: Env = (name) => Deno.env.get(name);

/**
 * The connection target from flags, else environment variables, else the default URL.
 * Credentials in the URL are moved into {@link NatsAuth}; conflicting or incomplete settings
 * throw a {@link NatsSettingsError} naming the flags or variables at fault.
 */
export function natsTarget(flags: NatsFlagValues = {}, env: Env = processEnv): NatsTarget {
  const pick = (flag: keyof NatsFlagValues, variable: string) => {
    const value = flags[flag] ?? env(variable);
    return value === undefined || value === "" ? undefined : value;
  };
  const { url, user: urlUser, password: urlPassword, token: urlToken } = splitCredentials(
    pick("server", "NATS_URL") ?? DEFAULT_NATS_URL,
  );
  const auth: NatsAuth = {
    user: pick("user", "NATS_USER") ?? urlUser,
    password: pick("password", "NATS_PASSWORD") ?? urlPassword,
    token: pick("token", "NATS_TOKEN") ?? urlToken,
    credsFile: pick("creds", "NATS_CREDS"),
    nkeySeedFile: pick("nkey", "NATS_NKEY"),
    tlsCaFile: pick("tlsca", "NATS_CA"),
    tlsCertFile: pick("tlscert", "NATS_CERT"),
    tlsKeyFile: pick("tlskey", "NATS_KEY"),
  };
  for (const key of Object.keys(auth) as (keyof NatsAuth)[]) {
    if (auth[key] === undefined) delete auth[key];
  }
  checkAuth(auth);
  return { url, auth };
}

/**
 * The target of a URL (whose `user:pass@` or `token@` are honoured) plus `auth`, which wins
 * over credentials in the URL.
 */
export function natsTargetOf(url: string, auth: NatsAuth = {}): NatsTarget {
  const { url: clean, ...fromUrl } = splitCredentials(url);
  const merged: NatsAuth = { ...(hasCredential(auth) ? {} : fromUrl), ...auth };
  for (const key of Object.keys(merged) as (keyof NatsAuth)[]) {
    if (merged[key] === undefined) delete merged[key];
  }
  checkAuth(merged);
  return { url: clean, auth: merged };
}

function hasCredential(auth: NatsAuth): boolean {
  return [auth.credsFile, auth.nkeySeedFile, auth.user, auth.token].some((v) => v !== undefined);
}

/** Throws a {@link NatsSettingsError} when `auth` names no single usable method. */
export function checkAuth(auth: NatsAuth): void {
  const methods = [
    auth.credsFile !== undefined && "--creds/NATS_CREDS",
    auth.nkeySeedFile !== undefined && "--nkey/NATS_NKEY",
    (auth.user !== undefined || auth.password !== undefined) && "--user/NATS_USER",
    auth.token !== undefined && "--token/NATS_TOKEN",
  ].filter((m): m is string => typeof m === "string");
  if (methods.length > 1) {
    throw new NatsSettingsError(
      `choose one NATS authentication method, got ${methods.join(" and ")}`,
    );
  }
  if (auth.user !== undefined && auth.password === undefined) {
    throw new NatsSettingsError("NATS user is set but no password (--password or NATS_PASSWORD)");
  }
  if (auth.password !== undefined && auth.user === undefined) {
    throw new NatsSettingsError("NATS password is set but no user (--user or NATS_USER)");
  }
  if ((auth.tlsCertFile === undefined) !== (auth.tlsKeyFile === undefined)) {
    throw new NatsSettingsError(
      "a TLS client certificate needs both --tlscert/NATS_CERT and --tlskey/NATS_KEY",
    );
  }
}

/**
 * Splits `user:pass@` or `token@` out of each URL of a comma-separated list (the NATS
 * convention: a user without a password is a token). Every URL must agree on them.
 */
export function splitCredentials(
  urls: string,
): { url: string; user?: string; password?: string; token?: string } {
  const found = new Set<string>();
  let out: { user?: string; password?: string; token?: string } = {};
  const clean = urls.split(",").map((raw) => raw.trim()).filter((u) => u !== "").map((raw) => {
    const withScheme = raw.includes("://") ? raw : `nats://${raw}`;
    let parsed: URL;
    try {
      parsed = new URL(withScheme);
    } catch {
      throw new NatsSettingsError(`NATS server ${JSON.stringify(redactUrl(raw))} is not a URL`);
    }
    if (parsed.username === "" && parsed.password === "") return raw;
    const user = decodeURIComponent(parsed.username);
    const password = decodeURIComponent(parsed.password);
    out = password === "" ? { token: user } : { user, password };
    found.add(JSON.stringify(out));
    parsed.username = "";
    parsed.password = "";
    return parsed.toString().replace(/\/$/, "");
  });
  if (clean.length === 0) throw new NatsSettingsError("no NATS server URL given");
  if (found.size > 1) {
    throw new NatsSettingsError("the NATS server URLs carry different credentials");
  }
  return { url: clean.join(","), ...out };
}

/** `url` with any `user:pass@` replaced by `***@`, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^/@]*@/g, "//***@");
}

/** The authentication method in words, without its secret (for logs and errors). */
export function authMethod(auth: NatsAuth): string {
  if (auth.credsFile) return `creds file ${auth.credsFile}`;
  if (auth.nkeySeedFile) return `NKey seed file ${auth.nkeySeedFile}`;
  if (auth.user !== undefined) return `user ${JSON.stringify(auth.user)} with password`;
  if (auth.token !== undefined) return "token";
  return "no credentials";
}

/** E.g. `nats://10.0.0.5:4222 (user "pipeline" with password, TLS with client certificate)`. */
export function describeNats(target: NatsTarget): string {
  return `${redactUrl(target.url)} (${describeAuth(target.auth)})`;
}

function describeAuth(auth: NatsAuth): string {
  const tls = auth.tlsCertFile ? ", TLS with client certificate" : auth.tlsCaFile ? ", TLS" : "";
  return authMethod(auth) + tls;
}

/** True when any credential or TLS file is configured. */
export function isSecured(auth: NatsAuth): boolean {
  return Object.values(auth).some((value) => value !== undefined);
}

async function readSecretFile(path: string, what: string): Promise<Uint8Array> {
  try {
    return await Deno.readFile(path);
  } catch (error) {
    throw new NatsSettingsError(`cannot read the ${what} ${path}: ${(error as Error).message}`);
  }
}

async function readText(path: string, what: string): Promise<string> {
  return new TextDecoder().decode(await readSecretFile(path, what));
}

async function authenticator(auth: NatsAuth): Promise<Authenticator | undefined> {
  if (auth.credsFile) {
    const creds = await readSecretFile(auth.credsFile, "NATS credentials file");
    const text = new TextDecoder().decode(creds);
    if (
      !/-----BEGIN NATS USER JWT-----/.test(text) || !/-----BEGIN USER NKEY SEED-----/.test(text)
    ) {
      throw new NatsSettingsError(
        `${auth.credsFile} is not a NATS credentials file (no user JWT and NKey seed blocks)`,
      );
    }
    return credsAuthenticator(creds);
  }
  if (auth.nkeySeedFile) {
    const text = (await readText(auth.nkeySeedFile, "NKey seed file")).trim();
    const seed = text.split(/\s+/).find((word) => /^SU[A-Z2-7]{50,}$/.test(word));
    if (!seed) {
      throw new NatsSettingsError(`${auth.nkeySeedFile} holds no user NKey seed (SU...)`);
    }
    const bytes = new TextEncoder().encode(seed);
    try {
      nkeys.fromSeed(bytes);
    } catch (error) {
      throw new NatsSettingsError(
        `${auth.nkeySeedFile}: not a valid NKey seed (${(error as Error).message})`,
      );
    }
    return nkeyAuthenticator(bytes);
  }
  return undefined;
}

async function tlsOptions(url: string, auth: NatsAuth): Promise<TlsOptions | undefined> {
  const wanted = auth.tlsCaFile || auth.tlsCertFile ||
    url.split(",").some((u) => u.trim().startsWith("tls://"));
  if (!wanted) return undefined;
  const tls: TlsOptions = {};
  if (auth.tlsCaFile) tls.ca = await readText(auth.tlsCaFile, "TLS CA file");
  if (auth.tlsCertFile) tls.cert = await readText(auth.tlsCertFile, "TLS client certificate");
  if (auth.tlsKeyFile) tls.key = await readText(auth.tlsKeyFile, "TLS client key");
  return tls;
}

/** What {@link natsConnectionOptions} adds to a target. */
export interface ConnectBehaviour {
  /** Client name shown in the server's connection list. */
  name: string;
  /**
   * Reconnect after a lost connection: true (forever, for long-running stages) or false (a
   * one-shot command fails instead). Either way the first connection is tried once, and
   * the client gives up after repeated authorization errors instead of looping.
   */
  reconnect: boolean;
  /** Longest wait for the first connection, ms (default 10 000). */
  timeoutMs?: number;
}

/** nats.js options for `target`: servers, one authenticator, TLS, reconnect policy. */
export async function natsConnectionOptions(
  target: NatsTarget,
  behaviour: ConnectBehaviour,
): Promise<ConnectionOptions> {
  checkAuth(target.auth);
  const { auth } = target;
  const options: ConnectionOptions = {
    servers: target.url.split(",").map((u) => u.trim()),
    name: behaviour.name,
    maxReconnectAttempts: behaviour.reconnect ? -1 : 0,
    timeout: behaviour.timeoutMs ?? 10_000,
    // Two authorization errors in a row close the connection: no endless reconnect loop.
    ignoreAuthErrorAbort: false,
  };
  const custom = await authenticator(auth);
  if (custom) options.authenticator = custom;
  if (auth.user !== undefined) {
    options.user = auth.user;
    options.pass = auth.password;
  }
  if (auth.token !== undefined) options.token = auth.token;
  const tls = await tlsOptions(target.url, auth);
  if (tls) options.tls = tls;
  guardStraySocketErrors();
  return options;
}

let strayErrorsGuarded = false;
/** The last stray TLS alert and when it came (reported by {@link connectError}). */
let lastTlsAlert: { message: string; atMs: number } | undefined;

/**
 * Deno's `node:net`/`node:tls` can raise a socket error after nats.js stopped listening to
 * that socket: a TLS 1.3 server refusing the client certificate after the handshake, or a
 * server resetting a connection it dropped (e.g. credentials revoked on reload). Unhandled,
 * it would end the process with a stack trace; the connection's own close or reconnect
 * already reports the loss, so these are dropped (once per isolate). TLS alerts are kept for
 * {@link connectError}.
 */
function guardStraySocketErrors(): void {
  if (strayErrorsGuarded) return;
  strayErrorsGuarded = true;
  globalThis.addEventListener("error", (event: ErrorEvent) => {
    const error = event.error as { code?: string; message?: string } | undefined;
    const message = String(error?.message ?? event.message ?? "");
    const code = String(error?.code ?? "");
    const alert = /received fatal alert/i.test(message);
    if (!alert && !["ECONNRESET", "EPIPE"].includes(code)) return;
    event.preventDefault();
    if (alert) lastTlsAlert = { message, atMs: performance.now() };
  });
}

/**
 * Connects to `target`, or throws a {@link NatsConnectError} (or {@link NatsSettingsError})
 * whose message is one line: the server, the method and what went wrong.
 */
export async function connectNats(
  target: NatsTarget,
  behaviour: ConnectBehaviour,
): Promise<NatsConnection> {
  const options = await natsConnectionOptions(target, behaviour);
  const startedMs = performance.now();
  try {
    return await connect(options);
  } catch (error) {
    const alert = lastTlsAlert && lastTlsAlert.atMs >= startedMs ? lastTlsAlert : undefined;
    throw connectError(target, alert ? new Error(`TLS ${alert.message}`) : error);
  }
}

/** Turns a nats.js connect failure into a {@link NatsConnectError}. */
export function connectError(target: NatsTarget, error: unknown): NatsConnectError {
  const e = error as { code?: string; message?: string; chainedError?: { message?: string } };
  const code = String(e?.code ?? "");
  const said = (e?.chainedError?.message ?? e?.message ?? String(error)).trim()
    .replace(/^'(.*)'$/, "$1");
  const where = `cannot connect to NATS at ${describeNats(target)}`;
  const refused = code === "CONNECTION_REFUSED" || /ECONNREFUSED|connection refused/i.test(said);
  let reason: string;
  if (refused) reason = "nothing answers there (connection refused)";
  else if (code === "AUTHORIZATION_VIOLATION" || /authorization|authentication/i.test(said)) {
    reason = `the server refused the credentials ("${said}")`;
  } else if (/certificate|tls|ssl|handshake/i.test(`${code} ${said}`)) {
    const { tlsCaFile, tlsCertFile } = target.auth;
    const files = [
      tlsCaFile ? `CA ${tlsCaFile}` : "system CAs",
      tlsCertFile ? `client certificate ${tlsCertFile}` : "no client certificate",
    ];
    reason = `TLS failed ("${said}"; ${files.join("; ")})`;
  } else if (code === "TIMEOUT") {
    reason = "no answer in time (timeout)";
    const { tlsCaFile, tlsCertFile } = target.auth;
    if ((tlsCaFile || target.url.includes("tls://")) && !tlsCertFile) {
      reason += "; over TLS without a client certificate: does the server require one " +
        "(--tlscert/--tlskey)?";
    }
  } else reason = said;
  return new NatsConnectError(`${where}: ${reason}`, said, refused);
}
