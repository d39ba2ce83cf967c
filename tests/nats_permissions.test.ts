// Least privilege: a real nats-server started with the shipped deploy/nats/plant.conf (one
// account per plant, one user per role). The pipeline runs end to end on its own role; a
// camera cannot forge a verdict, reserve an Image-Id or move the model pointer; a consumer
// cannot publish verdicts or pause the trainer; the operator drives the control service.
import assert from "node:assert/strict";
import { headers, type NatsConnection } from "nats";
import { connectNats, natsTargetOf } from "../src/bus/connection.ts";
import {
  imageIdBucket,
  imageIdKey,
  MODEL_VERSIONS_BUCKET,
  modelVersionKey,
  MSG_ID_HEADER,
  streamNames,
  verdictMsgId,
  verdictSubject,
} from "../src/bus/subjects.ts";
import { parseVerdict } from "../src/bus/verdict.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import {
  control,
  publishImage,
  readStreamMessages,
  waitForScorerModel,
  waitForStreamCount,
  waitUntil,
} from "../src/harness/bus.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { syntheticImages, tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

/** The example configuration the README and deploy/README.md document. */
const PLANT_CONFIG = "deploy/nats/plant.conf";
const LINE = "demo";
const ROLES = ["camera", "pipeline", "consumer", "operator"] as const;
type Role = typeof ROLES[number];

const passwords = Object.fromEntries(
  ROLES.map((role) => [role, `${role}-${crypto.randomUUID()}`]),
) as Record<Role, string>;
const serverEnv = Object.fromEntries(
  ROLES.map((role) => [`PLANT_A_${role.toUpperCase()}_PASSWORD`, passwords[role]]),
);
const authOf = (role: Role) => ({ user: `plant-a-${role}`, password: passwords[role] });

/** A role's connection plus every permission violation the server reported to it. */
interface RoleClient {
  nc: NatsConnection;
  violations: string[];
}

async function connectAs(url: string, role: Role): Promise<RoleClient> {
  const nc = await connectNats(natsTargetOf(url, authOf(role)), {
    name: `test-${role}`,
    reconnect: false,
  });
  const violations: string[] = [];
  (async () => {
    for await (const status of nc.status()) {
      const context = (status as { permissionContext?: { operation: string; subject: string } })
        .permissionContext;
      if (context) violations.push(`${context.operation} ${context.subject}`);
    }
  })();
  return { nc, violations };
}

async function violationFor(client: RoleClient, subject: string): Promise<void> {
  await client.nc.flush();
  await waitUntil(
    () => client.violations.includes(`publish ${subject}`),
    10_000,
    `a permissions violation for ${subject}`,
  );
}

Deno.test({
  name:
    "deploy/nats/plant.conf: the pipeline runs on its role; camera and consumer cannot forge verdicts, Image-Ids, models or control",
  sanitizeResources: false, // Workers end asynchronously after terminate()
  sanitizeOps: false,
  fn: async () => {
    await using server = await startTestNatsServer({ configFile: PLANT_CONFIG, env: serverEnv });
    const checkpointDir = await Deno.makeTempDir({ prefix: "perm-ckpt-" });
    const pipeline = await runPipeline({
      config: tinyPipelineConfig(LINE),
      natsUrl: server.url,
      natsAuth: authOf("pipeline"),
      workers: true,
      checkpointDir,
      progressIntervalMs: 0,
    });
    const camera = await connectAs(server.url, "camera");
    const consumer = await connectAs(server.url, "consumer");
    const operator = await connectAs(server.url, "operator");
    const pipelineClient = await connectAs(server.url, "pipeline");
    const verdictStream = streamNames(LINE).verdicts;
    try {
      // End to end: camera images in, verdicts out, read by the consumer; a model version.
      const images = await syntheticImages(17);
      const reserved = images.pop()!; // its id is the forgery target below
      for (const image of images) {
        publishImage(camera.nc, LINE, image.imageId, image.payload, new Date().toISOString());
      }
      await camera.nc.flush();
      const consumerJsm = await consumer.nc.jetstreamManager();
      await waitForStreamCount(consumerJsm, verdictStream, images.length, 120_000);
      await waitForScorerModel(operator.nc, LINE);
      const versions = await pipelineClient.nc.jetstream().views.kv(MODEL_VERSIONS_BUCKET, {
        bindOnly: true,
      });
      const pointer = await versions.get(modelVersionKey(LINE));
      assert.ok(pointer, "the trainer published a version");

      // Camera: no verdict, no Image-Id reservation, no model pointer.
      const forged = headers();
      forged.set(MSG_ID_HEADER, verdictMsgId(reserved.imageId));
      const fakeVerdict = new TextEncoder().encode(JSON.stringify({ forged: true }));
      camera.nc.publish(verdictSubject(LINE), fakeVerdict, { headers: forged });
      await violationFor(camera, verdictSubject(LINE));
      const idSubject = `$KV.${imageIdBucket(LINE)}.${imageIdKey(reserved.imageId)}`;
      camera.nc.publish(idSubject, new TextEncoder().encode("1"));
      await violationFor(camera, idSubject);
      const pointerSubject = `$KV.${MODEL_VERSIONS_BUCKET}.${modelVersionKey(LINE)}`;
      camera.nc.publish(pointerSubject, new TextEncoder().encode('{"version":999}'));
      await violationFor(camera, pointerSubject);
      camera.nc.publish("inspect.demo.control.trainer.pause", new Uint8Array());
      await violationFor(camera, "inspect.demo.control.trainer.pause");

      // Consumer: may not publish a verdict nor pause the trainer.
      consumer.nc.publish(verdictSubject(LINE), fakeVerdict, { headers: forged });
      await violationFor(consumer, verdictSubject(LINE));
      await assert.rejects(
        consumer.nc.request("inspect.demo.control.trainer.pause", undefined, { timeout: 5_000 }),
        (error: { code?: string }) => error.code === "PERMISSIONS_VIOLATION",
      );
      await violationFor(consumer, "inspect.demo.control.trainer.pause");
      const trainer = await control<StageStatus>(operator.nc, LINE, "trainer", "status");
      assert.equal(trainer.paused, false, "the consumer did not pause the trainer");

      // Nothing forged landed: the pointer did not move, the reserved id is still free and
      // its real image gets a real verdict.
      const after = await versions.get(modelVersionKey(LINE));
      assert.ok(after && JSON.parse(after.string()).version >= 1);
      assert.ok(!after.string().includes("999"), "the camera did not move the model pointer");
      publishImage(camera.nc, LINE, reserved.imageId, reserved.payload, new Date().toISOString());
      await camera.nc.flush();
      await waitForStreamCount(consumerJsm, verdictStream, images.length + 1, 120_000);
      const verdicts = (await readStreamMessages(consumerJsm, verdictStream)).map((m) =>
        parseVerdict(m.data)
      );
      assert.equal(verdicts.length, images.length + 1, "no forged verdict was stored");
      const last = verdicts.find((v) => v.imageId === reserved.imageId);
      assert.ok(last, "the reserved id's real image has its verdict");
      assert.equal(last.status, "scored", JSON.stringify(last));

      // `simulate` on the camera role: it cannot look up streams or Image-Ids, says so, and
      // publishes the pass it is given.
      const simulated = await new Deno.Command(Deno.execPath(), {
        args: [
          ...["run", "-A", "main.ts", "simulate", "--line", LINE, "--count", "2", "--rate", "50"],
          ...["--first-pass", "2", "--server", server.url],
        ],
        env: { NATS_USER: authOf("camera").user, NATS_PASSWORD: authOf("camera").password },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const simulateOutput = new TextDecoder().decode(simulated.stdout) +
        new TextDecoder().decode(simulated.stderr);
      assert.equal(simulated.code, 0, simulateOutput);
      assert.match(simulateOutput, /may not look up JetStream streams/);
      await waitForStreamCount(consumerJsm, verdictStream, images.length + 3, 120_000);

      // The operator role drives the control service.
      const paused = await control<StageStatus>(operator.nc, LINE, "trainer", "pause");
      assert.equal(paused.paused, true);
      const resumed = await control<StageStatus>(operator.nc, LINE, "trainer", "resume");
      assert.equal(resumed.paused, false);
      assert.deepEqual(operator.violations, []);
      assert.deepEqual(pipelineClient.violations, []);
      // The stages themselves never hit a permission they lack.
      const pipelineViolations = server.violations.filter((line) =>
        line.includes("plant-a-pipeline") || line.includes("plant-a-operator")
      );
      assert.deepEqual(pipelineViolations, []);
      assert.ok(server.violations.some((line) => line.includes("plant-a-camera")), "log is read");
    } finally {
      await pipeline.stop();
      for (const client of [camera, consumer, operator, pipelineClient]) await client.nc.close();
      await Deno.remove(checkpointDir, { recursive: true }).catch(() => undefined);
    }
  },
});
