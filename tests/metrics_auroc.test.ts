import { strict as assert } from "node:assert";
import { auroc } from "../src/metrics/auroc.ts";
import { SeededRandom } from "../src/util/prng.ts";

const T = true;
const F = false;

Deno.test("auroc: perfect, inverted and chance orderings", () => {
  assert.equal(auroc([0.1, 0.2, 0.8, 0.9], [F, F, T, T]), 1);
  assert.equal(auroc([0.9, 0.8, 0.2, 0.1], [F, F, T, T]), 0);
  assert.equal(auroc([3, 3, 3, 3], [F, T, F, T]), 0.5, "all tied is chance");
});

Deno.test("auroc: hand-computed values", () => {
  // Pairs (anomalous, normal): 0.35>0.1 yes, 0.35>0.4 no, 0.8>0.1 yes, 0.8>0.4 yes → 3/4.
  assert.equal(auroc([0.1, 0.4, 0.35, 0.8], [F, F, T, T]), 0.75);
  // Anomalies {1, 3}, normals {1, 2}: 1 vs 1 tie = ½, 1 vs 2 = 0, 3 vs 1 = 1, 3 vs 2 = 1 → 2.5/4.
  assert.equal(auroc([1, 1, 2, 3], [F, T, F, T]), 0.625);
  // One anomaly tied with two of three normals, above the third: (0.5 + 0.5 + 1) / 3.
  assert.equal(auroc([5, 5, 5, 4], [T, F, F, F]), 2 / 3);
  // Unequal class sizes, order-independent: anomalies {0.7, 0.2}, normals {0.5, 0.1, 0.6}:
  // 0.7 beats 3, 0.2 beats 1 → 4/6.
  assert.equal(auroc([0.5, 0.7, 0.1, 0.2, 0.6], [F, T, F, T, F]), 4 / 6);
});

Deno.test("auroc equals the pairwise definition on random scores with ties", () => {
  const random = new SeededRandom(11);
  for (let trial = 0; trial < 20; trial++) {
    const n = 5 + random.int(60);
    // Integer scores in a small range force many ties.
    const scores = Array.from({ length: n }, () => random.int(8));
    const labels = Array.from({ length: n }, (_, i) => i === 0 || (i !== 1 && random.next() < 0.4));
    let wins = 0;
    let pairs = 0;
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) {
        if (!labels[i] || labels[j]) continue;
        pairs++;
        wins += scores[i] > scores[j] ? 1 : scores[i] === scores[j] ? 0.5 : 0;
      }
    }
    const got = auroc(scores, labels);
    assert.ok(Math.abs(got - wins / pairs) < 1e-12, `trial ${trial}: ${got} vs ${wins / pairs}`);
  }
});

Deno.test("auroc rejects input where it is undefined", () => {
  assert.throws(() => auroc([1, 2], [T]), /2 scores but 1 labels/);
  assert.throws(() => auroc([1, 2], [T, T]), /needs both classes/);
  assert.throws(() => auroc([1, 2], [F, F]), /needs both classes/);
  assert.throws(() => auroc([1, NaN], [F, T]), /score 1 is not finite/);
  assert.throws(() => auroc([], []), /needs both classes/);
});
