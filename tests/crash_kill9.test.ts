import { strict as assert } from "node:assert";
import { CrashLine, exactlyOncePerImage } from "../src/harness/crash_line.ts";
import { waitUntil } from "../src/harness/bus.ts";
import { FAIL_SCORING_ENV, SCORING_DELAY_ENV } from "../src/stages/faults.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

/** Longest wait for the line to answer everything after the last crash. */
const SETTLE_MS = 240_000;

/**
 * A camera publishing `images` one by one, every `everyMs`, until stopped or the list ends. It
 * retries an image the broker did not acknowledge (down, restarting) for up to 30 s, as a
 * camera with a small local buffer does, so each phase of a test gets acknowledged images.
 */
function camera(line: CrashLine, images: { imageId: string; payload: Uint8Array }[], everyMs = 50) {
  let next = 0;
  let stop = false;
  const running = (async () => {
    while (!stop && next < images.length) {
      const image = images[next++];
      const deadline = Date.now() + 30_000;
      while (!await line.publish(image.imageId, image.payload) && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  })();
  return {
    /** Images published (acked or not) so far. */
    get sent() {
      return next;
    },
    /** Waits until at least `count` images were sent. */
    async reach(count: number) {
      await waitUntil(
        () => next >= count || next >= images.length,
        120_000,
        `${count} images sent`,
      );
    },
    /** Stops and waits for the last publication. */
    async finish() {
      stop = true;
      await running;
    },
    done: running,
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
    const images = await syntheticImages(160);
    const ingest1 = await line.startStage("ingest");
    const trainer1 = await line.startStage("trainer");
    const scorer1 = await line.startStage("scorer");
    const cam = camera(line, images);

    // The trainer publishes a version; then it is killed mid-training.
    await waitUntil(
      async () => ((await line.versionHistory()).length) >= 1,
      120_000,
      "a first model version",
    );
    await cam.reach(40);
    await scorer1.kill9();
    await ingest1.kill9();
    await new Promise((resolve) => setTimeout(resolve, 3_000)); // longer than the dedupe window
    await line.startStage("ingest");
    await line.startStage("scorer");

    await cam.reach(70);
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
    await cam.reach(100);
    await line.killBroker();
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    await line.restartBroker();
    const ackedBeforeRestart = line.acked.length;
    await cam.finish();

    const verdicts = await line.waitForVerdicts(SETTLE_MS);
    // Late duplicates would arrive after the last redelivery: look again a little later.
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const settled = await line.verdicts();
    assert.ok(settled.length >= verdicts.length);
    const byId = exactlyOncePerImage(line.acked, line.attempted, settled);
    assert.ok(line.acked.length >= 40, `acked ${line.acked.length} of ${cam.sent}`);
    assert.ok(settled.every((v) => v.status !== "rejected"), "crashes reject no image");
    assert.ok(
      [...byId.values()].some((v) => v.status === "scored"),
      "the restarted line scores with a model",
    );
    // Images acknowledged by the restarted broker were answered too (checked above).
    assert.ok(line.acked.length > ackedBeforeRestart, "the camera published after the restart");

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
    const images = await syntheticImages(90);
    await line.startStage("ingest");
    await line.startStage("scorer");
    const stored = await jsm.streams.info("INSPECT_cluster_IMAGES");
    assert.equal(stored.config.num_replicas, 3, "streams are replicated");
    assert.equal(stored.cluster?.replicas?.length, 2, "two followers besides the leader");
    const cam = camera(line, images);
    await cam.reach(30);
    const ackedBeforeKill = line.acked.length;
    await line.killBroker(1);
    await cam.reach(60);
    await line.restartBroker(1);
    await cam.finish();
    await line.waitForVerdicts(SETTLE_MS);
    await new Promise((resolve) => setTimeout(resolve, 4_000));
    const verdicts = await line.verdicts();
    exactlyOncePerImage(line.acked, line.attempted, verdicts);
    assert.ok(line.acked.length > ackedBeforeKill, `acked ${line.acked.length} of ${cam.sent}`);
    assert.ok(verdicts.every((v) => v.status !== "rejected"), "the node's loss rejects nothing");
    const bucket = await jsm.streams.info("KV_inspect-image-ids-cluster");
    assert.equal(bucket.config.num_replicas, 3, "the Image-Id ledger is replicated");
  },
});
