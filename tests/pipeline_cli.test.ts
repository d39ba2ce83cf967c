import { strict as assert } from "node:assert";
import { connect } from "nats";
import { runCommand } from "../src/cli/run.ts";
import { stageCommand } from "../src/cli/stage.ts";
import { simulateCamera, simulateCommand } from "../src/cli/simulate.ts";
import { ensureLineStreams } from "../src/bus/streams.ts";
import { CAPTURED_AT_HEADER, IMAGE_ID_HEADER, streamNames } from "../src/bus/subjects.ts";
import { PipelineSchema } from "../src/config/schema.ts";
import { ensureNatsServer, natsAnswers } from "../src/pipeline/nats_server.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { readStreamMessages } from "../src/harness/bus.ts";

/** Runs `fn` with console output captured (returned) instead of printed. */
async function captured(fn: () => Promise<number>): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const { log, error } = console;
  console.log = (...args: unknown[]) => lines.push(args.join(" "));
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return { code: await fn(), out: lines.join("\n") };
  } finally {
    console.log = log;
    console.error = error;
  }
}

Deno.test("run, stage and simulate answer --help and refuse bad arguments", async () => {
  for (const command of [runCommand, stageCommand, simulateCommand]) {
    const help = await captured(() => command(["--help"]));
    assert.equal(help.code, 0);
    assert.match(help.out, /^usage: main\.ts /);
  }
  assert.equal((await captured(() => stageCommand(["painter"]))).code, 2);
  assert.equal((await captured(() => runCommand(["--bogus"]))).code, 2);
  const missing = await captured(() => runCommand(["--config", "no/such/pipeline.json"]));
  assert.equal(missing.code, 1);
  assert.match(missing.out, /no\/such\/pipeline\.json: cannot read/);
  assert.equal((await captured(() => simulateCommand(["--rate", "fast"]))).code, 2);
  const badPort = await captured(() => runCommand(["--metrics-port", "http"]));
  assert.equal(badPort.code, 2);
  assert.match(badPort.out, /--metrics-port must be a port number \(0-65535\) or "off"/);
  assert.equal((await captured(() => runCommand(["--dashboard-port", "70000"]))).code, 2);
});

Deno.test("simulate publishes fixture images as a camera: Image-Id, fresh Captured-At, unique repeats", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "camera";
  try {
    await ensureLineStreams(
      await nc.jetstreamManager(),
      line,
      PipelineSchema.parse({ line }).streams,
    );
    const published = await simulateCamera({
      connection: nc,
      dir: "fixtures/bad-input",
      line,
      repeat: 2,
      limit: 20,
      rateHz: 1000,
    });
    assert.equal(published, 20);
    const stored = await readStreamMessages(await nc.jetstreamManager(), streamNames(line).images);
    assert.equal(stored.length, 20);
    const ids = stored.map((m) => m.headers?.get(IMAGE_ID_HEADER) ?? "");
    assert.equal(ids[0], "bad-input-00000");
    assert.equal(ids[16], "bad-input-00000-p2", "the second pass gets new ids");
    assert.equal(ids[10], "", "a recorded message without Image-Id is published without one");
    for (const message of stored) {
      const at = Date.parse(message.headers?.get(CAPTURED_AT_HEADER) ?? "");
      assert.ok(Math.abs(Date.now() - at) < 60_000, "Captured-At is the publication time");
    }
  } finally {
    await nc.close();
  }
});

Deno.test("a local nats-server with JetStream is started when nothing listens on a loopback URL", async () => {
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const url = `nats://127.0.0.1:${port}`;
  assert.equal(await natsAnswers(url), false);
  const storeDir = await Deno.makeTempDir();
  const nats = await ensureNatsServer(url, storeDir);
  try {
    assert.ok(nats.child, "a child server was started");
    assert.equal(nats.url, url);
    const nc = await connect({ servers: url });
    const info = await (await nc.jetstreamManager()).getAccountInfo();
    assert.ok(info.limits !== undefined, "JetStream is enabled");
    await nc.close();
    // A second call finds it running and starts nothing.
    const again = await ensureNatsServer(url, storeDir);
    assert.equal(again.child, null);
  } finally {
    await nats.child?.stop();
    await Deno.remove(storeDir, { recursive: true });
  }
});
