/**
 * Heatmaps on a running line: every scored verdict names its heatmap, the heatmap is stored
 * under its Image-Id before the verdict, and the verdict's region and anomalous share agree
 * with the map, in the camera's own pixel coordinates.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import sharp from "sharp";
import { streamNames } from "../src/bus/subjects.ts";
import { fetchHeatmap } from "../src/bus/heatmap.ts";
import { parseVerdict, type ScoredVerdict } from "../src/bus/verdict.ts";
import { decodeHeatmapPng } from "../src/image/heatmap_png.ts";
import { argmax, fractionAbove } from "../src/ad2/regions.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  publishImage,
  readStreamMessages,
  waitForScorerModel,
  waitForStreamCount,
} from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

Deno.test({
  name: "every scored verdict has a heatmap keyed by Image-Id; region in original pixels",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await nc.jetstreamManager();
    const line = "heatmaps";
    const config = tinyPipelineConfig(line, {
      // Flag something as soon as possible: every score above the window's 50 % quantile.
      scorer: {
        batchSize: 4,
        threshold: { method: "quantile", targetFalseAlarmRate: 0.5, window: 100, minScores: 4 },
      },
    });
    const checkpointDir = await Deno.makeTempDir();
    const pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      workers: false,
      checkpointDir,
      progressIntervalMs: 0,
    });
    const images = await syntheticImages(24);
    // The second half reaches the line as 200×120 photos: ingest stretches them to 64×64.
    for (const image of images.slice(12)) {
      image.payload = new Uint8Array(
        await sharp(image.payload).resize(200, 120, { fit: "fill" }).jpeg().toBuffer(),
      );
    }
    try {
      for (const image of images.slice(0, 12)) {
        publishImage(nc, line, image.imageId, image.payload);
      }
      await nc.flush();
      await waitForScorerModel(nc, line);
      for (const image of images.slice(12)) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitForStreamCount(jsm, streamNames(line).verdicts, 24, 120_000);
    } finally {
      await pipeline.stop();
    }
    const verdicts = (await readStreamMessages(jsm, streamNames(line).verdicts))
      .map((m) => parseVerdict(m.data));
    const scored = verdicts.filter((v): v is ScoredVerdict => v.status === "scored");
    const resized = new Set(images.slice(12).map((i) => i.imageId));
    const late = scored.filter((v) => resized.has(v.imageId));
    assert.equal(late.length, 12, "the images published after the first version are scored");
    let anomalous = 0;
    for (const verdict of scored) {
      assert.ok(verdict.heatmap, `${verdict.imageId} names its heatmap`);
      const heatmap = await fetchHeatmap(jsm, line, verdict.imageId);
      assert.ok(heatmap, `heatmap of ${verdict.imageId} is stored`);
      assert.equal(heatmap.imageId, verdict.imageId);
      assert.equal(heatmap.modelVersion, verdict.modelVersion);
      assert.equal(heatmap.scaleMax, verdict.heatmap.scaleMax);
      const map = await decodeHeatmapPng(heatmap.png, heatmap.scaleMax);
      assert.equal(map.size, 64);
      // The share above the threshold agrees with the stored map (to the PNG's quantisation).
      const step = heatmap.scaleMax / 255;
      const lo = fractionAbove(map.values, verdict.threshold + step);
      const hi = fractionAbove(map.values, verdict.threshold - step);
      assert.ok(
        verdict.anomalousFraction! >= lo && verdict.anomalousFraction! <= hi,
        `${verdict.anomalousFraction} in [${lo}, ${hi}]`,
      );
      const original = resized.has(verdict.imageId)
        ? { width: 200, height: 120 }
        : { width: 128, height: 128 };
      assert.deepEqual(verdict.originalSize, original);
      if (!verdict.anomalous) {
        assert.equal(verdict.region, null);
        continue;
      }
      anomalous++;
      const region = verdict.region!;
      assert.ok(region.x >= 0 && region.x + region.width <= original.width, JSON.stringify(region));
      assert.ok(region.y >= 0 && region.y + region.height <= original.height);
      // The map's peak lies inside the region, mapped to original pixels.
      const peak = argmax(map.values);
      const px = ((peak % 64) + 0.5) * original.width / 64;
      const py = (Math.floor(peak / 64) + 0.5) * original.height / 64;
      assert.ok(px >= region.x && px <= region.x + region.width, `peak x ${px} in region`);
      assert.ok(py >= region.y && py <= region.y + region.height, `peak y ${py} in region`);
    }
    assert.ok(anomalous > 0, "some image was flagged");
    const stored = await jsm.streams.info(streamNames(line).heatmaps);
    assert.equal(stored.state.messages, scored.length);
    assert.equal(stored.config.max_bytes, config.heatmaps.maxBytes);
    assert.equal(stored.config.max_age, config.heatmaps.maxAgeSeconds * 1e9);
    await nc.close();
    await Deno.remove(checkpointDir, { recursive: true });
  },
});
