import { strict as assert } from "node:assert";
import { verdictSchemaText } from "../src/bus/write_verdict_schema.ts";
import {
  rejectedVerdict,
  scoredVerdict,
  VERDICT_SCHEMA_URL,
  VerdictSchema,
  warmingUpVerdict,
} from "../src/bus/verdict.ts";
import { msgIdOfVerdict } from "../src/bus/publishers.ts";
import {
  decodedSubject,
  imageIdKey,
  imageSubject,
  streamNames,
  trainingSubject,
  verdictSubject,
} from "../src/bus/subjects.ts";
import { HygieneSchema, PipelineSchema, TrainingSchema } from "../src/config/schema.ts";
import { ACCURACY_VARIANTS } from "../bench/accuracy_variants.ts";
import { loadPipelineConfig, parsePipelineConfig } from "../src/pipeline/config.ts";
import { validCapturedAt } from "../src/stages/captured_at.ts";

Deno.test("committed verdict.schema.json is generated from the zod schema", async () => {
  const committed = await Deno.readTextFile(VERDICT_SCHEMA_URL);
  assert.equal(
    committed,
    verdictSchemaText(),
    "run `deno run --allow-write src/bus/write_verdict_schema.ts` and commit the result",
  );
  const schema = JSON.parse(committed);
  const statuses = schema.anyOf.map((branch: { properties: { status: { const: string } } }) =>
    branch.properties.status.const
  );
  assert.deepEqual(statuses.sort(), ["rejected", "scored", "warming_up"]);
});

Deno.test("verdict constructors produce schema-valid verdicts; anomalous is score > threshold", () => {
  const context = { line: "demo", imageSeq: 7, capturedAt: "2024-05-01T08:00:00.000Z" };
  const at = new Date("2024-05-01T08:00:01.000Z");
  const high = scoredVerdict(context, "img-7", {
    score: 0.5,
    stScore: 0.4,
    aeScore: 0.6,
    threshold: 0.3,
    modelVersion: 2,
    modelStep: 75,
  }, at);
  const equal = scoredVerdict(context, "img-7", {
    score: 0.3,
    stScore: 0.3,
    aeScore: 0.3,
    threshold: 0.3,
    modelVersion: 2,
    modelStep: 75,
  }, at);
  assert.equal(high.anomalous, true);
  assert.equal(equal.anomalous, false);
  for (
    const verdict of [
      high,
      warmingUpVerdict(context, "img-8", at),
      rejectedVerdict({ ...context, capturedAt: null }, null, "missing_image_id", "no id", at),
    ]
  ) {
    assert.deepEqual(VerdictSchema.parse(JSON.parse(JSON.stringify(verdict))), verdict);
  }
  // A scored verdict without a model version is not a verdict.
  assert.ok(!VerdictSchema.safeParse({ ...high, modelVersion: null }).success);
  // Nor is one that does not say how mature its model is.
  const { modelStep: _, ...withoutStep } = high;
  assert.ok(!VerdictSchema.safeParse(withoutStep).success);
  assert.ok(!VerdictSchema.safeParse({ ...high, status: "bogus" }).success);
});

Deno.test("verdict Nats-Msg-Id: by Image-Id when the image owns it, else by stream sequence", () => {
  const context = { line: "demo", imageSeq: 12, capturedAt: null };
  const dup = rejectedVerdict(context, "a", "duplicate_image_id", "again");
  const undecodable = rejectedVerdict(context, "a", "undecodable", "bad bytes");
  const warming = warmingUpVerdict(context, "a");
  assert.equal(msgIdOfVerdict(dup), "seq:12");
  assert.equal(msgIdOfVerdict(undecodable), "image:a");
  assert.equal(msgIdOfVerdict(warming), "image:a");
  assert.equal(
    msgIdOfVerdict(rejectedVerdict(context, null, "missing_image_id", "none")),
    "seq:12",
  );
});

Deno.test("subjects and stream names of a line", () => {
  assert.equal(imageSubject("demo"), "inspect.demo.image");
  assert.equal(verdictSubject("demo"), "inspect.demo.verdict");
  assert.equal(trainingSubject("demo"), "inspect.demo.training");
  assert.equal(decodedSubject("demo"), "inspect.demo.decoded");
  assert.deepEqual(Object.values(streamNames("line-1")), [
    "INSPECT_line-1_IMAGES",
    "INSPECT_line-1_DECODED",
    "INSPECT_line-1_VERDICTS",
    "INSPECT_line-1_TRAINING",
    "INSPECT_line-1_HEATMAPS",
  ]);
  assert.throws(() => verdictSubject("a.b"), /invalid line name/);
  // Any Image-Id maps to a valid KV key, distinct ids to distinct keys.
  const ids = ["a", "a/b", "ä b.c*>", "x".repeat(256)];
  const keys = ids.map(imageIdKey);
  for (const key of keys) assert.match(key, /^[-_A-Za-z0-9]+$/);
  assert.equal(new Set(keys).size, ids.length);
});

Deno.test("Captured-At is kept only when it is RFC 3339", () => {
  assert.equal(validCapturedAt("2024-05-01T08:00:00.000Z"), "2024-05-01T08:00:00.000Z");
  assert.equal(validCapturedAt("2024-05-01T08:00:00+02:00"), "2024-05-01T08:00:00+02:00");
  assert.equal(validCapturedAt("yesterday"), null);
  assert.equal(validCapturedAt(""), null);
  assert.equal(validCapturedAt(undefined), null);
});

Deno.test("pipeline config: defaults fill a minimal file; errors name the file and the field", async () => {
  const minimal = PipelineSchema.parse({ line: "x" });
  assert.equal(minimal.training.batchSize, 8);
  assert.equal(minimal.model.imageSize, 64);
  assert.ok(minimal.trainer.warmupSteps >= 1);
  assert.throws(
    () => parsePipelineConfig({ line: "x", trainer: { bufferSize: "many" } }, "p.json"),
    /^Error: p\.json: trainer\.bufferSize: /,
  );
  assert.throws(() => parsePipelineConfig({ line: "a.b" }, "p.json"), /p\.json: line: /);
  assert.throws(
    () => parsePipelineConfig({ line: "x", model: { imageSize: 100 } }, "p.json"),
    /p\.json: model\.imageSize: must be a multiple of 32/,
  );
  assert.throws(() => parsePipelineConfig({ line: "x", typo: 1 }, "p.json"), /p\.json: \(root\)/);
  const demo = await loadPipelineConfig("pipelines/demo.json");
  assert.equal(demo.line, "demo");
  // The shipped robust line carries the benchmarks' robust variant, field for field.
  const robust = await loadPipelineConfig("pipelines/robust.json");
  assert.equal(robust.line, "robust");
  assert.deepEqual(
    robust.training,
    TrainingSchema.parse({ ...ACCURACY_VARIANTS.robust.training, batchSize: 8 }),
  );
  assert.deepEqual(robust.trainer.hygiene, HygieneSchema.parse(ACCURACY_VARIANTS.robust.hygiene));
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/bad.json`, "{ not json");
    await assert.rejects(loadPipelineConfig(`${dir}/bad.json`), /bad\.json: invalid JSON/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
