/**
 * `trainer.hygiene.rejectScoredAnomalous`: the published model's anomalous verdict on an image
 * still in the trainer's buffer takes it out of training, and the next training event reports
 * it; a normal verdict changes nothing.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { trainingSubject, verdictSubject } from "../src/bus/subjects.ts";
import { parseTrainingEvent, type TrainingEvent } from "../src/bus/training_event.ts";
import { scoredVerdict } from "../src/bus/verdict.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { publishImage, waitUntil } from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";
import { control } from "../src/harness/bus.ts";

Deno.test({
  name: "hygiene: an anomalous verdict of the published model takes the image out of training",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "verdict-hygiene";
    const config = tinyPipelineConfig(line, {
      // Baseline: ATDR flags nothing, so every rejection below comes from a verdict.
      training: { method: "baseline" },
      trainer: { hygiene: { rejectScoredAnomalous: true } },
    });
    const events: TrainingEvent[] = [];
    const subscription = nc.subscribe(trainingSubject(line), {
      callback: (error, message) => {
        if (!error) events.push(parseTrainingEvent(message.data));
      },
    });
    const pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      stages: ["ingest", "trainer"],
      workers: false,
      checkpointDir: await Deno.makeTempDir(),
      progressIntervalMs: 0,
    });
    const images = await syntheticImages(12);
    const [flagged, cleared] = [images[0].imageId, images[1].imageId];
    try {
      await control<StageStatus>(nc, line, "trainer", "pause");
      for (const image of images) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitUntil(
        async () => (await control<StageStatus>(nc, line, "trainer", "status")).imagesIn === 12,
        60_000,
        "the trainer to buffer 12 images",
      );

      const context = { line, imageSeq: 1, capturedAt: null };
      const fields = (score: number) => ({
        score,
        stScore: score,
        aeScore: score,
        threshold: 1,
        modelVersion: 1,
        modelStep: 50,
      });
      for (
        const verdict of [
          scoredVerdict(context, flagged, fields(2)), // anomalous
          scoredVerdict(context, cleared, fields(0.5)), // normal
        ]
      ) {
        nc.publish(verdictSubject(line), new TextEncoder().encode(JSON.stringify(verdict)));
      }
      await nc.flush();
      await waitUntil(
        async () =>
          (await control<StageStatus>(nc, line, "trainer", "status")).details.hygieneRejected === 1,
        30_000,
        "the trainer to reject the anomalous image",
      );

      await control<StageStatus>(nc, line, "trainer", "resume");
      await waitUntil(() => events.length >= 3, 120_000, "three training steps");
    } finally {
      await pipeline.stop();
      subscription.unsubscribe();
      await nc.close();
    }
    // Reported once, with the first step after it left; never trained on. The image with a
    // normal verdict stays and is trained on.
    const rejected = events.flatMap((event) => event.rejected ?? []);
    assert.deepEqual(rejected, [flagged], JSON.stringify(events.map((e) => e.rejected)));
    assert.deepEqual(events[0].rejected, [flagged], "reported with the next training event");
    const trained = new Set(events.flatMap((event) => event.batch));
    assert.ok(!trained.has(flagged), "the rejected image was never trained on");
    assert.ok(trained.has(cleared), "the image with a normal verdict was trained on");
  },
});
