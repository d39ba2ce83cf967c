/**
 * Record/replay through the real nats-server at 127.0.0.1:4222 (or $NATS_URL). Each test uses
 * its own line name, so runs never see each other's messages.
 */
import assert from "node:assert/strict";
import { connect, type NatsConnection } from "nats";
import { recordCommand } from "../src/cli/record.ts";
import { replayCommand } from "../src/cli/replay.ts";
import { natsUrl } from "../src/streams/cli_support.ts";
import {
  openStreamWriter,
  readManifest,
  readStream,
  readStreamInfo,
  type RecordedMessage,
} from "../src/streams/format.ts";
import { recordStream } from "../src/streams/record.ts";
import { replayStream } from "../src/streams/replay.ts";
import {
  buildSyntheticLineStream,
  SYNTHETIC_LINE_DEFAULTS,
} from "../src/streams/synthetic_line.ts";

const FIXTURES = new URL("../fixtures", import.meta.url).pathname;
const URL_ = natsUrl(undefined);
// Recorders also stop after this long, so a lost message fails a test instead of hanging it.
const SAFETY_MS = 30_000;

function uniqueLine(tag: string): string {
  return `streams-test-${tag}-${crypto.randomUUID().slice(0, 8)}`;
}

async function collect(dir: string): Promise<RecordedMessage[]> {
  const out: RecordedMessage[] = [];
  for await (const message of readStream(dir)) out.push(message);
  return out;
}

/** Waits until a recorder has created `stream.json`, i.e. its subscription is live. */
async function untilRecording(dir: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    try {
      await Deno.stat(`${dir}/stream.json`);
      return;
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }
  throw new Error(`recorder never started writing ${dir}`);
}

async function withConnection<T>(body: (nc: NatsConnection) => Promise<T>): Promise<T> {
  const nc = await connect({ servers: URL_ });
  try {
    return await body(nc);
  } finally {
    await nc.close();
  }
}

Deno.test("replay → record round trip keeps payloads, headers and order, moving the line", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const source = `${dir}/source`;
    await buildSyntheticLineStream(
      source,
      { ...SYNTHETIC_LINE_DEFAULTS, count: 12, line: "origin", intervalMs: 5 },
      { createdBy: "test" },
    );
    const line = uniqueLine("lib");
    await withConnection(async (nc) => {
      const recording = recordStream({
        connection: nc,
        subject: `inspect.${line}.>`,
        out: `${dir}/recorded`,
        count: 12,
        durationMs: SAFETY_MS,
        createdBy: "test",
      });
      await untilRecording(`${dir}/recorded`);
      const replayed = await replayStream({
        connection: nc,
        dir: source,
        line,
        pacing: { kind: "recorded", speed: 4 },
      });
      assert.equal(replayed.published, 12);
      const result = await recording;
      assert.equal(result.recorded, 12);
    });
    const original = await collect(source);
    const recorded = await collect(`${dir}/recorded`);
    assert.deepEqual(recorded.map((m) => m.payload), original.map((m) => m.payload));
    assert.deepEqual(recorded.map((m) => m.headers), original.map((m) => m.headers));
    assert.ok(recorded.every((m) => m.subject === `inspect.${line}.image`));
    assert.equal(recorded[0].offsetMs, 0);
    assert.ok(recorded.every((m, i) => i === 0 || m.offsetMs >= recorded[i - 1].offsetMs));
    // Labels stay home: a recording has an empty manifest.
    assert.equal((await readManifest(`${dir}/recorded`)).entries.length, 0);
    const info = await readStreamInfo(`${dir}/recorded`);
    assert.equal(info.generator, "record");
    assert.equal(info.complete, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("CLI replay → record of bad-input keeps empty payloads and missing headers", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const line = uniqueLine("cli");
    const out = `${dir}/recorded`;
    const recording = recordCommand([
      "--subject",
      `inspect.${line}.>`,
      "--out",
      out,
      "--count",
      "16",
      "--duration",
      String(SAFETY_MS / 1000),
    ]);
    await untilRecording(out);
    assert.equal(
      await replayCommand([`${FIXTURES}/bad-input`, "--line", line, "--rate", "500"]),
      0,
    );
    assert.equal(await recording, 0);
    const original = await collect(`${FIXTURES}/bad-input`);
    const recorded = await collect(out);
    assert.equal(recorded.length, original.length);
    assert.deepEqual(recorded.map((m) => m.payload), original.map((m) => m.payload));
    assert.deepEqual(recorded.map((m) => m.headers), original.map((m) => m.headers));
    assert.equal(recorded[4].payload.length, 0);
    assert.deepEqual(Object.keys(recorded[10].headers), ["Captured-At"]);
    assert.match((await readStreamInfo(out)).createdBy, /^main\.ts record --subject/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("replay skips non-image subjects unless asked, never publishing the manifest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const line = uniqueLine("subjects");
    const writer = await openStreamWriter(`${dir}/mixed`, {
      description: { name: "mixed", generator: "test", seed: null, createdBy: "test" },
    });
    const payload = new TextEncoder().encode("x");
    await writer.append({ subject: `inspect.${line}.image`, offsetMs: 0, headers: {}, payload });
    await writer.append({ subject: `inspect.${line}.verdict`, offsetMs: 1, headers: {}, payload });
    await writer.append({ subject: `inspect.${line}.image`, offsetMs: 2, headers: {}, payload });
    await writer.label({
      seq: 0,
      imageId: null,
      label: "invalid",
      expectedError: "missing_image_id",
    });
    await writer.close();
    await withConnection(async (nc) => {
      for (const [allSubjects, expected] of [[false, 2], [true, 3]] as const) {
        const out = `${dir}/rec-${allSubjects}`;
        // One extra slot: a leaked extra message would be caught by the marker's position.
        const recording = recordStream({
          connection: nc,
          subject: `inspect.${line}.>`,
          out,
          count: expected + 1,
          durationMs: SAFETY_MS,
          createdBy: "test",
        });
        await untilRecording(out);
        const result = await replayStream({
          connection: nc,
          dir: `${dir}/mixed`,
          pacing: { kind: "recorded", speed: Infinity },
          allSubjects,
        });
        assert.equal(result.published, expected);
        assert.equal(result.skipped, 3 - expected);
        nc.publish(`inspect.${line}.marker`);
        await recording;
        const subjects = (await collect(out)).map((m) => m.subject.split(".")[2]);
        assert.deepEqual(
          subjects,
          allSubjects ? ["image", "verdict", "image", "marker"] : ["image", "image", "marker"],
        );
      }
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("record stops on its duration or on abort and keeps what it recorded", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const line = uniqueLine("stop");
    await withConnection(async (nc) => {
      const quiet = await recordStream({
        connection: nc,
        subject: `inspect.${line}.quiet`,
        out: `${dir}/quiet`,
        durationMs: 100,
        createdBy: "test",
      });
      assert.equal(quiet.recorded, 0);
      assert.equal((await readStreamInfo(`${dir}/quiet`)).complete, true);

      const stop = new AbortController();
      let seen = 0;
      const twoSeen = Promise.withResolvers<void>();
      const recording = recordStream({
        connection: nc,
        subject: `inspect.${line}.image`,
        out: `${dir}/aborted`,
        signal: stop.signal,
        durationMs: SAFETY_MS,
        createdBy: "test",
        onProgress: (p) => {
          seen = p.recorded;
          if (seen === 2) twoSeen.resolve();
        },
      });
      await untilRecording(`${dir}/aborted`);
      nc.publish(`inspect.${line}.image`, new Uint8Array([1]));
      nc.publish(`inspect.${line}.image`, new Uint8Array([2]));
      await Promise.race([twoSeen.promise, recording]);
      stop.abort();
      const result = await recording;
      assert.equal(result.recorded, 2);
      assert.deepEqual((await collect(`${dir}/aborted`)).map((m) => [...m.payload]), [[1], [2]]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("record and replay CLIs: help, usage errors, refusal to overwrite", async () => {
  const dir = await Deno.makeTempDir();
  try {
    assert.equal(await recordCommand(["--help"]), 0);
    assert.equal(await replayCommand(["--help"]), 0);
    assert.equal(await recordCommand(["--subject", "inspect.>"]), 2); // no --out
    assert.equal(await recordCommand(["--out", `${dir}/x`, "--count", "0"]), 2);
    assert.equal(await recordCommand(["--out", `${dir}/x`, "--bogus"]), 2);
    assert.equal(await replayCommand([`${FIXTURES}/bad-input`, "--speed", "2", "--rate", "5"]), 2);
    assert.equal(await replayCommand([`${FIXTURES}/bad-input`, "--line", "a.b"]), 2);
    assert.equal(await replayCommand([]), 2);
    assert.equal(await replayCommand([`${dir}/missing`]), 1);
    // An existing stream is refused before any connection (the server URL is unusable).
    await Deno.mkdir(`${dir}/taken`);
    await Deno.writeTextFile(`${dir}/taken/stream.json`, "{}");
    const args = ["--out", `${dir}/taken`, "--count", "1", "--server", "nats://127.0.0.1:1"];
    assert.equal(await recordCommand(args), 1);
    assert.equal(await Deno.readTextFile(`${dir}/taken/stream.json`), "{}");
    // With --force the refusal is gone and the (unreachable) server is the failure.
    assert.equal(await recordCommand([...args, "--force"]), 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
