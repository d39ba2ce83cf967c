// Connection options (src/bus/connection.ts): flags and environment variables with the nats
// CLI's names, credentials in URLs, no secret in any message; and every authentication method
// against a real nats-server, through the `stage` command as a plant runs it.
import assert from "node:assert/strict";
import {
  connectNats,
  describeNats,
  NatsConnectError,
  NatsSettingsError,
  natsTarget,
  natsTargetOf,
} from "../src/bus/connection.ts";
import { startTestNatsServer, type TestNatsServer } from "../src/harness/nats_server.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";
import {
  makeOperatorSetup,
  makeTlsFiles,
  newUserNkey,
  tlsServerBlock,
} from "../src/harness/secure_nats.ts";

const env = (values: Record<string, string>) => (name: string) => values[name];

Deno.test("natsTarget: flags win over NATS_* variables, URL credentials become auth", () => {
  const fromEnv = natsTarget({}, env({ NATS_URL: "nats://alice:s3cret@10.0.0.5:4222" }));
  assert.deepEqual(fromEnv, {
    url: "nats://10.0.0.5:4222",
    auth: { user: "alice", password: "s3cret" },
  });
  const token = natsTarget({ server: "tls://t0ken@nats.plant:4443" }, env({}));
  assert.deepEqual(token, { url: "tls://nats.plant:4443", auth: { token: "t0ken" } });
  const flags = natsTarget(
    { user: "bob", password: "pw", tlsca: "/ca.pem" },
    env({ NATS_USER: "alice", NATS_PASSWORD: "x", NATS_CERT: "/c.pem", NATS_KEY: "/k.pem" }),
  );
  assert.deepEqual(flags.auth, {
    user: "bob",
    password: "pw",
    tlsCaFile: "/ca.pem",
    tlsCertFile: "/c.pem",
    tlsKeyFile: "/k.pem",
  });
  assert.equal(natsTarget({}, env({})).url, "nats://127.0.0.1:4222");
  // Explicit credentials win over the URL's.
  assert.deepEqual(natsTargetOf("nats://a:b@h:1", { token: "t" }).auth, { token: "t" });
});

Deno.test("natsTarget: conflicting or incomplete settings are one clear error", () => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ NATS_CREDS: "/a.creds", NATS_TOKEN: "t" }, /one NATS authentication method/],
    [{ NATS_USER: "alice" }, /no password/],
    [{ NATS_PASSWORD: "pw" }, /no user/],
    [{ NATS_CERT: "/c.pem" }, /both --tlscert\/NATS_CERT and --tlskey\/NATS_KEY/],
  ];
  for (const [variables, message] of cases) {
    assert.throws(() => natsTarget({}, env(variables)), (error: Error) => {
      assert.ok(error instanceof NatsSettingsError);
      assert.match(error.message, message);
      return true;
    });
  }
});

Deno.test("describeNats names the method, never the secret", () => {
  const target = natsTarget({}, env({ NATS_URL: "nats://pipeline:hunter2@h:4222" }));
  const text = describeNats(target);
  assert.equal(text, 'nats://h:4222 (user "pipeline" with password)');
  assert.ok(!text.includes("hunter2"));
  const token = describeNats(natsTarget({ token: "t0ps3cret", tlsca: "/ca.pem" }, env({})));
  assert.ok(!token.includes("t0ps3cret") && token.includes("token, TLS"));
});

/** A server started with `config` (written to a temporary file). */
async function serverWith(dir: string, config: string): Promise<TestNatsServer> {
  const file = `${dir}/server.conf`;
  await Deno.writeTextFile(file, config + "\n");
  return await startTestNatsServer({ configFile: file });
}

/**
 * Runs `main.ts stage ingest --line demo` with `args` and `variables`: waits for its
 * "running" line, stops it with SIGINT and returns its output, or returns at once when it
 * exits first (a refused connection).
 */
async function runIngest(
  args: string[],
  variables: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await runMain(["stage", "ingest", "--line", "demo", ...args], variables);
}

/** Runs `main.ts <args>` until its "running" line, then SIGINT (see {@link runIngest}). */
async function runMain(
  args: string[],
  variables: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const checkpoints = await Deno.makeTempDir({ prefix: "auth-ckpt-" });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "main.ts", ...args, "--progress", "0", "--checkpoints", checkpoints],
    env: { NO_COLOR: "1", ...variables },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let stdout = "";
  const decoder = new TextDecoder();
  let signalled = false;
  const reader = (async () => {
    for await (const chunk of child.stdout) {
      stdout += decoder.decode(chunk, { stream: true });
      if (!signalled && /: running /.test(stdout)) {
        signalled = true; // once: a second SIGINT forces the exit
        child.kill("SIGINT");
      }
    }
  })();
  const stderrText = new Response(child.stderr).text();
  const timer = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const status = await child.status;
  clearTimeout(timer);
  await reader;
  await Deno.remove(checkpoints, { recursive: true }).catch(() => undefined);
  return { code: status.code, stdout, stderr: await stderrText };
}

/** Asserts the CLI joined the server, served, and stopped cleanly. */
function assertJoined(result: { code: number; stdout: string; stderr: string }): void {
  assert.equal(result.code, 0, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /line \w+: running /);
  assert.match(result.stdout, /stopped cleanly/);
}

/** Asserts one clear line on stderr naming server, method and reason, and exit status 1. */
function assertRefused(
  result: { code: number; stdout: string; stderr: string },
  method: RegExp,
  reason: RegExp,
  secret?: string,
): void {
  assert.equal(result.code, 1, `exit ${result.code}\n${result.stdout}\n${result.stderr}`);
  const lines = result.stderr.trim().split("\n");
  assert.equal(lines.length, 1, `expected one line, got:\n${result.stderr}`);
  assert.match(lines[0], /cannot connect to NATS at nats:\/\/127\.0\.0\.1:\d+/);
  assert.match(lines[0], method);
  assert.match(lines[0], reason);
  assert.ok(!/\bat .*\.ts:\d+/.test(result.stderr), "no stack trace");
  if (secret) assert.ok(!(result.stdout + result.stderr).includes(secret), "secret printed");
}

Deno.test("user/password: the stage joins with --user/--password, a wrong password fails clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-user-" });
  await using server = await serverWith(
    dir,
    'authorization { users: [ { user: "pipeline", password: "right-horse-battery" } ] }',
  );
  try {
    assertJoined(
      await runIngest([
        "--server",
        server.url,
        "--user",
        "pipeline",
        "--password",
        "right-horse-battery",
      ]),
    );
    // user:pass@ in NATS_URL is honoured too.
    const withCredentials = server.url.replace("nats://", "nats://pipeline:right-horse-battery@");
    assertJoined(await runIngest([], { NATS_URL: withCredentials }));
    assertRefused(
      await runIngest([], {
        NATS_URL: server.url,
        NATS_USER: "pipeline",
        NATS_PASSWORD: "wrong-pw-1",
      }),
      /user "pipeline" with password/,
      /refused the credentials \("Authorization Violation"\)/,
      "wrong-pw-1",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("token: the stage joins with NATS_TOKEN; no token fails clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-token-" });
  await using server = await serverWith(dir, 'authorization { token: "plant-token-42" }');
  try {
    assertJoined(await runIngest(["--server", server.url], { NATS_TOKEN: "plant-token-42" }));
    assertRefused(
      await runIngest(["--server", server.url]),
      /no credentials/,
      /Authorization Violation/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NKey: the stage joins with --nkey SEEDFILE; another key is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-nkey-" });
  const allowed = newUserNkey();
  const stranger = newUserNkey();
  await Deno.writeTextFile(`${dir}/pipeline.nk`, allowed.seed + "\n");
  await Deno.writeTextFile(`${dir}/stranger.nk`, stranger.seed + "\n");
  await using server = await serverWith(
    dir,
    `authorization { users: [ { nkey: ${allowed.publicKey} } ] }`,
  );
  try {
    assertJoined(await runIngest(["--server", server.url, "--nkey", `${dir}/pipeline.nk`]));
    assertRefused(
      await runIngest([], { NATS_URL: server.url, NATS_NKEY: `${dir}/stranger.nk` }),
      /NKey seed file .*stranger\.nk/,
      /Authorization Violation/,
      stranger.seed,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("creds file (operator/JWT mode): the stage joins with --creds; a foreign account is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-creds-" });
  const setup = await makeOperatorSetup();
  await Deno.writeTextFile(`${dir}/pipeline.creds`, setup.creds);
  await Deno.writeTextFile(`${dir}/foreign.creds`, setup.foreignCreds);
  await using server = await serverWith(dir, setup.serverConfig);
  try {
    assertJoined(await runIngest(["--server", server.url, "--creds", `${dir}/pipeline.creds`]));
    assertRefused(
      await runIngest([], { NATS_URL: server.url, NATS_CREDS: `${dir}/foreign.creds` }),
      /creds file .*foreign\.creds/,
      /Authorization Violation/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TLS with client certificates: the stage joins; a wrong CA or no certificate fails clearly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "auth-tls-" });
  const files = await makeTlsFiles(dir);
  await using server = await serverWith(dir, tlsServerBlock(files));
  try {
    assertJoined(
      await runIngest([
        ...["--server", server.url.replace("nats://", "tls://"), "--tlsca", files.ca],
        ...["--tlscert", files.clientCert, "--tlskey", files.clientKey],
      ]),
    );
    assertRefused(
      await runIngest([], {
        NATS_URL: server.url,
        NATS_CA: files.otherCa,
        NATS_CERT: files.clientCert,
        NATS_KEY: files.clientKey,
      }),
      /TLS with client certificate/,
      /TLS failed \(".*certificate.*"; CA .*other-ca\.pem; client certificate .*\)/,
    );
    // Without a client certificate the server ends the handshake: still one clear line.
    await assert.rejects(
      connectNats({ url: server.url, auth: { tlsCaFile: files.ca } }, {
        name: "no-client-cert",
        reconnect: false,
        timeoutMs: 3_000,
      }),
      (error: Error) =>
        error instanceof NatsConnectError &&
        // The server's alert, or (when the alert races the handshake) the timeout with a hint.
        /cannot connect .*: (TLS failed \(".*BadCertificate"; CA .*; no client certificate\)|no answer in time .*does the server require one \(--tlscert\/--tlskey\)\?)$/
          .test(error.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "run: the whole line joins a server requiring TLS client certificates and a password",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "auth-run-" });
    const files = await makeTlsFiles(dir);
    await using server = await serverWith(
      dir,
      tlsServerBlock(files) +
        '\nauthorization { users: [ { user: "line", password: "pw-9f3c1a77" } ] }',
    );
    // A small line (random teacher; no dashboard or metrics ports), served as `deno task run`.
    const pipeline = {
      line: "secured",
      model: { teacher: { kind: "random_pdn", width: "tiny" }, aeLatent: 16 },
      training: { batchSize: 4 },
      metrics: { enabled: false },
      dashboard: { enabled: false },
    };
    await Deno.writeTextFile(`${dir}/secured.json`, JSON.stringify(pipeline));
    try {
      const result = await runMain(["run", "--config", `${dir}/secured.json`], {
        NATS_URL: server.url,
        NATS_USER: "line",
        NATS_PASSWORD: "pw-9f3c1a77",
        NATS_CA: files.ca,
        NATS_CERT: files.clientCert,
        NATS_KEY: files.clientKey,
      });
      assertJoined(result);
      assert.match(result.stdout, /running ingest, trainer, scorer/);
      assert.match(result.stdout, /user "line" with password, TLS with client certificate/);
      assert.ok(!(result.stdout + result.stderr).includes("pw-9f3c1a77"), "password printed");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a running stage whose credentials are revoked stops with the reason, not a reconnect loop",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "auth-revoke-" });
    const users = (password: string) =>
      `authorization { users: [ { user: "pipeline", password: "${password}" } ] }`;
    await using server = await serverWith(dir, users("before-rotation"));
    const checkpointDir = `${dir}/checkpoints`;
    const pipeline = await runPipeline({
      config: tinyPipelineConfig("revoked"),
      natsUrl: server.url,
      natsAuth: { user: "pipeline", password: "before-rotation" },
      stages: ["ingest"],
      workers: false,
      checkpointDir,
      progressIntervalMs: 0,
    });
    try {
      // The plant rotates the password: the server drops the old one on reload.
      await Deno.writeTextFile(`${dir}/server.conf`, users("after-rotation") + "\n");
      server.reload();
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        pipeline.failure.then(() => "running", (error: Error) => error.message),
        new Promise<string>((resolve) =>
          timer = setTimeout(() => resolve("still running"), 60_000)
        ),
      ]);
      clearTimeout(timer);
      assert.match(outcome, /^ingest: NATS: .*Authorization Violation/i);
    } finally {
      // Stopping after the loss ends within its bound instead of hanging.
      await pipeline.stop().catch(() => undefined);
      await Deno.remove(dir, { recursive: true });
    }
  },
});
