import { strict as assert } from "node:assert";
import { connect } from "nats";
import { PipelineSchema } from "../src/config/schema.ts";
import { streamNames } from "../src/bus/subjects.ts";
import { parseVerdict } from "../src/bus/verdict.ts";
import { IngestStage } from "../src/stages/ingest.ts";
import type { StageLog } from "../src/stages/stage.ts";
import { readManifest } from "../src/streams/format.ts";
import { replayStream } from "../src/streams/replay.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { readStreamMessages, waitForStreamCount } from "../src/harness/bus.ts";

const quiet: StageLog = { info: () => {}, warn: (m) => console.warn(m) };
const BAD_INPUT = "fixtures/bad-input";

Deno.test("every bad input yields exactly one rejected verdict with the right code; good images pass", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "bad-input"; // the fixture's own line: replayed unchanged
  const config = PipelineSchema.parse({
    line,
    model: { imageSize: 64, studentWidth: "tiny", teacher: { kind: "random_pdn" } },
    images: { maxBytes: 1_000_000, maxPixels: 4_000_000 },
  });
  const ingest = new IngestStage({ connection: nc, config, log: quiet });
  try {
    await ingest.start();
    const manifest = await readManifest(BAD_INPUT);
    const invalid = manifest.entries.filter((entry) => entry.label === "invalid");
    const valid = manifest.entries.filter((entry) => entry.label !== "invalid");
    assert.ok(invalid.length >= 6 && valid.length >= 6, "fixture has both kinds");

    await replayStream({
      connection: nc,
      dir: BAD_INPUT,
      pacing: { kind: "recorded", speed: Infinity },
    });
    const jsm = await nc.jetstreamManager();
    const names = streamNames(line);
    await waitForStreamCount(jsm, names.verdicts, invalid.length, 30_000);
    await waitForStreamCount(jsm, names.decoded, valid.length, 30_000);
    await ingest.stop();

    // Nothing more than one output per input message.
    const verdicts = (await readStreamMessages(jsm, names.verdicts)).map((m) =>
      parseVerdict(m.data)
    );
    const decoded = await readStreamMessages(jsm, names.decoded);
    assert.equal(verdicts.length, invalid.length);
    assert.equal(decoded.length, valid.length);

    // Each rejection matches the manifest: fixture seq k is image stream sequence k + 1.
    const expected = invalid.map((entry) => ({
      imageSeq: entry.seq + 1,
      imageId: entry.imageId,
      code: entry.label === "invalid" ? entry.expectedError : "",
    }));
    const actual = verdicts.map((v) => {
      assert.equal(v.status, "rejected");
      assert.equal(v.line, line);
      assert.equal(v.anomalous, null);
      return {
        imageSeq: v.imageSeq,
        imageId: v.imageId,
        code: v.status === "rejected" ? v.error.code : "",
      };
    }).sort((a, b) => a.imageSeq - b.imageSeq);
    assert.deepEqual(actual, expected);

    // Good images, including those right after bad ones, were decoded at the configured size.
    assert.deepEqual(
      decoded.map((m) => m.headers?.get("Image-Id")),
      valid.map((entry) => entry.imageId),
    );
    for (const message of decoded) assert.equal(message.data.length, 64 * 64 * 3);

    const status = await ingest.status();
    assert.equal(status.imagesIn, manifest.entries.length);
    assert.equal(status.details.rejected, invalid.length);
    assert.equal(status.details.accepted, valid.length);
  } finally {
    await ingest.stop();
    await nc.close();
  }
});

Deno.test("a restarted ingest neither re-rejects nor re-decodes what it already handled", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "bad-input";
  const config = PipelineSchema.parse({
    line,
    model: { imageSize: 32, teacher: { kind: "random_pdn" } },
  });
  const jsm = await nc.jetstreamManager();
  const names = streamNames(line);
  const first = new IngestStage({ connection: nc, config, log: quiet });
  await first.start();
  await replayStream({
    connection: nc,
    dir: BAD_INPUT,
    pacing: { kind: "recorded", speed: Infinity },
  });
  const manifest = await readManifest(BAD_INPUT);
  const invalid = manifest.entries.filter((entry) => entry.label === "invalid").length;
  await waitForStreamCount(jsm, names.verdicts, invalid, 30_000);
  await waitForStreamCount(jsm, names.decoded, manifest.entries.length - invalid, 30_000);
  await first.stop();

  // Same ids again from a second ingest process: all duplicates now.
  const second = new IngestStage({ connection: nc, config, log: quiet });
  try {
    await second.start();
    await replayStream({
      connection: nc,
      dir: BAD_INPUT,
      pacing: { kind: "recorded", speed: Infinity },
    });
    await waitForStreamCount(jsm, names.verdicts, invalid + manifest.entries.length, 30_000);
    await second.stop();
    const verdicts = (await readStreamMessages(jsm, names.verdicts)).map((m) =>
      parseVerdict(m.data)
    );
    assert.equal(verdicts.length, invalid + manifest.entries.length);
    const secondRound = verdicts.filter((v) => v.imageSeq > manifest.entries.length);
    for (const v of secondRound) {
      assert.equal(v.status, "rejected");
      const code = v.status === "rejected" ? v.error.code : "";
      assert.ok(
        v.imageId === null ? code === "missing_image_id" : code === "duplicate_image_id",
        `${v.imageId}: ${code}`,
      );
    }
    assert.equal(
      (await jsm.streams.info(names.decoded)).state.messages,
      manifest.entries.length - invalid,
    );
  } finally {
    await second.stop();
    await nc.close();
  }
});
