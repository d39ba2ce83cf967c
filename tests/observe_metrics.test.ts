/**
 * `/metrics` of a pipeline process running its stages in Workers: one scrape shows what every
 * Worker counted, merged, in Prometheus' text format.
 */
import { strict as assert } from "node:assert";
import { connect } from "nats";
import { streamNames } from "../src/bus/subjects.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  control,
  publishImage,
  waitForScorerModel,
  waitForStreamCount,
} from "../src/harness/bus.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";
import { PipelineMetrics } from "../src/observe/metrics.ts";
import { rejectedVerdict, scoredVerdict } from "../src/bus/verdict.ts";

/** Samples of a text exposition: `name{labels}` → value (HELP/TYPE lines checked apart). */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (line === "" || line.startsWith("#")) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not a sample line: ${line}`);
    samples.set(match[1], Number(match[2]));
  }
  return samples;
}

Deno.test({
  name: "/metrics: one scrape merges every Worker's counters, histogram and gauges",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const nc = await connect({ servers: server.url });
    const jsm = await nc.jetstreamManager();
    const line = "metrics";
    const checkpointDir = await Deno.makeTempDir();
    const pipeline = await runPipeline({
      config: tinyPipelineConfig(line),
      natsUrl: server.url,
      workers: true,
      checkpointDir,
      progressIntervalMs: 0,
      metricsPort: 0,
    });
    try {
      assert.match(pipeline.metricsUrl!, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
      const images = await syntheticImages(16);
      for (const image of images.slice(0, 12)) publishImage(nc, line, image.imageId, image.payload);
      publishImage(nc, line, "empty-1", new Uint8Array());
      await nc.flush();
      await waitForScorerModel(nc, line);
      for (const image of images.slice(12)) publishImage(nc, line, image.imageId, image.payload);
      await nc.flush();
      await waitForStreamCount(jsm, streamNames(line).verdicts, 17, 120_000);
      await control<StageStatus>(nc, line, "trainer", "pause");

      const response = await fetch(pipeline.metricsUrl!);
      assert.equal(response.status, 200);
      assert.match(response.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
      const text = await response.text();
      assert.match(text, /# TYPE inspect_verdict_latency_seconds histogram/);
      assert.match(text, /# TYPE inspect_images_in_total counter/);
      const m = parseExposition(text);
      const at = (key: string) => {
        assert.ok(m.has(key), `${key} is exposed`);
        return m.get(key)!;
      };
      const l = `line="${line}"`;
      assert.equal(at(`inspect_images_in_total{${l},stage="ingest"}`), 17);
      assert.equal(at(`inspect_images_out_total{${l},stage="ingest",status="decoded"}`), 16);
      assert.equal(at(`inspect_images_out_total{${l},stage="ingest",status="rejected"}`), 1);
      assert.equal(at(`inspect_rejections_total{${l},code="empty"}`), 1);
      assert.equal(at(`inspect_images_in_total{${l},stage="scorer"}`), 16);
      const scored = at(`inspect_images_out_total{${l},stage="scorer",status="scored"}`);
      const warming = at(`inspect_images_out_total{${l},stage="scorer",status="warming_up"}`);
      assert.equal(scored + warming, 16);
      assert.ok(scored >= 4, `${scored} scored`);
      assert.equal(at(`inspect_verdict_latency_seconds_count{${l},status="scored"}`), scored);
      assert.equal(
        at(`inspect_verdict_latency_seconds_bucket{le="+Inf",${l},status="scored"}`),
        scored,
      );
      assert.ok(at(`inspect_verdict_latency_seconds_sum{${l},status="scored"}`) > 0);
      assert.equal(at(`inspect_backlog_messages{${l},consumer="scorer"}`), 0);
      assert.equal(at(`inspect_backlog_messages{${l},consumer="ingest"}`), 0);
      const steps = at(`inspect_training_steps_total{${l}}`);
      assert.ok(steps >= 2, `${steps} steps`);
      assert.ok(Number.isFinite(at(`inspect_training_loss{${l},term="total"}`)));
      assert.equal(at(`inspect_atdr_down_weighted_total{${l}}`), steps, "AD² k = 1 per step");
      assert.ok(at(`inspect_model_version{${l},stage="scorer"}`) >= 1);
      assert.ok(at(`inspect_model_version{${l},stage="trainer"}`) >= 1);
      assert.ok(at(`inspect_model_age_seconds{${l},stage="scorer"}`) >= 0);
      assert.ok(Number.isFinite(at(`inspect_threshold{${l}}`)));
      const rate = at(`inspect_anomalous_rate{${l}}`);
      assert.ok(rate >= 0 && rate <= 1);
      assert.equal(at(`inspect_anomalous_total{${l}}`), Math.round(rate * scored));
      assert.equal(at(`inspect_training_paused{${l}}`), 1);
      assert.ok(at(`inspect_tensors{${l},stage="scorer"}`) > 0);
      assert.ok(at(`inspect_tensors{${l},stage="trainer"}`) > 0);
      assert.ok(at(`inspect_heap_used_bytes{${l},stage="ingest"}`) > 0);
      assert.ok(at("inspect_process_resident_memory_bytes") > 0);

      assert.equal((await fetch(pipeline.metricsUrl!.replace("/metrics", "/x"))).status, 404);
      await (await fetch(pipeline.metricsUrl!.replace("/metrics", "/x"))).body?.cancel();
    } finally {
      await pipeline.stop();
      await nc.close();
      await Deno.remove(checkpointDir, { recursive: true });
    }
  },
});

Deno.test("PipelineMetrics: hygiene, defect rate, rejections, anomalous rate and model age", async () => {
  const m = new PipelineMetrics();
  m.trainingStep({
    line: "u",
    step: 3,
    losses: { total: 2.5, st: 2, ae: 0.3, stae: 0.2 },
    batch: ["a", "b", "c", "d"],
    downWeighted: ["a", "b"],
    rejected: ["a"],
    readmitted: ["z"],
    defectRate: 0.07,
    hygiene: { rejected: 1, refusedByCap: 0, readmitted: 1, quarantined: 0 },
    modelVersion: null,
    at: new Date().toISOString(),
  });
  const context = { line: "u", imageSeq: 1, capturedAt: null };
  const fields = { stScore: 0, aeScore: 0, threshold: 0.5, modelVersion: 1, modelStep: 25 };
  const now = Date.now();
  m.verdictStored("scorer", scoredVerdict(context, "x", { ...fields, score: 0.9 }), null);
  m.verdictStored(
    "scorer",
    scoredVerdict(context, "y", { ...fields, score: 0.1 }),
    new Date(now - 250),
    now,
  );
  m.verdictStored("ingest", rejectedVerdict(context, "z", "too_large", "big"), null);
  m.modelHeld("u", "scorer", 4, new Date(now - 30_000).toISOString());
  const samples = parseExposition(await m.registry.metrics());
  assert.equal(samples.get('inspect_hygiene_images_total{line="u",action="rejected"}'), 1);
  assert.equal(samples.get('inspect_hygiene_images_total{line="u",action="readmitted"}'), 1);
  assert.equal(samples.get('inspect_atdr_down_weighted_total{line="u"}'), 2);
  assert.equal(samples.get('inspect_defect_rate_estimate{line="u"}'), 0.07);
  assert.equal(samples.get('inspect_training_loss{line="u",term="stae"}'), 0.2);
  assert.equal(samples.get('inspect_rejections_total{line="u",code="too_large"}'), 1);
  assert.equal(samples.get('inspect_anomalous_rate{line="u"}'), 0.5);
  assert.equal(samples.get('inspect_threshold{line="u"}'), 0.5);
  assert.equal(
    samples.get('inspect_verdict_latency_seconds_bucket{le="0.25",line="u",status="scored"}'),
    1,
  );
  assert.equal(samples.get('inspect_verdict_latency_seconds_count{line="u",status="scored"}'), 1);
  assert.equal(samples.get('inspect_model_version{line="u",stage="scorer"}'), 4);
  const age = samples.get('inspect_model_age_seconds{line="u",stage="scorer"}')!;
  assert.ok(age >= 30 && age < 60, `age ${age}`);
});
