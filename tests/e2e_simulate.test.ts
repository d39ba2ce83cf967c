/**
 * End to end: the `simulate` camera run again and again against a live line never repeats an
 * Image-Id, so nothing it publishes is rejected as `duplicate_image_id`; `replay --id-suffix`
 * gives a replayed stream fresh ids the same way.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { firstRecordedImageId, firstUnusedPass, simulateCommand } from "../src/cli/simulate.ts";
import { replayCommand } from "../src/cli/replay.ts";
import { ensureLineStreams } from "../src/bus/streams.ts";
import { readStream, type RecordedMessage } from "../src/streams/format.ts";
import { replayStream } from "../src/streams/replay.ts";
import { IMAGE_ID_HEADER, streamNames } from "../src/bus/subjects.ts";
import { PipelineSchema } from "../src/config/schema.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { readStreamMessages, waitForStreamCount } from "../src/harness/bus.ts";

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

Deno.test({
  name: "simulate run repeatedly on a live line: each pass gets fresh Image-Ids, none rejected",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const line = "demo";
    const stream = "fixtures/synthetic-line";
    const nc = await connect({ servers: server.url });
    // Ingest alone owns Image-Id reservations and rejections; that is all this test needs.
    const pipeline = await runPipeline({
      config: PipelineSchema.parse({ line, model: { imageSize: 32 } }),
      natsUrl: server.url,
      stages: ["ingest"],
      workers: false,
      progressIntervalMs: 0,
    });
    try {
      const jsm = await nc.jetstreamManager();
      const names = streamNames(line);
      const firstId = await firstRecordedImageId(stream);
      assert.equal(firstId, "synthetic-line-00000");
      assert.equal(await firstUnusedPass(nc, line, firstId), 1, "a fresh line has seen nothing");

      const simulate = (...extra: string[]) =>
        captured(() =>
          simulateCommand([
            "--line",
            line,
            "--server",
            server.url,
            "--rate",
            "1000",
            "--count",
            "5",
            ...extra,
          ])
        );
      const first = await simulate();
      assert.equal(first.code, 0, first.out);
      await waitForStreamCount(jsm, names.decoded, 5, 60_000);
      const second = await simulate();
      assert.equal(second.code, 0, second.out);
      assert.match(second.out, /publishing pass 2, Image-Ids suffixed -p2/);
      await waitForStreamCount(jsm, names.decoded, 10, 60_000);
      // A looping run continues the numbering: pass 3 whole, then pass 4.
      const looping = await simulate("--repeat", "2", "--count", "305");
      assert.equal(looping.code, 0, looping.out);
      await waitForStreamCount(jsm, names.decoded, 315, 120_000);
      assert.equal(await firstUnusedPass(nc, line, firstId), 5);

      const ids = (await readStreamMessages(jsm, names.images)).map((m) =>
        m.headers?.get(IMAGE_ID_HEADER)
      );
      assert.equal(ids.length, 315);
      assert.equal(new Set(ids).size, 315, "every published Image-Id is unique");
      assert.deepEqual(
        [ids[0], ids[5], ids[10], ids[310], ids[314]],
        [
          "synthetic-line-00000",
          "synthetic-line-00000-p2",
          "synthetic-line-00000-p3",
          "synthetic-line-00000-p4",
          "synthetic-line-00004-p4",
        ],
      );
      // Ingest published no rejection at all (it publishes verdicts only for rejections).
      const verdicts = await jsm.streams.info(names.verdicts);
      assert.equal(verdicts.state.messages, 0);
    } finally {
      await pipeline.stop();
      await nc.close();
    }
  },
});

Deno.test("replay --id-suffix suffixes every Image-Id and keeps missing ones missing", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "replayed";
  try {
    const jsm = await nc.jetstreamManager();
    await ensureLineStreams(jsm, line, PipelineSchema.parse({ line }).streams);
    const args = ["fixtures/bad-input", "--line", line, "--rate", "1000", "--server", server.url];
    assert.equal((await captured(() => replayCommand([...args, "--id-suffix=-p7"]))).code, 0);
    const stored = await readStreamMessages(jsm, streamNames(line).images);
    const recorded: RecordedMessage[] = [];
    for await (const message of readStream("fixtures/bad-input")) recorded.push(message);
    assert.equal(stored.length, recorded.length);
    stored.forEach((message, i) => {
      const id = recorded[i].headers[IMAGE_ID_HEADER]?.[0];
      assert.equal(message.headers?.get(IMAGE_ID_HEADER) || undefined, id && `${id}-p7`);
      assert.deepEqual(message.data, recorded[i].payload);
    });
    await assert.rejects(
      () => replayStream({ connection: nc, dir: "fixtures/bad-input", idSuffix: "x\r\ny: z" }),
      /line breaks/,
    );
  } finally {
    await nc.close();
  }
});
