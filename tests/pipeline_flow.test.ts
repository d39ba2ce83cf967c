import { strict as assert } from "node:assert";
import { connect } from "nats";
import { CONTROL_SERVICE_NAME, streamNames } from "../src/bus/subjects.ts";
import { parseVerdict, type Verdict } from "../src/bus/verdict.ts";
import { parseTrainingEvent } from "../src/bus/training_event.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  publishImage,
  readStreamMessages,
  waitForStreamCount,
  waitUntil,
} from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";
import { control } from "../src/harness/bus.ts";

Deno.test({
  name:
    "N images in, exactly N verdicts out: warming_up, then scored by advancing, hot-swapped versions",
  sanitizeResources: false, // Workers end asynchronously after terminate()
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "flow";
    const config = tinyPipelineConfig(line);
    const checkpointDir = await Deno.makeTempDir();
    const pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      workers: true,
      checkpointDir,
      progressIntervalMs: 0,
    });
    const jsm = await nc.jetstreamManager();
    const names = streamNames(line);
    const images = await syntheticImages(32);
    let published = 0;
    const publish = (count: number) => {
      for (const image of images.slice(published, published + count)) {
        publishImage(nc, line, image.imageId, image.payload, new Date().toISOString());
      }
      published += count;
      return nc.flush();
    };
    try {
      // The process registered its control service with every stage's endpoints.
      const infos = [];
      for await (const info of await nc.services.client().info(CONTROL_SERVICE_NAME)) {
        infos.push(info);
      }
      assert.equal(infos.length, 1);
      assert.deepEqual(
        infos[0].endpoints.map((e) => e.subject).sort(),
        [
          "inspect.flow.control.ingest.status",
          "inspect.flow.control.scorer.status",
          "inspect.flow.control.trainer.pause",
          "inspect.flow.control.trainer.resume",
          "inspect.flow.control.trainer.snapshot",
          "inspect.flow.control.trainer.status",
        ],
      );

      // Wave 1 with training paused: no model can exist, every verdict is warming_up.
      const paused = await control<StageStatus>(nc, line, "trainer", "pause");
      assert.equal(paused.paused, true);
      await publish(8);
      await waitForStreamCount(jsm, names.verdicts, 8, 60_000);
      const trainerPaused = await control<StageStatus>(nc, line, "trainer", "status");
      assert.equal(trainerPaused.step, 0);
      assert.equal(trainerPaused.imagesIn, 8, "the buffer fills while paused");

      // Resume: warm-up ends, version 1 is published and the scorer picks it up.
      await control<StageStatus>(nc, line, "trainer", "resume");
      await waitUntil(
        async () => {
          const scorer = await control<StageStatus>(nc, line, "scorer", "status");
          return scorer.modelVersion !== null;
        },
        120_000,
        "the scorer to load the first model version",
      );

      // Waves 2-4: each lands after the previous version was swapped in; versions advance.
      const scorerTensors: number[] = [];
      const trainerTensors: number[] = [];
      for (let wave = 0; wave < 3; wave++) {
        const before = await control<StageStatus>(nc, line, "scorer", "status");
        if (before.details.queuedVersion === null) {
          scorerTensors.push(Number(before.details.tensors));
        }
        const trainerBefore = await control<StageStatus>(nc, line, "trainer", "status");
        trainerTensors.push(Number(trainerBefore.details.tensors));
        await publish(8);
        await waitForStreamCount(jsm, names.verdicts, published, 60_000);
        await waitUntil(
          async () => {
            const scorer = await control<StageStatus>(nc, line, "scorer", "status");
            return scorer.modelVersion! > before.modelVersion!;
          },
          120_000,
          `a model version newer than v${before.modelVersion}`,
        );
      }
      const trainer = await control<StageStatus>(nc, line, "trainer", "status");
      assert.ok(trainer.step! >= 2 * config.trainer.warmupSteps, `step ${trainer.step}`);
      // Swapped-out models are freed and training steps leak nothing: tensor counts stay flat.
      assert.ok(scorerTensors.length >= 2, "sampled the scorer between swaps");
      assert.equal(new Set(scorerTensors).size, 1, `scorer tensors ${scorerTensors}`);
      assert.equal(new Set(trainerTensors).size, 1, `trainer tensors ${trainerTensors}`);
    } finally {
      await pipeline.stop();
    }

    // Stopped: nothing in flight any more. Exactly one verdict per image.
    const verdicts: Verdict[] = (await readStreamMessages(jsm, names.verdicts))
      .map((m) => parseVerdict(m.data));
    assert.equal(verdicts.length, published);
    assert.deepEqual(
      verdicts.map((v) => v.imageId).sort(),
      images.slice(0, published).map((i) => i.imageId).sort(),
    );
    const bySeq = verdicts.slice().sort((a, b) => a.imageSeq - b.imageSeq);
    for (const [i, verdict] of bySeq.entries()) {
      assert.equal(verdict.status, i < 8 ? "warming_up" : "scored", `image ${i}`);
      assert.ok(verdict.capturedAt !== null);
    }
    // Waves scored after each swap used ever newer versions.
    const versionOf = (from: number) =>
      Math.min(
        ...bySeq.slice(from, from + 8).map((v) => (v.status === "scored" ? v.modelVersion : 0)),
      );
    assert.ok(versionOf(8) < versionOf(16) && versionOf(16) < versionOf(24));
    for (const verdict of bySeq.slice(8)) {
      if (verdict.status !== "scored") continue;
      assert.ok(Number.isFinite(verdict.score) && Number.isFinite(verdict.threshold));
      assert.equal(verdict.anomalous, verdict.score > verdict.threshold);
    }

    // Training events name their batches; every step is reported once.
    const events = (await readStreamMessages(jsm, names.training)).map((m) =>
      parseTrainingEvent(m.data)
    );
    assert.ok(events.length >= 4);
    assert.deepEqual(events.map((e) => e.step), events.map((_, i) => i + 1));
    for (const event of events) {
      assert.equal(event.batch.length, config.training.batchSize);
      for (const id of event.downWeighted) assert.ok(event.batch.includes(id), `${id} in batch`);
      assert.ok(Number.isFinite(event.losses.total));
    }
    // The stop saved a checkpoint.
    const header = JSON.parse(await Deno.readTextFile(`${checkpointDir}/${line}/detector.json`));
    assert.equal(header.step, events.at(-1)!.step);
    await nc.close();
    await Deno.remove(checkpointDir, { recursive: true });
  },
});
