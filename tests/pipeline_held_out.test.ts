import { strict as assert } from "node:assert";
import { decodeDecodedImage, encodeDecodedImage, isHeldOut } from "../src/bus/decoded_image.ts";
import { streamNames, TRAIN_HEADER } from "../src/bus/subjects.ts";
import { connect } from "nats";
import { parseVerdict } from "../src/bus/verdict.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  control,
  publishImage,
  readStreamMessages,
  waitForScorerModel,
  waitForStreamCount,
} from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

const image = {
  imageId: "part-1",
  imageSeq: 7,
  capturedAt: null,
  size: 2,
  pixels: new Float32Array(12).fill(0.5),
  original: { width: 4, height: 4 },
};

Deno.test("Image-Train: only 'no' keeps an image out of training", () => {
  assert.equal(isHeldOut("no"), true);
  assert.equal(isHeldOut(" No "), true);
  for (const value of [undefined, null, "", "yes", "false", "0"]) {
    assert.equal(isHeldOut(value), false, String(value));
  }
});

Deno.test("decoded images carry Image-Train: no from ingest to trainer and scorer", () => {
  const held = encodeDecodedImage({ ...image, heldOut: true }, new Date(0));
  assert.equal(held.headers.get(TRAIN_HEADER), "no");
  assert.equal(decodeDecodedImage(held.payload, held.headers, 2).heldOut, true);
  const plain = encodeDecodedImage(image, new Date(0));
  assert.equal(plain.headers.has(TRAIN_HEADER), false);
  assert.equal(decodeDecodedImage(plain.payload, plain.headers, 2).heldOut, false);
});

Deno.test({
  name: "held-out images are scored against the threshold but do not move it",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await nc.jetstreamManager();
    const line = "held-out-threshold";
    const pipeline = await runPipeline({
      config: tinyPipelineConfig(line),
      natsUrl: server.url,
      workers: false,
      checkpointDir: await Deno.makeTempDir(),
      progressIntervalMs: 0,
    });
    const images = await syntheticImages(28);
    const windowScores = async () =>
      (await control<StageStatus>(nc, line, "scorer", "status")).details
        ?.windowScores as number;
    try {
      for (const image of images.slice(0, 12)) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitForScorerModel(nc, line);
      await waitForStreamCount(jsm, streamNames(line).verdicts, 12, 60_000);
      const before = await windowScores();

      for (const image of images.slice(12, 20)) {
        publishImage(nc, line, image.imageId, image.payload, undefined, true);
      }
      await nc.flush();
      await waitForStreamCount(jsm, streamNames(line).verdicts, 20, 60_000);
      assert.equal(await windowScores(), before, "held-out scores stay out of the window");

      for (const image of images.slice(20)) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitForStreamCount(jsm, streamNames(line).verdicts, 28, 60_000);
      assert.equal(await windowScores(), before + 8, "the line's own scores enter it");

      const verdicts = (await readStreamMessages(jsm, streamNames(line).verdicts))
        .map((m) => parseVerdict(m.data));
      const heldOut = new Set(images.slice(12, 20).map((i) => i.imageId));
      assert.equal(
        verdicts.filter((v) => heldOut.has(v.imageId ?? "") && v.status === "scored").length,
        8,
        "every held-out image got a scored verdict",
      );
    } finally {
      await pipeline.stop();
      await nc.close();
    }
  },
});
