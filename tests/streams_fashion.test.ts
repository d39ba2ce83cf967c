import assert from "node:assert/strict";
import { decodeImage } from "../src/image/decode.ts";
import {
  DatasetMissingError,
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  fashionMnistAvailable,
  type FashionMnistSplit,
  loadFashionMnist,
  parseIdx,
} from "../src/data/fashion_mnist.ts";
import { pollutedSplit, pollutedSplitFrom } from "../src/data/polluted_split.ts";
import { readManifest, readStream, type RecordedMessage } from "../src/streams/format.ts";
import { buildFashionLineStream } from "../src/streams/fashion_line.ts";

// The Debian package is a declared test dependency; only its absence skips these tests.
const haveDataset = await fashionMnistAvailable();
if (!haveDataset) {
  console.warn(
    `Fashion-MNIST tests ignored: ${FASHION_MNIST_DIR} missing ` +
      `(apt-get install dataset-fashion-mnist)`,
  );
}

/** A fake split: `perClass` images of each of `classes` classes, pixel value = image index. */
function fakeSplit(classes: number, perClass: number): FashionMnistSplit {
  const images: Uint8Array[] = [];
  const labels = new Uint8Array(classes * perClass);
  for (let i = 0; i < labels.length; i++) {
    labels[i] = i % classes;
    images.push(new Uint8Array(784).fill(i % 256));
  }
  return { images, labels };
}

Deno.test("parseIdx reads an unsigned-byte IDX array and rejects bad files", () => {
  const bytes = new Uint8Array([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3, 1, 2, 3, 4, 5, 6]);
  const parsed = parseIdx(bytes);
  assert.deepEqual(parsed.dims, [2, 3]);
  assert.deepEqual([...parsed.data], [1, 2, 3, 4, 5, 6]);
  assert.throws(() => parseIdx(bytes.subarray(0, 17)), /expected 18 bytes/);
  assert.throws(() => parseIdx(new Uint8Array([0, 0, 9, 1, 0, 0, 0, 0])), /bad magic/);
});

Deno.test("a missing dataset names the Debian package to install", async () => {
  const empty = await Deno.makeTempDir();
  try {
    assert.equal(await fashionMnistAvailable(empty), false);
    await assert.rejects(() => loadFashionMnist("test", empty), (error: unknown) => {
      assert.ok(error instanceof DatasetMissingError);
      assert.match(error.message, /apt-get install dataset-fashion-mnist/);
      return true;
    });
  } finally {
    await Deno.remove(empty, { recursive: true });
  }
});

Deno.test("pollutedSplitFrom follows the overlap protocol and is seeded", () => {
  const train = fakeSplit(10, 50);
  const test = fakeSplit(10, 40);
  const options = { normalClass: 3, ratio: 0.1, trainCount: 40, testCount: 60, seed: 5 };
  const split = pollutedSplitFrom(train, test, options);
  assert.equal(split.injected, 4);
  assert.equal(split.train.length, 44);
  assert.equal(split.test.length, 60);
  assert.equal(split.test.filter((s) => !s.anomalous).length, 30);
  const testKeys = new Set(split.test.map((s) => `${s.source}:${s.index}`));
  const injected = split.train.filter((s) => s.anomalous);
  assert.equal(injected.length, 4);
  // Injected anomalies come from the test set and stay in it.
  assert.ok(injected.every((s) => s.source === "test" && testKeys.has(`test:${s.index}`)));
  assert.ok(split.train.filter((s) => !s.anomalous).every((s) => s.source === "train"));
  assert.ok(split.train.every((s) => s.anomalous === (s.classId !== 3)));
  assert.equal(new Set(split.train.map((s) => `${s.source}:${s.index}`)).size, 44);

  const again = pollutedSplitFrom(train, test, options);
  assert.deepEqual(again.train.map((s) => s.index), split.train.map((s) => s.index));
  const other = pollutedSplitFrom(train, test, { ...options, seed: 6 });
  assert.notDeepEqual(other.test.map((s) => s.index), split.test.map((s) => s.index));
  assert.equal(pollutedSplitFrom(train, test, { ...options, ratio: 0 }).injected, 0);
  assert.throws(
    () => pollutedSplitFrom(train, test, { ...options, ratio: 1 }),
    /need 40 anomalies in the test set to inject but only 30/,
  );
  assert.throws(
    () => pollutedSplitFrom(train, test, { ...options, trainCount: 51 }),
    /need 51 normal train images but only 50/,
  );
});

Deno.test({
  name: "Fashion-MNIST loads both splits from the Debian package",
  ignore: !haveDataset,
  fn: async () => {
    const train = await loadFashionMnist("train");
    const test = await loadFashionMnist("test");
    assert.equal(train.images.length, 60_000);
    assert.equal(train.labels.length, 60_000);
    assert.equal(test.images.length, 10_000);
    assert.ok(train.images.every((image) => image.length === 784));
    const perClass = new Array(10).fill(0);
    for (const label of test.labels) perClass[label]++;
    assert.deepEqual(perClass, new Array(10).fill(1000));
    // Real pictures, not zeros: a dark background with a bright object.
    const first = test.images[0];
    assert.ok(Math.max(...first) > 200 && first[0] === 0);
    assert.equal(await loadFashionMnist("test"), test); // cached
  },
});

Deno.test({
  name: "pollutedSplit on Fashion-MNIST injects test anomalies at ratio r",
  ignore: !haveDataset,
  fn: async () => {
    const split = await pollutedSplit({
      normalClass: 7,
      ratio: 0.1,
      trainCount: 200,
      testCount: 100,
      seed: 1,
    });
    assert.equal(split.injected, 20);
    assert.equal(split.train.filter((s) => s.anomalous).length, 20);
    assert.ok(split.train.filter((s) => s.anomalous).every((s) => s.source === "test"));
    assert.ok(split.test.every((s) => s.source === "test"));
  },
});

Deno.test({
  name: "buildFashionLineStream writes upscaled RGB images with class labels",
  ignore: !haveDataset,
  fn: async () => {
    const dir = await Deno.makeTempDir();
    try {
      const info = await buildFashionLineStream(dir, {
        normalClass: 7,
        anomalyRatio: 0.25,
        count: 20,
        seed: 3,
        size: 64,
      }, { force: true, createdBy: "test" });
      assert.equal(info.count, 20);
      const messages: RecordedMessage[] = [];
      for await (const message of readStream(dir)) messages.push(message);
      const manifest = await readManifest(dir);
      const anomalous = manifest.entries.filter((e) => e.label === "anomalous");
      assert.equal(anomalous.length, 5);
      assert.ok(
        anomalous.every((e) =>
          e.label === "anomalous" && e.defect !== "sneaker" &&
          (FASHION_MNIST_CLASSES as readonly string[]).includes(e.defect ?? "")
        ),
      );
      const decoded = await decodeImage(messages[0].payload, 64);
      assert.equal(decoded.format, "png");
      assert.equal(decoded.width, 64);
      const { pixels } = decoded;
      for (let i = 0; i < pixels.length; i += 3) {
        assert.ok(pixels[i] === pixels[i + 1] && pixels[i] === pixels[i + 2], "grey as RGB");
      }
      assert.ok(messages.every((m) => m.subject === "inspect.fashion-line.image"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
