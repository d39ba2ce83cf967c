import { strict as assert } from "node:assert";
import { connect, headers } from "nats";
import { PipelineSchema } from "../src/config/schema.ts";
import { BacklogAlarm, type BacklogAlarmEvent } from "../src/bus/backlog_alarm.ts";
import { assertDecodedImageFits } from "../src/bus/decoded_image.ts";
import { isLastDelivery, retryDelayMs } from "../src/bus/delivery.ts";
import { encodeImageRecord, openImageIdBucket, parseImageRecord } from "../src/bus/image_ids.ts";
import { ModelStore } from "../src/bus/model_store.ts";
import { publishVerdict } from "../src/bus/publishers.ts";
import { ensureDurableConsumer, ensureLineStreams } from "../src/bus/streams.ts";
import {
  alarmSubject,
  IMAGE_ID_HEADER,
  imageIdKey,
  imageSubject,
  INGEST_CONSUMER,
  streamNames,
} from "../src/bus/subjects.ts";
import { warmingUpVerdict } from "../src/bus/verdict.ts";
import { VerdictLedger } from "../src/bus/verdict_ledger.ts";
import { runPipeline } from "../src/pipeline/run.ts";
import type { StageHandle } from "../src/pipeline/stage_host.ts";
import { superviseStage } from "../src/pipeline/supervise.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import { startTestNatsServer } from "../src/harness/nats_server.ts";
import { readStreamMessages, waitUntil } from "../src/harness/bus.ts";
import { tinyPipelineConfig } from "./helpers/pipeline_fixtures.ts";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

Deno.test("verdict ledger: one verdict per image message beyond the duplicate window, and after a crash between publishing and recording", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const line = "ledger";
    const limits = PipelineSchema.parse({ line, streams: { duplicateWindowSeconds: 1 } }).streams;
    const js = nc.jetstream();
    const jsm = await nc.jetstreamManager();
    await ensureLineStreams(jsm, line, limits);
    const ledger = await VerdictLedger.open(js, line, limits);
    const kv = await openImageIdBucket(js, line, limits);
    const context = (seq: number) => ({ line, imageSeq: seq, capturedAt: null });
    const stored = async () =>
      (await readStreamMessages(jsm, streamNames(line).verdicts)).map((m) => m.seq);

    // A redelivery later than the duplicate window: recorded, so not published again.
    await kv.create(imageIdKey("a"), encodeImageRecord({ seq: 1 }));
    const first = await ledger.publishOnce(warmingUpVerdict(context(1), "a"));
    assert.equal(first.kind, "published");
    await sleep(1_500);
    assert.deepEqual(await ledger.publishOnce(warmingUpVerdict(context(1), "a")), {
      kind: "already",
      seq: first.kind === "published" ? first.seq : -1,
    });
    assert.equal(await ledger.answered(warmingUpVerdict(context(1), "a")), true);
    assert.deepEqual(await stored(), [1]);

    // A process died after publishing, before recording: the stream is read, not doubled.
    await kv.create(imageIdKey("b"), encodeImageRecord({ seq: 2, verdict: { state: "pending" } }));
    const orphan = await publishVerdict(js, warmingUpVerdict(context(2), "b"));
    await sleep(1_500);
    assert.deepEqual(await ledger.publishOnce(warmingUpVerdict(context(2), "b")), {
      kind: "already",
      seq: orphan.seq,
    });
    const record = parseImageRecord((await kv.get(imageIdKey("b")))!.value);
    assert.deepEqual(record.verdict, { state: "published", seq: orphan.seq });

    // A process died after marking, before publishing: the verdict is published now.
    await kv.create(imageIdKey("c"), encodeImageRecord({ seq: 3, verdict: { state: "pending" } }));
    await sleep(1_500);
    assert.equal((await ledger.publishOnce(warmingUpVerdict(context(3), "c"))).kind, "published");
    assert.equal((await stored()).length, 3);

    // Another image message's Image-Id is refused, not overwritten.
    await assert.rejects(
      () => ledger.publishOnce(warmingUpVerdict(context(9), "a")),
      /belongs to image message 1, not 9/,
    );
    // Entries written by older versions (a bare sequence) still read.
    assert.deepEqual(parseImageRecord(new TextEncoder().encode("17")), { seq: 17 });
  } finally {
    await nc.close();
  }
});

Deno.test("two trainers publishing the same version: one wins, the loser's blob never overwrites it", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const [a, b] = await Promise.all([
      ModelStore.open(nc.jetstream(), "race"),
      ModelStore.open(nc.jetstream(), "race"),
    ]);
    const blobA = new Uint8Array(1000).fill(1);
    const blobB = new Uint8Array(1000).fill(2);
    const outcomes = await Promise.allSettled([
      a.publish(blobA, { step: 10, imageSize: 64 }),
      b.publish(blobB, { step: 11, imageSize: 64 }),
    ]);
    const won = outcomes.filter((o) => o.status === "fulfilled");
    const lost = outcomes.filter((o) => o.status === "rejected");
    assert.equal(won.length, 1, "exactly one publication wins version 1");
    assert.match(String((lost[0] as PromiseRejectedResult).reason), /another trainer/);
    const current = (await a.current())!;
    assert.equal(current.version, 1);
    const bytes = async (record: typeof current) => new Uint8Array((await a.fetch(record))!);
    const expected = current.step === 10 ? blobA : blobB;
    assert.deepEqual(await bytes(current), expected, "version 1 is the winner's blob");
    // The next publication is version 2, in its own object.
    const next = await b.publish(blobB, { step: 12, imageSize: 64 });
    assert.equal(next.version, 2);
    assert.notEqual(next.object, current.object);
    assert.deepEqual(await bytes(current), expected, "version 1 is intact");
  } finally {
    await nc.close();
  }
});

Deno.test("start-up refuses an image size whose decoded images exceed the server's max_payload", async () => {
  assert.throws(
    () => assertDecodedImageFits(608, 1024 * 1024),
    /model\.imageSize 608 does not fit this NATS server.*max_payload is 1048576; use model\.imageSize ≤ 576/,
  );
  assertDecodedImageFits(576, 1024 * 1024);
  await using server = await startTestNatsServer();
  const config = PipelineSchema.parse({ line: "huge", model: { imageSize: 608 } });
  await assert.rejects(
    () =>
      runPipeline({
        config,
        natsUrl: server.url,
        stages: ["ingest"],
        workers: false,
        progressIntervalMs: 0,
      }),
    /model\.imageSize 608 does not fit/,
  );
});

Deno.test("delivery: back-off doubles to 30 s; the last delivery is known", () => {
  assert.deepEqual([1, 2, 3, 4, 5, 6, 9].map(retryDelayMs), [
    1_000,
    2_000,
    4_000,
    8_000,
    16_000,
    30_000,
    30_000,
  ]);
  const message = (deliveryCount: number) =>
    ({ info: { deliveryCount } }) as unknown as Parameters<typeof isLastDelivery>[0];
  assert.equal(isLastDelivery(message(2), 3), false);
  assert.equal(isLastDelivery(message(3), 3), true);
});

Deno.test("stream limits have one owner: other stages create missing streams but change nothing", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await nc.jetstreamManager();
    const line = "owned";
    const big = PipelineSchema.parse({ line, streams: { maxMsgs: 1000 } }).streams;
    const small = PipelineSchema.parse({ line, streams: { maxMsgs: 10 } }).streams;
    await ensureLineStreams(jsm, line, big, { owner: true });
    const warnings: string[] = [];
    await ensureLineStreams(jsm, line, small, { warn: (m) => warnings.push(m) });
    const images = streamNames(line).images;
    assert.equal((await jsm.streams.info(images)).config.max_msgs, 1000, "a scorer cut nothing");
    assert.equal(warnings.length, 4);
    assert.match(warnings[0], /keeps its limits \(max_msgs 1000, configured 10\)/);
    await ensureLineStreams(jsm, line, small, { owner: true });
    assert.equal((await jsm.streams.info(images)).config.max_msgs, 10, "the owner changes them");
  } finally {
    await nc.close();
  }
});

Deno.test("streams.imageDiscard new: a full image stream refuses a JetStream camera's image with an error", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await nc.jetstreamManager();
    const line = "refusing";
    const limits = PipelineSchema.parse({ line, streams: { maxMsgs: 3, imageDiscard: "new" } })
      .streams;
    await ensureLineStreams(jsm, line, limits, { owner: true });
    const js = nc.jetstream();
    for (let i = 0; i < 3; i++) await js.publish(imageSubject(line), new Uint8Array([i]));
    const refused = await js.publish(imageSubject(line), new Uint8Array([3])).then(
      () => null,
      (error) => error as { api_error?: { description?: string } },
    );
    assert.equal(refused?.api_error?.description, "maximum messages exceeded");
    const names = streamNames(line);
    assert.equal((await jsm.streams.info(names.decoded)).config.discard, "old", "others keep old");
  } finally {
    await nc.close();
  }
});

Deno.test("the operator is told when the line outruns the pipeline: backlog at risk, images discarded unprocessed", async () => {
  await using server = await startTestNatsServer();
  const nc = await connect({ servers: server.url });
  try {
    const jsm = await nc.jetstreamManager();
    const line = "outrun";
    const limits = PipelineSchema.parse({ line, streams: { maxMsgs: 10 } }).streams;
    await ensureLineStreams(jsm, line, limits, { owner: true });
    const stream = await ensureDurableConsumer(jsm, line, INGEST_CONSUMER);
    const events: BacklogAlarmEvent[] = [];
    const sub = nc.subscribe(alarmSubject(line), {
      callback: (_, m) => events.push(m.json<BacklogAlarmEvent>()),
    });
    const warnings: string[] = [];
    const alarm = new BacklogAlarm(nc, jsm, line, stream, INGEST_CONSUMER, (m) => warnings.push(m));
    const js = nc.jetstream();
    for (let i = 0; i < 9; i++) {
      const h = headers();
      h.set(IMAGE_ID_HEADER, `i${i}`);
      await js.publish(imageSubject(line), new Uint8Array([i]), { headers: h });
    }
    await alarm.check();
    assert.equal(alarm.counts.atRisk, 1, "9 of 10 retained, all unprocessed");
    for (let i = 9; i < 25; i++) await js.publish(imageSubject(line), new Uint8Array([i]));
    await alarm.check();
    await alarm.check(); // counted once
    assert.equal(alarm.counts.atRisk, 1, "still the same episode");
    assert.equal(alarm.counts.discardedUnprocessed, 15);
    await nc.flush();
    await waitUntil(() => events.length === 2, 5_000, "two alarm events");
    assert.deepEqual(events.map((e) => e.kind), ["backlog_at_risk", "discarded_unprocessed"]);
    assert.equal(events[1].discarded, 15);
    assert.match(warnings[1], /15 messages of INSPECT_outrun_IMAGES were discarded/);
    sub.unsubscribe();
  } finally {
    await nc.close();
  }
});

Deno.test("run restarts a crashed Worker stage with back-off and logs it, but not one whose credentials were revoked", async () => {
  const config = tinyPipelineConfig("supervised");
  const failures: ((error: Error) => void)[] = [];
  let starts = 0;
  const fakeStage = (): Promise<StageHandle> => {
    starts++;
    const failure = new Promise<never>((_, reject) => failures.push(reject));
    failure.catch(() => undefined);
    const status = { stage: "scorer", imagesIn: starts } as unknown as StageStatus;
    return Promise.resolve({
      name: "scorer",
      status: () => Promise.resolve(status),
      pause: () => Promise.resolve(status),
      resume: () => Promise.resolve(status),
      snapshot: () => Promise.reject(new Error("no")),
      metrics: () => Promise.resolve(null),
      stop: () => Promise.resolve(),
      failure,
    });
  };
  const logs: string[] = [];
  const stage = await superviseStage(
    { stage: "scorer", config, checkpointDir: "unused" },
    fakeStage,
    (line) => logs.push(line),
    { initialMs: 10, maxMs: 40, resetAfterMs: 60_000 },
  );
  for (let crash = 1; crash <= 3; crash++) {
    failures.at(-1)!(new Error(`worker crashed ${crash}`));
    await waitUntil(() => stage.restarts === crash, 5_000, `restart ${crash}`);
  }
  assert.equal((await stage.status()).imagesIn, 4, "calls go to the current incarnation");
  assert.deepEqual(logs.filter((l) => l.includes("restarting in")), [
    "supervised/scorer crashed (worker crashed 1); restarting in 10 ms",
    "supervised/scorer crashed (worker crashed 2); restarting in 20 ms",
    "supervised/scorer crashed (worker crashed 3); restarting in 40 ms",
  ]);
  assert.ok(logs.includes("supervised/scorer restarted (restart 3)"));
  // Revoked credentials: no restart loop, the line fails with the server's reason.
  failures.at(-1)!(new Error("scorer: NATS: 'Authorization Violation'"));
  await assert.rejects(() => stage.failure, /Authorization Violation/);
  assert.equal(stage.restarts, 3);
  await stage.stop();
});
