import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import {
  atdrLoss,
  atdrSelect,
  hardMinedMean,
  nmfeLoss,
  nmfeReport,
  pairwiseDistances,
  sampleWeightedMeanSquare,
  stDiscrepancy,
  studentTeacherLoss,
} from "../src/ad2/losses.ts";
import {
  assertClose,
  assertNoLeak,
  naiveQuantile,
  seededRandom,
  useBackend,
} from "./ad2_helpers.ts";

// A batch of 4 discrepancy maps Δ [b=4,h=2,w=2,c=2]; each sample's 8 values in NHWC order.
// Samples 0–2 are "normal"; sample 3 equals them except one unique spike (41 instead of 1).
const NORMAL = [1, 2, 3, 4, 1, 2, 3, 4];
const SPIKED = [41, 2, 3, 4, 1, 2, 3, 4];
const discrepancy = () => tf.tensor4d([...NORMAL, ...NORMAL, ...NORMAL, ...SPIKED], [4, 2, 2, 2]);

// Student features with a planted outlier: ones everywhere plus one bump per sample,
// f1 − f0 = 3·e0, f2 − f0 = 4·e1, f3 − f0 = 12·e2. l2 distances:
// d01 = 3, d02 = 4, d12 = √(9+16) = 5, d03 = 12, d13 = √(9+144) = √153, d23 = √(16+144) = √160.
const featureValues = (offset: number) => {
  const values = Array.from({ length: 32 }, () => offset + 1);
  values[8 + 0] += 3;
  values[16 + 1] += 4;
  values[24 + 2] += 12;
  return values;
};
const plantedFeatures = (offset = 0) => tf.tensor4d(featureValues(offset), [4, 2, 2, 2]);
const SQRT153 = Math.sqrt(153);
const SQRT160 = Math.sqrt(160);
const L2_MATRIX = [
  [0, 3, 4, 12],
  [3, 0, 5, SQRT153],
  [4, 5, 0, SQRT160],
  [12, SQRT153, SQRT160, 0],
];
// Row sums: 19, 8 + √153 ≈ 20.369, 9 + √160 ≈ 21.649, 12 + √153 + √160 ≈ 37.018.
const L2_SUMS = [19, 8 + SQRT153, 9 + SQRT160, 12 + SQRT153 + SQRT160];

const OPTS = { pLarge: 0.9, omegaLarge: 0.1, pHard: 0.99, xi: 0.1, metric: "l2" as const };

Deno.test("stDiscrepancy: elementwise (S − T)²", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const s = tf.tensor4d([1, 2, 3, 4], [1, 1, 2, 2]);
    const t = tf.tensor4d([0, 4, 3, 1], [1, 1, 2, 2]);
    const d = stDiscrepancy(s, t);
    assert.deepEqual(Array.from(d.dataSync()), [1, 4, 0, 9]);
    const wrong = tf.zeros([1, 2, 2, 1]) as tf.Tensor4D;
    assert.throws(() => stDiscrepancy(s, wrong), /differ in shape/);
    tf.dispose([s, t, d, wrong]);
  });
});

Deno.test("hardMinedMean: mean of the elements at or above the pHard-quantile", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = tf.tensor1d([8, 1, 7, 2, 6, 3, 5, 4]); // sorted 1..8, n − 1 = 7
    const value = (p: number) => {
      const loss = hardMinedMean(d, p);
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
    assertClose(value(0.75), 7.5); // threshold at 5.25 → 6 + 0.25 = 6.25 → {7, 8}
    assertClose(value(0.5), 6.5); // threshold 4.5 → {5, 6, 7, 8}
    assertClose(value(1), 8); // threshold = max
    assertClose(value(0), 4.5); // everything
    assert.throws(() => hardMinedMean(d, 1.1), /pHard/);
    d.dispose();
  });
});

Deno.test("hardMinedMean: gradient reaches exactly the selected elements", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = tf.tensor1d([8, 1, 7, 2, 6, 3, 5, 4]);
    const grad = tf.grad((x) => hardMinedMean(x, 0.75))(d);
    // {8, 7} selected, each weighted 1/2; the threshold blocks nothing it selected.
    assert.deepEqual(Array.from(grad.dataSync()), [0.5, 0, 0.5, 0, 0, 0, 0, 0]);
    tf.dispose([d, grad]);
  });
});

Deno.test("hardMinedMean: differentiable w.r.t. a student variable through Δ_ST", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const initial = tf.tensor4d([1, 2, 3, 6], [2, 1, 1, 2]);
    const student = tf.variable(initial);
    const teacher = tf.zeros([2, 1, 1, 2]) as tf.Tensor4D;
    // Δ = [1, 4, 9, 36]; pHard 0.5 → threshold at position 1.5 → 4 + 0.5·5 = 6.5 → {9, 36}.
    const { value, grads } = tf.variableGrads(() =>
      hardMinedMean(stDiscrepancy(student, teacher), 0.5)
    );
    assertClose(value.dataSync()[0], 22.5);
    // ∂/∂S of (S²)/2 over the selected = S there, 0 elsewhere.
    assert.deepEqual(Array.from(grads[student.name].dataSync()), [0, 0, 3, 6]);
    tf.dispose([initial, student, teacher, value, ...Object.values(grads)]);
  });
});

Deno.test("hardMinedMean: NaN input is a clear error and leaks nothing", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = tf.tensor1d([1, NaN, 2]);
    assert.throws(() => hardMinedMean(d, 0.9), /NaN/);
    d.dispose();
  });
});

Deno.test("nmfeLoss: down-weights the outlier's unique spike (hand values)", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    // μ over the batch = [11, 2, 3, 4, 1, 2, 3, 4]; σ (population) is 0 except at the spike,
    // where [1, 1, 1, 41] gives √((3·10² + 30²)/4) = √300 ≈ 17.32.
    // σ_large = 0.9-quantile of [0×7, √300] = position 6.3 → 0.3·√300 ≈ 5.196 → only the spike
    // element is re-weighted: ω·μ = [1.1, 2, 3, 4, 1, 2, 3, 4].
    // d_hard = 0.99-quantile of ω·μ = position 6.93 between the two 4s = 4 → L = mean(4, 4) = 4.
    const loss = nmfeLoss(d, OPTS);
    assertClose(loss.dataSync()[0], 4);
    // Without re-weighting (ω_large = 1) the selector picks μ = 11 at the spike.
    const unweighted = nmfeLoss(d, { ...OPTS, omegaLarge: 1 });
    assertClose(unweighted.dataSync()[0], 11);
    // EfficientAD's baseline hard loss on Δ: 32 values, 0.99-quantile at position 30.69
    // between 4 and 41 → 4 + 0.69·37 = 29.53 → selects only the spike → 41.
    const baseline = hardMinedMean(d, OPTS.pHard);
    assertClose(baseline.dataSync()[0], 41);
    const report = nmfeReport(d, OPTS);
    assertClose(report.sigmaLarge, 0.3 * Math.sqrt(300), 1e-4);
    assert.equal(report.reweightedFraction, 1 / 8);
    assertClose(report.hardThreshold, 4);
    assert.equal(report.selectedCount, 2);
    tf.dispose([d, loss, unweighted, baseline]);
  });
});

Deno.test("nmfeLoss: gradient flows through μ to the selected common elements only", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    const grad = tf.grad((x) => nmfeLoss(x as tf.Tensor4D, OPTS))(d);
    // L = (x_3 + x_7)/2 with x_i = ω_i·(1/4)Σ_b Δ_{b,i}, ω = 1 there → ∂L/∂Δ_{b,i} = 1/8 for
    // i ∈ {3, 7} in every sample, 0 elsewhere — the spike (sample 3, i = 0) gets nothing.
    const perSample = [0, 0, 0, 0.125, 0, 0, 0, 0.125];
    assertClose(grad.dataSync(), [...perSample, ...perSample, ...perSample, ...perSample]);
    tf.dispose([d, grad]);
  });
});

Deno.test("nmfeLoss: rejects a batch without statistics and bad options", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const single = tf.ones([1, 2, 2, 2]) as tf.Tensor4D;
    assert.throws(() => nmfeLoss(single, OPTS), /batch of 1 < 2/);
    const d = discrepancy();
    assert.throws(() => nmfeLoss(d, { ...OPTS, pLarge: 2 }), /pLarge/);
    assert.throws(() => nmfeLoss(d, { ...OPTS, omegaLarge: -1 }), /omegaLarge/);
    tf.dispose([single, d]);
  });
});

Deno.test("pairwiseDistances: l2 matrix of the planted batch, offset-robust", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    for (const offset of [0, 1000]) {
      const features = plantedFeatures(offset);
      const distances = pairwiseDistances(features, "l2");
      assert.deepEqual(distances.shape, [4, 4]);
      assertClose(distances.dataSync(), L2_MATRIX.flat(), 1e-4, `offset ${offset}`);
      const values = distances.arraySync();
      for (let i = 0; i < 4; i++) assert.equal(values[i][i], 0);
      tf.dispose([features, distances]);
    }
  });
});

// Cosine batch: g0 = e0, g1 = e0 + e1, g2 = e1, g3 orthogonal (5·e2) or all-zero.
// 1 − cos: (0,1) = (1,2) = 1 − 1/√2, (0,2) = 1, anything with g3 = 1.
const cosineFeatures = (g3: number[]) =>
  tf.tensor4d(
    [
      [1, 0, 0, 0, 0, 0, 0, 0],
      [1, 1, 0, 0, 0, 0, 0, 0],
      [0, 1, 0, 0, 0, 0, 0, 0],
      g3,
    ].flat(),
    [4, 2, 2, 2],
  );
const HALF = 1 - Math.SQRT1_2;

Deno.test("pairwiseDistances / atdrSelect: cosine, incl. an all-zero map", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    for (const g3 of [[0, 0, 5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0, 0, 0]]) {
      const features = cosineFeatures(g3);
      const distances = pairwiseDistances(features, "cosine");
      assertClose(
        distances.dataSync(),
        [
          [0, HALF, 1, 1],
          [HALF, 0, HALF, 1],
          [1, HALF, 0, 1],
          [1, 1, 1, 0],
        ].flat(),
        1e-6,
      );
      const { distanceSums, outliers } = atdrSelect(features, { metric: "cosine" });
      assertClose(distanceSums, [2 + HALF, 1 + 2 * HALF, 2 + HALF, 3], 1e-5);
      assert.deepEqual(outliers, [3]);
      tf.dispose([features, distances]);
    }
  });
});

Deno.test("atdrSelect: picks the planted outlier; distance sums match hand values", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const features = plantedFeatures();
    const one = atdrSelect(features, { metric: "l2" });
    assertClose(one.distanceSums, L2_SUMS, 1e-4);
    assert.deepEqual(one.outliers, [3]);
    // Next most distant is sample 2 (21.65 > 20.37 > 19).
    assert.deepEqual(atdrSelect(features, { metric: "l2", outlierCount: 2 }).outliers, [3, 2]);
    assert.deepEqual(atdrSelect(features, { metric: "l2", outlierCount: 0 }).outliers, []);
    assert.throws(() => atdrSelect(features, { metric: "l2", outlierCount: 4 }), /outlierCount/);
    assert.throws(
      () => atdrSelect(features, { metric: "manhattan" as "l2" }),
      /unknown ATDR metric/,
    );
    features.dispose();
  });
});

Deno.test("atdrSelect: ties go to the lower index", async () => {
  await useBackend("cpu");
  const features = tf.tensor4d([0, 0, 1, 1], [4, 1, 1, 1]); // sums 2, 2, 2, 2
  assert.deepEqual(atdrSelect(features, { metric: "l2" }).outliers, [0]);
  features.dispose();
});

Deno.test("atdrLoss: Eq. 8 value on the spiked batch", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    // Inliers (samples 0–2): 24 values, six each of 1..4; 0.99-quantile at position 22.77
    // between two 4s = 4 → mean of the six 4s = 4.
    // Outlier (sample 3): sorted [1,2,2,3,3,4,4,41]; position 6.93 → 4 + 0.93·37 = 38.41 →
    // selects 41. L = 4 + 0.1·41 = 8.1.
    const loss = atdrLoss(d, [3], OPTS);
    assertClose(loss.dataSync()[0], 8.1);
    // No outliers → plain hard-mined mean (41, see the NMFE test).
    const plain = atdrLoss(d, [], OPTS);
    assertClose(plain.dataSync()[0], 41);
    assert.throws(() => atdrLoss(d, [3, 3], OPTS), /repeat/);
    assert.throws(() => atdrLoss(d, [4], OPTS), /not a sample/);
    assert.throws(() => atdrLoss(d, [0, 1, 2, 3], OPTS), /every sample/);
    tf.dispose([d, loss, plain]);
  });
});

Deno.test("atdrLoss: the outlier's gradient is scaled by ξ", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    // pHard = 0 keeps everything: L = mean(24 inlier values) + ξ·mean(8 outlier values),
    // so ∂L/∂Δ = 1/24 for inliers and ξ/8 = 0.0125 for the outlier.
    const all = tf.grad((x) => atdrLoss(x as tf.Tensor4D, [3], { xi: 0.1, pHard: 0 }))(d);
    assertClose(all.dataSync(), [
      ...Array(24).fill(1 / 24),
      ...Array(8).fill(0.1 / 8),
    ], 1e-7);
    // pHard = 0.99: inlier 4s get 1/6 each (6 selected); the outlier's spike gets ξ·1 = 0.1,
    // where its own hard-mined mean alone would give it 1.
    const hard = tf.grad((x) => atdrLoss(x as tf.Tensor4D, [3], OPTS))(d);
    const inlier = [0, 0, 0, 1 / 6, 0, 0, 0, 1 / 6];
    assertClose(hard.dataSync(), [...inlier, ...inlier, ...inlier, 0.1, 0, 0, 0, 0, 0, 0, 0]);
    tf.dispose([d, all, hard]);
  });
});

Deno.test("atdrLoss: gradients also work on wasm (no UnsortedSegmentSum there)", async () => {
  await useBackend("wasm");
  await assertNoLeak(() => {
    const d = discrepancy();
    const grad = tf.grad((x) => atdrLoss(x as tf.Tensor4D, [3, 0], { xi: 0.5, pHard: 0 }))(d);
    // Inliers 1, 2 (16 values): 1/16; outliers 3, 0 (16 values): 0.5/16.
    const expected = [
      ...Array(8).fill(0.5 / 16),
      ...Array(16).fill(1 / 16),
      ...Array(8).fill(0.5 / 16),
    ];
    assertClose(grad.dataSync(), expected, 1e-7);
    tf.dispose([d, grad]);
  });
  await useBackend("cpu");
});

Deno.test("sampleWeightedMeanSquare: plain and per-sample weighted means", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const a = tf.tensor4d([1, 2, 3, 4], [2, 1, 1, 2]);
    const b = tf.zeros([2, 1, 1, 2]) as tf.Tensor4D;
    // (a − b)² = [1, 4 | 9, 16]; per-sample means 2.5 and 12.5.
    const value = (weights?: number[]) => {
      const loss = sampleWeightedMeanSquare(a, b, weights);
      const v = loss.dataSync()[0];
      loss.dispose();
      return v;
    };
    assertClose(value(), 7.5);
    assertClose(value([1, 3]), 10); // (1·2.5 + 3·12.5)/4
    assertClose(value([0, 2]), 12.5);
    // ∂/∂a with weights [1, 3]: (w_i/Σw)·2a/2 → 0.25·[1, 2] and 0.75·[3, 4].
    const grad = tf.grad((x) => sampleWeightedMeanSquare(x as tf.Tensor4D, b, [1, 3]))(a);
    assertClose(grad.dataSync(), [0.25, 0.5, 2.25, 3]);
    assert.throws(() => value([1]), /expected 2 sample weights/);
    assert.throws(() => value([1, -1]), />= 0/);
    assert.throws(() => value([0, 0]), /all be 0/);
    tf.dispose([a, b, grad]);
  });
});

Deno.test("studentTeacherLoss: each method's value, parts and ATDR selection", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    const features = plantedFeatures();
    const expected = { baseline: 41, nmfe: 4, atdr: 8.1, ad2: 4 + 8.1 };
    for (const method of ["baseline", "nmfe", "atdr", "ad2"] as const) {
      const result = studentTeacherLoss(d, features, method, OPTS);
      assertClose(result.loss.dataSync()[0], expected[method], 1e-5, method);
      const usesAtdr = method === "atdr" || method === "ad2";
      assert.deepEqual(result.outliers, usesAtdr ? [3] : []);
      assert.equal(result.distanceSums.length, usesAtdr ? 4 : 0);
      if (method === "baseline") assertClose(result.parts.hard!.dataSync()[0], 41);
      if (method === "ad2") {
        assertClose(result.parts.nmfe!.dataSync()[0], 4);
        assertClose(result.parts.atdr!.dataSync()[0], 8.1);
      }
      tf.dispose([result.loss, ...Object.values(result.parts)]);
    }
    assert.throws(
      () => studentTeacherLoss(d, features, "fancy" as "ad2", OPTS),
      /unknown loss method/,
    );
    tf.dispose([d, features]);
  });
});

Deno.test("studentTeacherLoss ad2: spike gradient is ξ (NMFE gives it none)", async () => {
  await useBackend("cpu");
  await assertNoLeak(() => {
    const d = discrepancy();
    const features = plantedFeatures();
    const grad = tf.grad((x) => studentTeacherLoss(x as tf.Tensor4D, features, "ad2", OPTS).loss)(
      d,
    );
    // NMFE: 1/8 at i ∈ {3, 7} of every sample; ATDR: 1/6 there for inliers, 0.1 at the spike.
    const inlier = [0, 0, 0, 0.125 + 1 / 6, 0, 0, 0, 0.125 + 1 / 6];
    const outlier = [0.1, 0, 0, 0.125, 0, 0, 0, 0.125];
    assertClose(grad.dataSync(), [...inlier, ...inlier, ...inlier, ...outlier]);
    tf.dispose([d, features, grad]);
  });
});

/** Reference hard-mined mean: full sort, threshold, plain average (float64). */
function naiveHardMean(values: number[], p: number): number {
  const threshold = naiveQuantile(values, p);
  const kept = values.filter((v) => v >= threshold);
  return kept.reduce((s, v) => s + v, 0) / kept.length;
}

for (const backend of ["cpu", "wasm"] as const) {
  Deno.test(`losses (${backend}): match a naive reference on random data`, async () => {
    await useBackend(backend);
    const random = seededRandom(3);
    const [b, h, w, c] = [8, 4, 4, 16];
    const perSample = h * w * c; // 256
    const values = Array.from({ length: b * perSample }, () => random() ** 2);
    for (let k = 0; k < 5; k++) values[5 * perSample + Math.floor(random() * perSample)] += 30;
    const featureValues = Array.from({ length: b * perSample }, () => random());
    for (let i = 0; i < perSample; i++) featureValues[6 * perSample + i] += 0.8; // outlier 6
    const opts = { pLarge: 0.99, omegaLarge: 0.1, pHard: 0.95, xi: 0.1, metric: "l2" as const };

    // NMFE reference (Eq. 1–4), float64.
    const mu = new Array(perSample).fill(0);
    const sigma = new Array(perSample).fill(0);
    for (let i = 0; i < perSample; i++) {
      for (let s = 0; s < b; s++) mu[i] += values[s * perSample + i] / b;
      for (let s = 0; s < b; s++) sigma[i] += (values[s * perSample + i] - mu[i]) ** 2 / b;
      sigma[i] = Math.sqrt(sigma[i]);
    }
    const sigmaLarge = naiveQuantile(sigma, opts.pLarge);
    const x = mu.map((m, i) => (sigma[i] >= sigmaLarge ? opts.omegaLarge : 1) * m);
    const nmfeExpected = naiveHardMean(x, opts.pHard);

    // ATDR reference (Eq. 5–8): l2 sums, argmax, two hard-mined means.
    const sample = (arr: number[], s: number) => arr.slice(s * perSample, (s + 1) * perSample);
    const sums = Array.from({ length: b }, (_, i) => {
      let total = 0;
      for (let j = 0; j < b; j++) {
        const fi = sample(featureValues, i);
        const fj = sample(featureValues, j);
        total += Math.sqrt(fi.reduce((acc, v, k) => acc + (v - fj[k]) ** 2, 0));
      }
      return total;
    });
    const outlier = sums.indexOf(Math.max(...sums));
    assert.equal(outlier, 6);
    const inlierValues = [...Array(b).keys()].filter((i) => i !== outlier)
      .flatMap((i) => sample(values, i));
    const atdrExpected = naiveHardMean(inlierValues, opts.pHard) +
      opts.xi * naiveHardMean(sample(values, outlier), opts.pHard);

    await assertNoLeak(() => {
      const d = tf.tensor4d(values, [b, h, w, c]);
      const features = tf.tensor4d(featureValues, [b, h, w, c]);
      const result = studentTeacherLoss(d, features, "ad2", opts);
      assertClose(result.distanceSums, sums, 1e-3);
      assert.deepEqual(result.outliers, [6]);
      assertClose(result.parts.nmfe!.dataSync()[0], nmfeExpected, 1e-5);
      assertClose(result.parts.atdr!.dataSync()[0], atdrExpected, 1e-5);
      assertClose(result.loss.dataSync()[0], nmfeExpected + atdrExpected, 1e-5);
      const hard = hardMinedMean(d, opts.pHard);
      assertClose(hard.dataSync()[0], naiveHardMean(values, opts.pHard), 1e-5);
      tf.dispose([d, features, result.loss, ...Object.values(result.parts), hard]);
    });
    await useBackend("cpu");
  });
}

Deno.test("studentTeacherLoss (wasm): repeated training steps keep numTensors flat", async () => {
  await useBackend("wasm");
  const random = seededRandom(5);
  const shape: [number, number, number, number] = [4, 4, 4, 8];
  const size = shape.reduce((a, v) => a * v, 1);
  const initial = tf.tensor4d(Array.from({ length: size }, () => random()), shape);
  const student = tf.variable(initial);
  const teacher = tf.tensor4d(Array.from({ length: size }, () => random()), shape);
  const optimizer = tf.train.sgd(0.1);
  const opts = { ...OPTS, pLarge: 0.999, pHard: 0.999 };
  const losses: number[] = [];
  const step = () => {
    const { value, grads } = tf.variableGrads(() =>
      studentTeacherLoss(stDiscrepancy(student, teacher), student, "ad2", opts).loss
    );
    optimizer.applyGradients(grads);
    losses.push(value.dataSync()[0]);
    tf.dispose([value, ...Object.values(grads)]);
  };
  step(); // the optimizer creates its state on the first step
  const before = tf.memory().numTensors;
  for (let i = 0; i < 20; i++) step();
  assert.equal(tf.memory().numTensors, before, "tensor leak across steps");
  assert.ok(losses[losses.length - 1] < losses[0], `loss did not decrease: ${losses}`);
  optimizer.dispose();
  tf.dispose([initial, student, teacher]);
  await useBackend("cpu");
});
