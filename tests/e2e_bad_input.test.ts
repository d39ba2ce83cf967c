/**
 * End to end: the committed bad-input stream replayed through the running pipeline. Every bad
 * message gets exactly one `rejected` verdict with the error code its manifest expects, and the
 * good images around them are judged as usual: warming_up then scored while the line is cold,
 * all scored once it is warm.
 */
import { strict as assert } from "node:assert";
import type { Verdict } from "../src/bus/verdict.ts";
import { readManifest } from "../src/streams/format.ts";
import {
  demoConfigWith,
  E2eLine,
  MILESTONE_TIMEOUT_MS,
  oneVerdictPerMessage,
  passSuffix,
} from "../src/harness/line.ts";
import { waitUntil } from "../src/harness/bus.ts";

const BAD_INPUT_DIR = "fixtures/bad-input";

/** Checks one pass: rejections as the manifest expects, good images never rejected. */
async function checkPass(verdicts: Verdict[], pass: number): Promise<Verdict[]> {
  const manifest = await readManifest(BAD_INPUT_DIR);
  const good: Verdict[] = [];
  for (const [seq, verdict] of verdicts.entries()) {
    const entry = manifest.bySeq.get(seq);
    assert.ok(entry, `seq ${seq} is in the manifest`);
    const where = `pass ${pass}, seq ${seq}`;
    // The Image-Id travels as published (a missing one stays missing).
    assert.equal(verdict.imageId, entry.imageId === null ? null : entry.imageId + passSuffix(pass));
    if (entry.label === "invalid") {
      assert.equal(verdict.status, "rejected", where);
      if (verdict.status === "rejected") {
        assert.equal(verdict.error.code, entry.expectedError, where);
        assert.ok(verdict.error.message.length > 0, where);
      }
    } else {
      assert.notEqual(verdict.status, "rejected", `${where}: a good image was rejected`);
      good.push(verdict);
    }
  }
  return good;
}

Deno.test({
  name: "bad-input through the running pipeline: one rejection per bad message with the " +
    "manifest's code, good neighbours judged normally",
  sanitizeResources: false, // Workers end asynchronously after terminate()
  sanitizeOps: false,
  fn: async () => {
    const started = performance.now();
    // The demo line's model, warm after two steps on the stream's own ten good images (a fixed
    // warm-up: the demo's loss-plateau maturity needs more steps than ten images give).
    const config = await demoConfigWith("bad-input", {
      trainer: {
        warmupSteps: 2,
        publishEverySteps: 2,
        statsImages: 8,
        normalisationImages: 8,
        maturity: { criterion: "steps" },
      },
    });
    await using line = await E2eLine.start(config);
    const count = (await readManifest(BAD_INPUT_DIR)).entries.length;

    // Pass 1, cold line: the model is born during the pass.
    const first = await line.replayPass(BAD_INPUT_DIR, 1);
    const cold = await checkPass(oneVerdictPerMessage(await line.verdicts(), first, count), 1);
    assert.equal(cold.length, 10);
    // Ingest keeps message order and a loaded model is never dropped: warming_up, then scored.
    const statuses = cold.map((v) => v.status).join(",");
    assert.match(statuses, /^(warming_up,?)*(scored,?)*$/, statuses);

    await waitUntil(
      async () => (await line.status("scorer")).modelVersion !== null,
      MILESTONE_TIMEOUT_MS,
      "the scorer to load the first model version",
    );

    // Pass 2, warm line, fresh Image-Ids: same rejections, every good image scored.
    const second = await line.replayPass(BAD_INPUT_DIR, 2);
    const verdicts = await line.verdicts();
    assert.equal(verdicts.length, 2 * count, "no verdict lost, doubled or extra");
    const warm = await checkPass(oneVerdictPerMessage(verdicts, second, count), 2);
    for (const verdict of warm) {
      assert.equal(verdict.status, "scored", `${verdict.imageId} is scored`);
      if (verdict.status !== "scored") continue;
      assert.ok(Number.isFinite(verdict.score) && Number.isFinite(verdict.threshold));
      assert.equal(verdict.anomalous, verdict.score > verdict.threshold);
    }
    const summary = {
      coldStatuses: statuses,
      seconds: Math.round((performance.now() - started) / 1000),
    };
    console.log(`e2e bad-input: ${JSON.stringify(summary)}`);
  },
});
