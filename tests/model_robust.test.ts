import { strict as assert } from "node:assert";
import * as tf from "@tensorflow/tfjs";
import { ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { autoencoderSampleWeights, Detector } from "../src/model/detector.ts";
import { toBatch } from "../src/model/batches.ts";
import { outlierCountFor } from "../src/ad2/contamination.ts";
import { SeededRandom } from "../src/util/prng.ts";

const SIZE = 32;

Deno.test("autoencoderSampleWeights: off, weights (ξ) and exclude (0)", () => {
  assert.equal(autoencoderSampleWeights(4, [2], "off", 0.1), undefined);
  assert.equal(autoencoderSampleWeights(4, [], "exclude", 0.1), undefined);
  assert.deepEqual(autoencoderSampleWeights(4, [2], "weights", 0.1), [1, 1, 0.1, 1]);
  assert.deepEqual(autoencoderSampleWeights(4, [0, 3], "exclude", 0.1), [0, 1, 1, 0]);
  // autoencoderTrim's samples weigh 0 whatever the protection; they also win over ξ.
  assert.deepEqual(autoencoderSampleWeights(4, [], "off", 0.1, [1]), [1, 0, 1, 1]);
  assert.deepEqual(autoencoderSampleWeights(4, [2], "off", 0.1, [1]), [1, 0, 1, 1]);
  assert.deepEqual(autoencoderSampleWeights(4, [2, 1], "weights", 0.1, [1]), [1, 0, 0.1, 1]);
});

/** Dim noisy squares (the normal part) and one bright checkerboard (the defect). */
function images(count: number, seed: number, defect: boolean): Float32Array[] {
  const random = new SeededRandom(seed);
  return Array.from({ length: count }, () => {
    const pixels = new Float32Array(SIZE * SIZE * 3);
    for (let y = 0; y < SIZE; y++) {
      for (let x = 0; x < SIZE; x++) {
        const value = defect
          ? ((x >> 2) + (y >> 2)) % 2
          : (Math.abs(x - 16) < 8 && Math.abs(y - 16) < 8 ? 0.6 : 0.3) + random.next() * 0.05;
        for (let c = 0; c < 3; c++) pixels[(y * SIZE + x) * 3 + c] = value;
      }
    }
    return pixels;
  });
}

Deno.test("contamination-aware ATDR: k follows the estimate, finds the defect, leaks nothing", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, studentWidth: "tiny" }),
    TrainingSchema.parse({
      learningRate: 1e-3,
      atdrOutlierCount: "auto",
      protectAutoencoder: "exclude",
      contamination: { window: 16 },
    }),
  );
  try {
    const normals = images(7, 1, false);
    const defect = images(1, 2, true)[0];
    detector.fitTeacherStats([toBatch(normals, SIZE)]);
    let rate = 0;
    let tensorsAtStep3 = -1;
    let pickedDefect = 0;
    for (let step = 1; step <= 8; step++) {
      const slot = step % 8; // the defect moves through the batch
      const picked = [...normals.slice(0, slot), defect, ...normals.slice(slot)];
      const batch = toBatch(picked, SIZE);
      const report = detector.trainStep(batch);
      batch.dispose();
      // k of this step comes from the estimate before it.
      assert.equal(report.outliers.length, outlierCountFor(rate, 8, 2, 0.5));
      if (report.outliers.includes(slot)) pickedDefect++;
      assert.ok(report.defectRate !== null && report.defectRate >= 0);
      rate = report.defectRate!;
      if (step === 3) tensorsAtStep3 = tf.memory().numTensors;
    }
    assert.equal(tf.memory().numTensors, tensorsAtStep3, "numTensors is flat");
    // One defect in eight: the estimate is positive and k ≥ 1 picks the defect.
    assert.ok(rate > 0.05, `defect-rate estimate ${rate}`);
    assert.ok(pickedDefect >= 4, `the defect was picked in ${pickedDefect} of 8 steps`);
  } finally {
    detector.dispose();
  }
});

Deno.test("fixed atdrOutlierCount reports no estimate and picks exactly that many", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, studentWidth: "tiny" }),
    TrainingSchema.parse({ atdrOutlierCount: 3, protectAutoencoder: "weights" }),
  );
  try {
    const normals = images(8, 3, false);
    detector.fitTeacherStats([toBatch(normals, SIZE)]);
    const batch = toBatch(normals, SIZE);
    const report = detector.trainStep(batch);
    batch.dispose();
    assert.equal(report.outliers.length, 3);
    assert.equal(report.defectRate, null);
  } finally {
    detector.dispose();
  }
});

Deno.test("autoencoderTrim keeps the sample the student–teacher pair finds least normal out of the AE", async () => {
  await initBackend("wasm");
  const detector = await Detector.create(
    ModelSchema.parse({ imageSize: SIZE, studentWidth: "tiny" }),
    TrainingSchema.parse({ method: "baseline", autoencoderTrim: 0.125 }),
  );
  try {
    const normals = images(7, 4, false);
    const defect = images(1, 5, true)[0];
    detector.fitTeacherStats([toBatch(normals, SIZE)]);
    const batch = toBatch([...normals.slice(0, 3), defect, ...normals.slice(3)], SIZE);
    const report = detector.trainStep(batch);
    batch.dispose();
    assert.deepEqual(report.trimmed, [3], "one of eight trimmed: the defect");
    assert.deepEqual(report.outliers, [], "baseline: no ATDR");
  } finally {
    detector.dispose();
  }
});
