import assert from "node:assert/strict";
import {
  type NewMessage,
  openStreamWriter,
  readManifest,
  readStream,
  readStreamInfo,
  type RecordedMessage,
  StreamExistsError,
} from "../src/streams/format.ts";

const description = { name: "t", generator: "test", seed: 1, createdBy: "streams_format.test" };

const MESSAGES: NewMessage[] = [
  {
    subject: "inspect.a.image",
    offsetMs: 0,
    headers: { "Image-Id": ["a-1"], "Captured-At": ["2024-01-01T00:00:00Z"] },
    payload: new Uint8Array([0xff, 0xd8, 0xff, 1, 2, 3]),
  },
  { subject: "inspect.a.image", offsetMs: 12.5, headers: {}, payload: new Uint8Array(0) },
  {
    subject: "inspect.a.verdict",
    offsetMs: 12.5,
    headers: { "Image-Id": ["a-3"], "X-Multi": ["one", "two"] },
    payload: new TextEncoder().encode('{"score":1}'),
  },
];

async function writeSample(dir: string, force = false): Promise<void> {
  const writer = await openStreamWriter(dir, { force, description });
  for (const message of MESSAGES) await writer.append(message);
  await writer.label({ seq: 0, imageId: "a-1", label: "anomalous", defect: "crack" });
  await writer.label({ seq: 1, imageId: null, label: "invalid", expectedError: "empty" });
  await writer.close();
}

async function collect(dir: string): Promise<RecordedMessage[]> {
  const out: RecordedMessage[] = [];
  for await (const message of readStream(dir)) out.push(message);
  return out;
}

Deno.test("stream round trip keeps subjects, headers, payloads, offsets and labels", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeSample(`${dir}/s`);
    const read = await collect(`${dir}/s`);
    assert.deepEqual(read, MESSAGES.map((m, seq) => ({ seq, ...m })));
    const manifest = await readManifest(`${dir}/s`);
    assert.equal(manifest.entries.length, 2);
    assert.deepEqual(manifest.byImageId.get("a-1"), {
      seq: 0,
      imageId: "a-1",
      label: "anomalous",
      defect: "crack",
    });
    assert.equal(manifest.bySeq.get(1)?.label, "invalid");
    const info = await readStreamInfo(`${dir}/s`);
    assert.equal(info.count, 3);
    assert.equal(info.complete, true);
    assert.equal(info.seed, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writer refuses a non-empty directory without force, replaces with force", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeSample(`${dir}/s`);
    await assert.rejects(() => writeSample(`${dir}/s`), (error: unknown) => {
      assert.ok(error instanceof StreamExistsError);
      assert.match(error.message, /already holds a stream.*--force/);
      return true;
    });
    await Deno.mkdir(`${dir}/other`);
    await Deno.writeTextFile(`${dir}/other/notes.txt`, "x");
    await assert.rejects(
      () => openStreamWriter(`${dir}/other`, { description }),
      /is not empty/,
    );
    // The refused attempt left the existing stream intact.
    assert.equal((await collect(`${dir}/s`)).length, 3);

    const writer = await openStreamWriter(`${dir}/s`, { force: true, description });
    await writer.append(MESSAGES[0]);
    await writer.close();
    assert.equal((await collect(`${dir}/s`)).length, 1);
    assert.equal((await readManifest(`${dir}/s`)).entries.length, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("writer rejects inconsistent labels and decreasing offsets", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const writer = await openStreamWriter(dir, { force: true, description });
    await writer.append(MESSAGES[0]);
    await assert.rejects(() => writer.append({ ...MESSAGES[1], offsetMs: -1 }), /non-decreasing/);
    await assert.rejects(
      () => writer.label({ seq: 0, imageId: "other", label: "normal" }),
      /does not match/,
    );
    await assert.rejects(
      () => writer.label({ seq: 5, imageId: "a-1", label: "normal" }),
      /only 1 messages/,
    );
    await writer.close();
    await assert.rejects(() => writer.append(MESSAGES[0]), /already closed/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reader reports corrupt payloads, truncated lines and missing streams", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await writeSample(`${dir}/s`);
    const payloads = await Deno.readFile(`${dir}/s/payloads.bin`);
    payloads[1] ^= 0xff;
    await Deno.writeFile(`${dir}/s/payloads.bin`, payloads);
    await assert.rejects(
      () => collect(`${dir}/s`),
      /messages\.ndjson:1: payload bytes do not match/,
    );

    await writeSample(`${dir}/t`);
    const text = await Deno.readTextFile(`${dir}/t/messages.ndjson`);
    await Deno.writeTextFile(`${dir}/t/messages.ndjson`, text.slice(0, text.length - 20));
    await assert.rejects(() => collect(`${dir}/t`), /messages\.ndjson:3: not JSON \(truncated/);

    await assert.rejects(() => collect(`${dir}/none`), /is not a stream directory/);
    await assert.rejects(() => readManifest(`${dir}/none`), /has no ground truth/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
