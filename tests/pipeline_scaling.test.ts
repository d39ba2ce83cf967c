import { strict as assert } from "node:assert";
import { connect } from "nats";
import { streamNames } from "../src/bus/subjects.ts";
import { parseVerdict } from "../src/bus/verdict.ts";
import { ModelStore } from "../src/bus/model_store.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  publishImage,
  readStreamMessages,
  waitForStreamCount,
  waitUntil,
} from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

Deno.test("two scorer processes share a line: every image scored once, both took part", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "shared";
  const config = tinyPipelineConfig(line);
  const common = { config, natsUrl: server.url, workers: false, progressIntervalMs: 0 };
  // Ingest alone, and two independent scorer "processes" (each its own connection, consumer
  // client and control service), as `main.ts stage scorer` would start them.
  const ingest = await runPipeline({ ...common, stages: ["ingest"] });
  const scorerA = await runPipeline({ ...common, stages: ["scorer"] });
  const scorerB = await runPipeline({ ...common, stages: ["scorer"] });
  const images = await syntheticImages(48);
  const jsm = await nc.jetstreamManager();
  const names = streamNames(line);
  let shares: number[];
  try {
    for (const image of images) publishImage(nc, line, image.imageId, image.payload);
    await nc.flush();
    await waitForStreamCount(jsm, names.verdicts, images.length, 60_000);
    shares = await Promise.all(
      [scorerA, scorerB].map(async (scorer) => (await scorer.status())[0].imagesOut),
    );
  } finally {
    await ingest.stop();
    await Promise.all([scorerA.stop(), scorerB.stop()]);
  }
  assert.equal(shares[0] + shares[1], images.length, `shares ${shares}`);
  assert.ok(shares[0] > 0 && shares[1] > 0, `both scorers verdicted: ${shares}`);
  const verdicts = (await readStreamMessages(jsm, names.verdicts)).map((m) => parseVerdict(m.data));
  assert.equal(verdicts.length, images.length);
  assert.equal(new Set(verdicts.map((v) => v.imageId)).size, images.length);
  // The shared durable consumer has nothing left over.
  const consumer = await jsm.consumers.info(names.decoded, "scorer");
  assert.equal(consumer.num_pending + consumer.num_ack_pending, 0);
  assert.equal(consumer.delivered.stream_seq, images.length);
  await nc.close();
});

Deno.test("a restarted trainer resumes from its last published version", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  const line = "resume";
  const config = tinyPipelineConfig(line);
  const checkpointDir = await Deno.makeTempDir();
  const common = {
    config,
    natsUrl: server.url,
    workers: false,
    progressIntervalMs: 0,
    checkpointDir,
  };
  const images = await syntheticImages(24);
  const models = await ModelStore.open(nc.jetstream(), line);
  const ingest = await runPipeline({ ...common, stages: ["ingest"] });
  try {
    const first = await runPipeline({ ...common, stages: ["trainer"] });
    for (const image of images.slice(0, 12)) publishImage(nc, line, image.imageId, image.payload);
    await nc.flush();
    await waitUntil(async () => (await models.current())?.version === 1, 120_000, "version 1");
    await first.stop(); // publishes a last version if it stepped since
    const last = (await models.current())!;
    const saved = JSON.parse(await Deno.readTextFile(`${checkpointDir}/${line}/detector.json`));
    assert.equal(saved.step, last.step, "the stop checkpoint matches the last version");

    const second = await runPipeline({ ...common, stages: ["trainer"] });
    try {
      const [resumed] = await second.status();
      assert.equal(resumed.modelVersion, last.version);
      // It may already have stepped on the images refilled from the stream.
      assert.ok((resumed.step ?? 0) >= last.step, `step ${resumed.step} resumes from ${last.step}`);
      // Version 1 needed 8 images (statsImages): at least those had reached the first trainer.
      const refilled = Number(resumed.details.refilled);
      assert.ok(refilled >= 8 && refilled <= 12, `buffer refilled from the stream: ${refilled}`);
      assert.equal(resumed.warm, true);
      for (const image of images.slice(12)) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitUntil(
        async () => ((await models.current())?.version ?? 0) > last.version,
        120_000,
        `a version after v${last.version}`,
      );
      const next = (await models.current())!;
      assert.ok(next.step > last.step, `step ${next.step} continues from ${last.step}`);
    } finally {
      await second.stop();
    }
  } finally {
    await ingest.stop();
    await nc.close();
    await Deno.remove(checkpointDir, { recursive: true });
  }
});
