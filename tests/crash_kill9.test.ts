import { strict as assert } from "node:assert";
import { CrashLine, exactlyOncePerImage } from "../src/harness/crash_line.ts";
import { waitUntil } from "../src/harness/bus.ts";
import { FAIL_SCORING_ENV, SCORING_DELAY_ENV } from "../src/stages/faults.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

/** Longest wait for the line to answer everything after the last crash. */
const SETTLE_MS = 240_000;

/** Most images a test camera publishes (a stuck line fails the test, not the machine). */
const CAMERA_MAX_IMAGES = 3_000;

/**
 * A camera publishing the fixture `payloads` in turn under fresh Image-Ids (`cam-<n>`), one every
 * `everyMs`, until {@link finish}. It retries an image the broker did not acknowledge (down,
 * restarting) for up to 30 s, as a camera with a small local buffer does. Tests move from one
 * crash to the next with {@link more}, so every crash happens mid-stream whatever the speed.
 */
function camera(line: CrashLine, payloads: Uint8Array[], everyMs = 100) {
  let sent = 0;
  let stop = false;
  const running = (async () => {
    while (!stop && sent < CAMERA_MAX_IMAGES) {
      const imageId = `cam-${sent}`;
      const payload = payloads[sent++ % payloads.length];
      const deadline = Date.now() + 30_000;
      while (!await line.publish(imageId, payload) && Date.now() < deadline && !stop) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    /** Images published (acknowledged or not) so far. */
    get sent() {
      return sent;
    },
    /** Waits until the broker has acknowledged `count` more images than now. */
    async more(count: number) {
      const target = line.acked.length + count;
      await waitUntil(
        () => line.acked.length >= target,
        120_000,
        `${target} acknowledged images`,
      );
    },
    /** Stops and waits for the last publication. */
    async finish() {
      stop = true;
      await running;
    },
  };
}

Deno.test({
  name:
    "kill -9 of ingest, scorer, trainer and nats-server mid-stream: every acked image gets exactly one verdict, the trainer resumes, no version lost",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const config = tinyPipelineConfig("crash", {
      // Outages below last longer than the duplicate window: only the verdict ledger can
      // keep a late redelivery from doubling a verdict.
      streams: { duplicateWindowSeconds: 2 },
      delivery: { minAckWaitSeconds: 3, ackWaitPerStep: 4 },
      trainer: { checkpointEverySeconds: 1 },
    });
    await using line = await CrashLine.start(config);
    const payloads = (await syntheticImages(40)).map((image) => image.payload);
    const ingest1 = await line.startStage("ingest");
    const trainer1 = await line.startStage("trainer");
    const scorer1 = await line.startStage("scorer");
    const cam = camera(line, payloads);

    // The trainer publishes a version; then it is killed mid-training.
    await waitUntil(
      async () => ((await line.versionHistory()).length) >= 1,
      120_000,
      "a first model version",
    );
    await cam.more(10);
    await scorer1.kill9();
    await ingest1.kill9();
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // longer than the dedupe window
    await line.startStage("ingest");
    await line.startStage("scorer");

    await cam.more(10);
    const before = (await line.versionHistory()).at(-1)!;
    await trainer1.kill9();
    const trainer2 = await line.startStage("trainer");
    const resumed = await line.status("trainer");
    assert.ok(
      (resumed.step ?? 0) >= before.step,
      `restarted trainer at step ${resumed.step}, last version had ${before.step}`,
    );
    assert.ok((resumed.modelVersion ?? 0) >= before.version, "it knows the current version");
    assert.match(await line.logs("trainer"), /resumed from (model v\d+|the resume point)/);

    // The broker itself: kill -9, down longer than the dedupe window, back on the same store.
    await cam.more(10);
    await line.killBroker();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await line.restartBroker();
    await cam.more(10); // acknowledged by the restarted broker
    await cam.finish();

    const verdicts = await line.waitForVerdicts(SETTLE_MS);
    // Late duplicates would arrive after the last redelivery: look again a little later.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const settled = await line.verdicts();
    assert.ok(settled.length >= verdicts.length);
    const byId = exactlyOncePerImage(line.acked, line.attempted, settled);
    assert.ok(settled.every((v) => v.status !== "rejected"), "crashes reject no image");
    assert.ok(
      [...byId.values()].some((v) => v.status === "scored"),
      "the restarted line scores with a model",
    );

    // No version lost or overwritten: the pointer's history counts up by one, each version
    // in its own object, and the current one is stored.
    await trainer2.stop();
    const history = await line.versionHistory();
    history.forEach((record, i) => {
      if (i > 0) assert.equal(record.version, history[i - 1].version + 1);
    });
    assert.equal(new Set(history.map((r) => r.object)).size, history.length);
    const models = await line.models();
    assert.ok(await models.fetch(history.at(-1)!), "the current version's blob is stored");
  },
});

Deno.test({
  name:
    "a poison image costs one processing_failed verdict; a scorer slower than ack_wait doubles nothing",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const images = await syntheticImages(24);
    const poison = images[5].imageId;
    const config = tinyPipelineConfig("poison", {
      // Every batch blocks the scorer 1.5 s, longer than the first ack_wait (1 s): the first
      // batch is redelivered while still in hand; then the tuner raises ack_wait.
      delivery: { maxDeliver: 3, minAckWaitSeconds: 1, ackWaitPerStep: 4 },
      streams: { duplicateWindowSeconds: 1 },
    });
    await using line = await CrashLine.start(config, {
      env: { [FAIL_SCORING_ENV]: poison, [SCORING_DELAY_ENV]: "1500" },
    });
    await line.startStage("ingest");
    await line.startStage("scorer");
    for (const image of images) await line.publish(image.imageId, image.payload);
    const verdicts = await line.waitForVerdicts(SETTLE_MS);
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const settled = await line.verdicts();
    assert.ok(settled.length >= verdicts.length);
    const byId = exactlyOncePerImage(line.acked, line.attempted, settled);
    const rejected = byId.get(poison)!;
    assert.equal(rejected.status, "rejected");
    assert.ok(rejected.status === "rejected" && rejected.error.code === "processing_failed");
    assert.match(
      rejected.status === "rejected" ? rejected.error.message : "",
      /all 3 deliveries: injected fault/,
    );
    const others = [...byId.values()].filter((v) => v.imageId !== poison);
    assert.ok(others.every((v) => v.status === "warming_up"), "the others are answered normally");
    const scorer = await line.status("scorer") as StageStatus;
    assert.equal(scorer.details.processingFailed, 1);
    assert.ok(Number(scorer.details.ackWaitMs) >= 4 * 1_500, "ack_wait follows the slow batches");
  },
});

Deno.test({
  name:
    "a 3-node JetStream cluster with replicas 3: kill -9 of one node mid-stream, every acked image gets exactly one verdict",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const config = tinyPipelineConfig("cluster", {
      streams: { replicas: 3, duplicateWindowSeconds: 2 },
      delivery: { minAckWaitSeconds: 3, ackWaitPerStep: 4 },
    });
    await using line = await CrashLine.start(config, { nodes: 3 });
    const jsm = await line.jsm();
    const payloads = (await syntheticImages(40)).map((image) => image.payload);
    await line.startStage("ingest");
    await line.startStage("scorer");
    const stored = await jsm.streams.info("INSPECT_cluster_IMAGES");
    assert.equal(stored.config.num_replicas, 3, "streams are replicated");
    assert.equal(stored.cluster?.replicas?.length, 2, "two followers besides the leader");
    const cam = camera(line, payloads);
    await cam.more(20);
    await line.killBroker(1);
    await cam.more(10); // acknowledged by the two nodes left
    await line.restartBroker(1);
    await cam.more(10);
    await cam.finish();
    await line.waitForVerdicts(SETTLE_MS);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const verdicts = await line.verdicts();
    exactlyOncePerImage(line.acked, line.attempted, verdicts);
    assert.ok(verdicts.every((v) => v.status !== "rejected"), "the node's loss rejects nothing");
    const bucket = await jsm.streams.info("KV_inspect-image-ids-cluster");
    assert.equal(bucket.config.num_replicas, 3, "the Image-Id ledger is replicated");
  },
});
