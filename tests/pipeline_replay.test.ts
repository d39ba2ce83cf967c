/**
 * `trainer.replayStepsPerImage`: once the line stops, the trainer keeps stepping on its buffer
 * (random replays) for the budget its new images earned, then stops.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { runPipeline } from "../src/pipeline/run.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { publishImage, waitUntil } from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

Deno.test({
  name:
    "a stopped line: the trainer replays its buffer for the steps its images earned, then idles",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const line = "replay";
    const checkpointDir = await Deno.makeTempDir();
    const pipeline = await runPipeline({
      config: tinyPipelineConfig(line, {
        trainer: { replayStepsPerImage: 1, publishEverySteps: 1000 },
      }),
      natsUrl: server.url,
      workers: false,
      progressIntervalMs: 0,
      checkpointDir,
      stages: ["ingest", "trainer"],
    });
    try {
      for (const image of await syntheticImages(12)) {
        publishImage(nc, line, image.imageId, image.payload);
      }
      await nc.flush();
      const trainer = async () => (await pipeline.status()).find((s) => s.stage === "trainer")!;
      // Settled: all 12 images trained on and no step for 3 s.
      let last = -1;
      let changedAt = Date.now();
      await waitUntil(
        async () => {
          const status = await trainer();
          if (status.step !== last || status.imagesOut !== 12) changedAt = Date.now();
          last = status.step ?? 0;
          return Date.now() - changedAt >= 3_000;
        },
        120_000,
        "the trainer to settle",
      );
      // Batches of 4: 3 to 12 steps with new images, plus exactly one replay per image.
      assert.ok(last >= 3 + 12 && last <= 12 + 12, `${last} steps`);
    } finally {
      await pipeline.stop();
      await nc.close();
      await Deno.remove(checkpointDir, { recursive: true });
    }
  },
});
