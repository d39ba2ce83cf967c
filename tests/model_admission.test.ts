// Model objects are untrusted input: forged versions (oversize, NaN weights, a foreign teacher
// path, another architecture, a header outside the schema, statistics that overflow the scores,
// unsigned or wrongly signed when signing is on, a signed blob replayed under another version) are each refused by the scorer, reported on
// inspect.<line>.model.refused, and the line keeps scoring with its old version; a restarted
// trainer refuses a forged current version too.
import assert from "node:assert/strict";
import type { NatsConnection } from "nats";
import { connectNats, natsTargetOf } from "../src/bus/connection.ts";
import { type ModelRefusal, parseModelRefusal } from "../src/bus/model_refusal.ts";
import {
  hmacSigning,
  type ModelSigning,
  modelSigningFromEnv,
  nkeySigning,
} from "../src/bus/model_signing.ts";
import { ModelStore } from "../src/bus/model_store.ts";
import { modelRefusedSubject, streamNames } from "../src/bus/subjects.ts";
import { parseVerdict } from "../src/bus/verdict.ts";
import { publishImage, readStreamMessages, waitUntil } from "../src/harness/bus.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { newUserNkey } from "../src/harness/secure_nats.ts";
import { CheckpointError, decodeCheckpoint } from "../src/model/checkpoint.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

/** A checkpoint blob split into its JSON header and float32 weights. */
interface OpenBlob {
  header: Record<string, unknown>;
  weights: Float32Array;
}

function openBlob(blob: Uint8Array): OpenBlob {
  const length = new DataView(blob.buffer, blob.byteOffset).getUint32(4, true);
  const header = JSON.parse(new TextDecoder().decode(blob.subarray(8, 8 + length)));
  return { header, weights: new Float32Array(blob.slice(8 + length).buffer) };
}

function sealBlob({ header, weights }: OpenBlob): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const padded = Math.ceil(json.length / 4) * 4;
  const out = new Uint8Array(8 + padded + weights.byteLength).fill(0x20, 8, 8 + padded);
  out.set(new TextEncoder().encode("AD2C"), 0);
  new DataView(out.buffer).setUint32(4, padded, true);
  out.set(json, 8);
  out.set(new Uint8Array(weights.buffer), 8 + padded);
  return out;
}

const SECRET = "plant-a-model-signing-secret-0123456789";

Deno.test("model signing: HMAC and NKey sign and verify; other keys, versions or blobs fail", async () => {
  const hmac = await hmacSigning(SECRET);
  const signature = await hmac.sign("demo", 3, "ab".repeat(32));
  assert.equal(await hmac.verify("demo", 3, "ab".repeat(32), signature), null);
  assert.match(await hmac.verify("demo", 4, "ab".repeat(32), signature) ?? "", /does not match/);
  assert.match(await hmac.verify("other", 3, "ab".repeat(32), signature) ?? "", /does not match/);
  assert.match(await hmac.verify("demo", 3, "cd".repeat(32), signature) ?? "", /does not match/);
  assert.match(await hmac.verify("demo", 3, "ab".repeat(32), undefined) ?? "", /unsigned/);
  const other = await hmacSigning(SECRET + "x");
  assert.match(await other.verify("demo", 3, "ab".repeat(32), signature) ?? "", /does not match/);
  await assert.rejects(hmacSigning("short"), /at least 32 characters/);

  const key = newUserNkey();
  const signer = nkeySigning(key.seed);
  const verifier = nkeySigning(key.publicKey);
  assert.equal(verifier.canSign, false);
  const nkeySignature = await signer.sign("demo", 3, "ab".repeat(32));
  assert.equal(await verifier.verify("demo", 3, "ab".repeat(32), nkeySignature), null);
  assert.match(await verifier.verify("demo", 5, "ab".repeat(32), nkeySignature) ?? "", /not match/);
  const stranger = nkeySigning(newUserNkey().publicKey);
  assert.match(await stranger.verify("demo", 3, "ab".repeat(32), nkeySignature) ?? "", /signed by/);
  assert.match(await verifier.verify("demo", 3, "ab".repeat(32), signature) ?? "", /hmac/);

  const env = (values: Record<string, string>) => (name: string) => values[name];
  assert.equal(await modelSigningFromEnv(env({})), null);
  await assert.rejects(
    modelSigningFromEnv(
      env({ INSPECT_MODEL_HMAC_SECRET: SECRET, INSPECT_MODEL_NKEY_SEED: key.seed }),
    ),
    /set one model signing key/,
  );
  await assert.rejects(
    modelSigningFromEnv(env({ INSPECT_MODEL_NKEY_PUBLIC: key.seed })),
    /holds a seed/,
  );
  assert.equal(
    (await modelSigningFromEnv(env({ INSPECT_MODEL_NKEY_PUBLIC: key.publicKey })))?.canSign,
    false,
  );
});

Deno.test({
  name:
    "forged model versions are refused, reported once, and the line keeps scoring on the old version",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer();
    const line = "forge";
    const config = tinyPipelineConfig(line, { models: { maxBytes: 4 * 1024 ** 2 } });
    const checkpointDir = await Deno.makeTempDir({ prefix: "forge-ckpt-" });
    Deno.env.set("INSPECT_MODEL_HMAC_SECRET", SECRET); // the line's own key (trainer and scorer)
    let pipeline = await runPipeline({
      config,
      natsUrl: server.url,
      workers: false,
      checkpointDir,
      progressIntervalMs: 0,
    });
    let nc: NatsConnection | undefined;
    try {
      nc = await connectNats(natsTargetOf(server.url), { name: "attacker", reconnect: false });
      const refusals: ModelRefusal[] = [];
      const subscription = nc.subscribe(modelRefusedSubject(line), {
        callback: (_, message) => refusals.push(parseModelRefusal(message.data)),
      });
      const images = await syntheticImages(24);
      const camera = nc;
      const publish = (batch: typeof images) => {
        for (const image of batch) {
          publishImage(camera, line, image.imageId, image.payload, new Date().toISOString());
        }
        return camera.flush();
      };
      await publish(images.slice(0, 12));
      const scorer = pipeline.stage("scorer")!;
      await waitUntil(async () => (await scorer.status()).modelVersion !== null, 120_000, "v1");
      await pipeline.stage("trainer")!.pause(); // only forgeries from now on

      const models = await ModelStore.open(nc.jetstream(), line);
      const current = (await models.current())!;
      // The trainer may have published once more before it paused: serve that version first.
      await waitUntil(
        async () => (await scorer.status()).modelVersion === current.version,
        120_000,
        `the scorer on v${current.version}`,
      );
      const serving = current.version;
      assert.ok(current.signature, "the trainer signs what it publishes");
      const genuine = (await models.fetch(current))!;
      const key = await hmacSigning(SECRET);
      const forge = async (
        blob: Uint8Array,
        signing: ModelSigning | null,
        expected: ModelRefusal["code"],
        reason: RegExp,
      ) => {
        const record = await models.publish(blob, { step: 99, imageSize: 64 }, signing);
        await waitUntil(
          () => refusals.some((r) => r.version === record.version),
          60_000,
          `the refusal of forged v${record.version} (${expected})`,
        );
        const refusal = refusals.find((r) => r.version === record.version)!;
        assert.equal(refusal.code, expected, JSON.stringify(refusal));
        assert.match(refusal.reason, reason);
        assert.equal(refusal.stage, "scorer");
        assert.equal(refusal.servingVersion, serving);
        const status = await scorer.status();
        assert.equal(status.modelVersion, serving, "the old version keeps serving");
        assert.equal(status.details.queuedVersion, null);
      };

      const open = openBlob(genuine);
      // Oversize: above models.maxBytes, refused before it is read.
      const oversize = new Uint8Array(4 * 1024 ** 2 + 4);
      oversize.set(genuine);
      await forge(oversize, key, "too_large", /above the cap of 4194304/);
      // NaN weights.
      const nan = { header: open.header, weights: open.weights.slice() };
      nan.weights[17] = NaN;
      await forge(sealBlob(nan), key, "not_finite", /weight 17 .* NaN/);
      // A foreign teacher path: the blob must not choose what is loaded.
      const foreignTeacher = {
        header: {
          ...open.header,
          model: {
            ...(open.header.model as object),
            teacher: { kind: "path", path: "/etc", taps: [], inputRange: "imagenet" },
          },
        },
        weights: open.weights,
      };
      await forge(sealBlob(foreignTeacher), key, "architecture", /model\.teacher .*"\/etc"/);
      // Another architecture.
      const wider = {
        header: { ...open.header, model: { ...(open.header.model as object), aeLatent: 32 } },
        weights: open.weights,
      };
      await forge(sealBlob(wider), key, "architecture", /model\.aeLatent is 32/);
      // A header outside the strict schema.
      const extra = { header: { ...open.header, loadPlugin: "/tmp/x.js" }, weights: open.weights };
      await forge(sealBlob(extra), key, "malformed", /loadPlugin|Unrecognized/);
      // Finite but absurd statistics: every value is a number, the scores overflow.
      const stats = open.header.teacherStats as { mean: number[]; std: number[] };
      const overflowing = {
        header: { ...open.header, teacherStats: { ...stats, mean: stats.mean.map(() => 3e38) } },
        weights: open.weights,
      };
      await forge(sealBlob(overflowing), key, "reference_scores", /reference image's \w+ is/);
      // Signing is on: unsigned, signed with another key, a genuine signature replayed.
      await forge(genuine, null, "unsigned", /unsigned/);
      await forge(genuine, await hmacSigning(SECRET + "-attacker"), "bad_signature", /not match/);
      const replay: ModelSigning = { ...key, sign: () => Promise.resolve(current.signature!) };
      await forge(genuine, replay, "bad_signature", /not match/);

      // Every refusal was reported once; the line still scores on the old version, finite.
      const versions = refusals.map((r) => r.version);
      assert.equal(new Set(versions).size, versions.length, "each refusal reported once");
      await publish(images.slice(12));
      const verdictStream = streamNames(line).verdicts;
      const jsm = await nc.jetstreamManager();
      await waitUntil(
        async () => (await jsm.streams.info(verdictStream)).state.messages >= 24,
        120_000,
        "24 verdicts",
      );
      const verdicts = (await readStreamMessages(jsm, verdictStream)).map((m) =>
        parseVerdict(m.data)
      );
      const late = verdicts.slice(12);
      assert.equal(late.length, 12);
      for (const verdict of late) {
        assert.equal(verdict.status, "scored", JSON.stringify(verdict));
        if (verdict.status !== "scored") continue;
        assert.equal(verdict.modelVersion, serving);
        assert.ok(Number.isFinite(verdict.score) && Number.isFinite(verdict.threshold));
      }
      const scorerStatus = await scorer.status();
      assert.equal(scorerStatus.details.refusedVersions, 9);
      assert.match(String(scorerStatus.details.lastRefusal), /bad_signature/);

      // A restarted trainer refuses the forged current version and starts afresh.
      await pipeline.stop();
      await publishAsCurrent(models, sealBlob(nan), key);
      pipeline = await runPipeline({
        config,
        natsUrl: server.url,
        stages: ["trainer"],
        workers: false,
        checkpointDir,
        progressIntervalMs: 0,
      });
      await waitUntil(
        () => refusals.some((r) => r.stage === "trainer"),
        60_000,
        "the restarted trainer's refusal",
      );
      const byTrainer = refusals.find((r) => r.stage === "trainer")!;
      assert.equal(byTrainer.code, "not_finite");
      assert.equal((await pipeline.stage("trainer")!.status()).details.refusedVersions, 1);
      subscription.unsubscribe();
    } finally {
      Deno.env.delete("INSPECT_MODEL_HMAC_SECRET");
      await pipeline.stop();
      await nc?.close();
      await Deno.remove(checkpointDir, { recursive: true }).catch(() => undefined);
    }
  },
});

/** Publishes `blob` (signed with the line's key) as the line's current version. */
async function publishAsCurrent(models: ModelStore, blob: Uint8Array, key: ModelSigning) {
  await models.publish(blob, { step: 99, imageSize: 64 }, key);
}

Deno.test("decodeCheckpoint: a header that is not JSON is a malformed checkpoint", async () => {
  const bad = new Uint8Array(16);
  bad.set(new TextEncoder().encode("AD2C"));
  new DataView(bad.buffer).setUint32(4, 8, true);
  const { model, training } = tinyPipelineConfig("x");
  await assert.rejects(
    decodeCheckpoint(bad, "x", { model, training }),
    (error: Error) =>
      error instanceof CheckpointError && error.problem === "malformed" &&
      /header is not JSON/.test(error.message),
  );
});
