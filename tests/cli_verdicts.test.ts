import { strict as assert } from "node:assert";
import { summarise } from "../src/cli/verdicts.ts";

Deno.test("verdict summaries show id, status, score against threshold and the flag", () => {
  const scored = JSON.stringify({
    imageId: "cam1-0007",
    status: "scored",
    score: 0.21234,
    threshold: 0.15,
    anomalous: true,
    modelVersion: 3,
  });
  assert.equal(summarise(scored), "cam1-0007  scored  0.212 / 0.150  ANOMALOUS  (model v3)");
  const located = JSON.stringify({
    ...JSON.parse(scored),
    region: { x: 40, y: 12, width: 30, height: 8 },
    anomalousFraction: 0.0123,
  });
  assert.equal(
    summarise(located),
    "cam1-0007  scored  0.212 / 0.150  ANOMALOUS  at x 40 y 12 30×8 px, 1.2 % above  (model v3)",
  );
  const rejected = JSON.stringify({
    imageId: null,
    imageSeq: 12,
    status: "rejected",
    error: { code: "missing_image_id", message: "no Image-Id header" },
  });
  assert.equal(summarise(rejected), "(seq 12)  rejected  missing_image_id: no Image-Id header");
  assert.equal(summarise(JSON.stringify({ imageId: "a", status: "warming_up" })), "a  warming_up");
  assert.equal(summarise("not json"), "not json");
});
