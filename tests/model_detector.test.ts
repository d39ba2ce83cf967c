import { autoAeMapWeight } from "../src/ad2/normalisation.ts";
import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { scoreAll, trainOffline } from "../src/model/offline.ts";
import {
  decodeCheckpoint,
  encodeCheckpoint,
  loadCheckpoint,
  saveCheckpoint,
} from "../src/model/checkpoint.ts";
import { SeededRandom } from "../src/util/prng.ts";

const SIZE = 32;
const model = ModelSchema.parse({ imageSize: SIZE, studentWidth: "tiny" });

/** Soft blobs on a textured background: a "part" with variation, reproducible by seed. */
function partImages(count: number, seed: number): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const pixels = new Float32Array(SIZE * SIZE * 3);
    const cx = SIZE / 2 + (random.next() - 0.5) * 3;
    const cy = SIZE / 2 + (random.next() - 0.5) * 3;
    const light = 0.8 + random.next() * 0.2;
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const inside = (x - cx) ** 2 + (y - cy) ** 2 < 8 ** 2;
        const base = inside ? 0.7 : 0.25 + 0.05 * Math.sin(x / 2);
        for (let c = 0; c < 3; c++) {
          pixels[(y * SIZE + x) * 3 + c] = Math.min(
            1,
            base * light * (c === 0 ? 1 : 0.8) + random.next() * 0.03,
          );
        }
      }
    }
    return pixels;
  });
}

Deno.test("training lowers the loss and leaks no tensors", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(model, TrainingSchema.parse({ learningRate: 1e-3 }));
  try {
    const images = partImages(16, 1);
    detector.fitTeacherStats([toBatch(images, SIZE)]);
    const random = new SeededRandom(3);
    const losses: number[] = [];
    let tensorsAtStep10 = -1;
    for (let step = 1; step <= 60; step++) {
      const picked = Array.from(
        { length: 8 },
        () => images[Math.floor(random.next() * images.length)],
      );
      const batch = toBatch(picked, SIZE);
      const report = detector.trainStep(batch);
      batch.dispose();
      losses.push(report.losses.total);
      assert.equal(report.step, step);
      assert.equal(report.outliers.length, 1, "AD² reports the ATDR-down-weighted sample");
      if (step === 10) tensorsAtStep10 = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, tensorsAtStep10, "numTensors is flat from step 10 to 60");
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    const first = mean(losses.slice(0, 5));
    const last = mean(losses.slice(-5));
    assert.ok(last < 0.7 * first, `loss fell from ${first} to ${last}`);
  } finally {
    detector.dispose();
  }
});

Deno.test("checkpoint round trips (directory and blob) give identical scores and map weight", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    model,
    TrainingSchema.parse({ method: "baseline", autoencoderMapWeight: "auto" }),
  );
  const dir = await Deno.makeTempDir();
  try {
    const images = partImages(12, 2);
    trainOffline(detector, images, { steps: 3, seed: 1 });
    const scores = scoreAll(detector, images);
    // "auto": the weight follows the autoencoder's explained variance, fitted with the maps.
    const explained = detector.mapQuantiles?.aeExplained;
    assert.ok(explained !== undefined && explained <= 1, `explained variance ${explained}`);
    assert.equal(detector.aeMapWeight, autoAeMapWeight(explained));
    await saveCheckpoint(detector, dir);
    const fromDir = await loadCheckpoint(dir);
    const fromBlob = await decodeCheckpoint(encodeCheckpoint(detector));
    try {
      for (const restored of [fromDir, fromBlob]) {
        assert.equal(restored.step, 3);
        assert.deepEqual(restored.training, detector.training);
        assert.deepEqual(restored.mapQuantiles, detector.mapQuantiles);
        assert.equal(restored.aeMapWeight, detector.aeMapWeight);
        assert.deepEqual(scoreAll(restored, images), scores);
      }
    } finally {
      fromDir.dispose();
      fromBlob.dispose();
    }
  } finally {
    detector.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a damaged checkpoint is refused with a clear error", async () => {
  await assert.rejects(
    () => decodeCheckpoint(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8])),
    /bad magic/,
  );
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(() => loadCheckpoint(dir), /no checkpoint here/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("scoreWithMaps: same scores as score, the anomalyMaps map, no leaked tensors", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(model, TrainingSchema.parse({ method: "baseline" }));
  try {
    const images = partImages(8, 4);
    trainOffline(detector, images, { steps: 2, seed: 1 });
    const batch = toBatch(images.slice(0, 4), SIZE);
    const plain = detector.score(batch);
    const before = tf.memory().numTensors;
    const mapped = detector.scoreWithMaps(batch);
    assert.equal(tf.memory().numTensors, before);
    const maps = detector.anomalyMaps(batch);
    const expected = maps.arraySync().map((rows) => rows.flat());
    tf.dispose([batch, maps]);
    mapped.forEach((report, i) => {
      assert.deepEqual(
        { score: report.score, stScore: report.stScore, aeScore: report.aeScore },
        plain[i],
      );
      assert.equal(report.map.length, SIZE * SIZE);
      assert.deepEqual(Array.from(report.map), expected[i].map((v) => Math.fround(v)));
      // Bilinear resizing never exceeds the unresized map's maximum, the image score.
      assert.ok(Math.max(...report.map) <= report.score + 1e-6);
    });
  } finally {
    detector.dispose();
  }
});
