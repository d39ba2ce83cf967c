import assert from "node:assert/strict";
import sharp from "sharp";
import { decodeImage, ImageRejectedError } from "../src/image/decode.ts";
import { SeededRandom } from "../src/util/prng.ts";
import {
  firstHeader,
  type Manifest,
  readManifest,
  readStream,
  type RecordedMessage,
  sha256Hex,
  STREAM_FILES,
} from "../src/streams/format.ts";
import {
  buildSyntheticLineStream,
  generateSyntheticLine,
  PART_DEFECTS,
  renderPart,
  SYNTHETIC_LINE_DEFAULTS,
} from "../src/streams/synthetic_line.ts";
import {
  BAD_INPUT_DEFAULTS,
  buildBadInputStream,
  crc32,
  pngBomb,
} from "../src/streams/bad_input.ts";

const FIXTURES = new URL("../fixtures", import.meta.url).pathname;
const small = { ...SYNTHETIC_LINE_DEFAULTS, count: 6, anomalyRatio: 0.5, line: "det" };

async function collect(dir: string): Promise<RecordedMessage[]> {
  const out: RecordedMessage[] = [];
  for await (const message of readStream(dir)) out.push(message);
  return out;
}

async function fileHashes(dir: string): Promise<string[]> {
  return await Promise.all(
    STREAM_FILES.map(async (f) => sha256Hex(await Deno.readFile(`${dir}/${f}`))),
  );
}

Deno.test("mulberry32 is reproducible and seed-dependent", () => {
  const draw = (seed: number) => {
    const rng = new SeededRandom(seed);
    return Array.from({ length: 5 }, () => rng.next());
  };
  assert.deepEqual(draw(7), draw(7));
  assert.notDeepEqual(draw(7), draw(8));
  assert.ok(draw(7).every((x) => x >= 0 && x < 1));
});

Deno.test("synthetic-line: same seed gives the same bytes, another seed does not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const opts = { createdBy: "test" };
    await buildSyntheticLineStream(`${dir}/a`, small, opts);
    await buildSyntheticLineStream(`${dir}/b`, small, opts);
    await buildSyntheticLineStream(`${dir}/c`, { ...small, seed: small.seed + 1 }, opts);
    const [a, b, c] = await Promise.all(["a", "b", "c"].map((s) => fileHashes(`${dir}/${s}`)));
    assert.deepEqual(a, b);
    const payloads = STREAM_FILES.indexOf("payloads.bin");
    assert.notEqual(a[payloads], c[payloads]);
    const manifest = await readManifest(`${dir}/a`);
    assert.equal(manifest.entries.filter((e) => e.label === "anomalous").length, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("synthetic-line: every defect kind renders a decodable image unlike its normal twin", async () => {
  const normal = await decodeImage(await renderPart(new SeededRandom(99), { size: 128 }), 128);
  for (const defect of PART_DEFECTS) {
    const bytes = await renderPart(new SeededRandom(99), { size: 128, defect });
    const image = await decodeImage(bytes, 128);
    assert.equal(image.format, "jpeg");
    assert.equal(image.width, 128);
    // Same seed, so pose and lighting match up to the defect's extra draws; the pixels differ.
    let diff = 0;
    for (let i = 0; i < image.pixels.length; i++) {
      diff += Math.abs(image.pixels[i] - normal.pixels[i]);
    }
    assert.ok(diff / image.pixels.length > 0.001, `${defect} looks like a normal part`);
  }
});

Deno.test("synthetic-line: the anomaly count is exact and defects cycle through every kind", async () => {
  const seen = new Map<string, number>();
  let count = 0;
  for await (const image of generateSyntheticLine({ ...small, count: 28, anomalyRatio: 0.25 })) {
    count++;
    if (image.defect) seen.set(image.defect, (seen.get(image.defect) ?? 0) + 1);
  }
  assert.equal(count, 28);
  assert.deepEqual([...seen.keys()].sort(), [...PART_DEFECTS].sort());
  assert.ok([...seen.values()].every((n) => n === 1));
});

/** Checks that nothing of the manifest appears in what gets published. */
function assertNoLabelLeak(messages: RecordedMessage[], manifest: Manifest, index: string) {
  const words = new Set(["label", "anomalous", "normal", "invalid", "defect", "expectedError"]);
  for (const entry of manifest.entries) {
    if (entry.label === "anomalous" && entry.defect) words.add(entry.defect);
    if (entry.label === "invalid") words.add(entry.expectedError);
  }
  for (const word of words) {
    assert.ok(
      !index.toLowerCase().includes(word.toLowerCase()),
      `messages.ndjson mentions ${word}`,
    );
  }
  for (const message of messages) {
    assert.deepEqual(
      Object.keys(message.headers).filter((k) => k !== "Image-Id" && k !== "Captured-At"),
      [],
    );
  }
}

Deno.test("committed synthetic-line: 300 images, 10 % anomalous, unique ids, no label leak", async () => {
  const dir = `${FIXTURES}/synthetic-line`;
  const messages = await collect(dir);
  const manifest = await readManifest(dir);
  assert.equal(messages.length, 300);
  const ids = messages.map((m) => firstHeader(m.headers, "Image-Id"));
  assert.equal(new Set(ids).size, 300);
  assert.ok(messages.every((m) => m.subject === "inspect.synthetic-line.image"));
  assert.ok(messages.every((m) => !Number.isNaN(Date.parse(m.headers["Captured-At"][0]))));
  assert.equal(manifest.entries.length, 300);
  const anomalous = manifest.entries.filter((e) => e.label === "anomalous");
  assert.equal(anomalous.length, 30);
  assert.deepEqual(
    [...new Set(anomalous.map((e) => e.label === "anomalous" && e.defect))].sort(),
    [...PART_DEFECTS].sort(),
  );
  for (const message of messages) {
    const entry = manifest.bySeq.get(message.seq);
    assert.equal(entry?.imageId, firstHeader(message.headers, "Image-Id"));
  }
  assertNoLabelLeak(messages, manifest, await Deno.readTextFile(`${dir}/messages.ndjson`));
  const first = await decodeImage(messages[0].payload, 128);
  assert.equal(first.width, 128);
});

Deno.test("committed bad-input: each bad message fails with its expected code, good ones decode", async () => {
  const dir = `${FIXTURES}/bad-input`;
  const messages = await collect(dir);
  const manifest = await readManifest(dir);
  assertNoLabelLeak(messages, manifest, await Deno.readTextFile(`${dir}/messages.ndjson`));
  assert.equal(manifest.entries.length, messages.length);
  const expected = new Set(
    manifest.entries.flatMap((e) => e.label === "invalid" ? [e.expectedError] : []),
  );
  assert.deepEqual([...expected].sort(), [
    "duplicate_image_id",
    "empty",
    "missing_image_id",
    "too_many_pixels",
    "undecodable",
    "unsupported_type",
  ]);
  const seenIds = new Set<string>();
  const formats = new Set<string>();
  for (const message of messages) {
    const entry = manifest.bySeq.get(message.seq)!;
    const id = firstHeader(message.headers, "Image-Id");
    let outcome: string;
    if (id === undefined) outcome = "missing_image_id";
    else if (seenIds.has(id)) outcome = "duplicate_image_id";
    else {
      seenIds.add(id);
      try {
        formats.add((await decodeImage(message.payload, 64)).format);
        outcome = "ok";
      } catch (error) {
        assert.ok(error instanceof ImageRejectedError, String(error));
        outcome = error.code;
      }
    }
    assert.equal(
      outcome,
      entry.label === "invalid" ? entry.expectedError : "ok",
      `seq ${message.seq}`,
    );
  }
  assert.deepEqual([...formats].sort(), ["jpeg", "png", "webp"]);
});

Deno.test("PNG bomb: valid PNG claiming 100 megapixels in a few KB", async () => {
  const bomb = pngBomb(10_000);
  assert.ok(bomb.length < 64 * 1024, `${bomb.length} bytes`);
  const meta = await sharp(bomb, { limitInputPixels: false }).metadata();
  assert.equal(meta.format, "png");
  assert.equal(meta.width! * meta.height!, 100_000_000);
  const { data, info } = await sharp(pngBomb(12)).raw().toBuffer({ resolveWithObject: true });
  assert.equal(info.width, 12);
  assert.ok(data.every((v) => v === 0));
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

Deno.test("bad-input generation is deterministic", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const options = { ...BAD_INPUT_DEFAULTS, bombSide: 2000 };
    await buildBadInputStream(`${dir}/a`, options, { createdBy: "test" });
    await buildBadInputStream(`${dir}/b`, options, { createdBy: "test" });
    assert.deepEqual(await fileHashes(`${dir}/a`), await fileHashes(`${dir}/b`));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("committed fixtures reproduce byte for byte and stay under 5 MB", async () => {
  const script = new URL("../scripts/make_fixtures.ts", import.meta.url).pathname;
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-ffi",
      "--allow-env",
      "--allow-sys",
      script,
      "--check",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(stdout) + new TextDecoder().decode(stderr);
  assert.equal(code, 0, text);
  let total = 0;
  for await (const entry of Deno.readDir(FIXTURES)) {
    if (!entry.isDirectory) continue;
    for await (const file of Deno.readDir(`${FIXTURES}/${entry.name}`)) {
      total += (await Deno.stat(`${FIXTURES}/${entry.name}/${file.name}`)).size;
    }
  }
  assert.ok(total < 5_000_000, `fixtures are ${total} bytes`);
});
