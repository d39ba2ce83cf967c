import { strict as assert } from "node:assert";
import {
  type SeededAuroc,
  seededGoals,
  seededGoalsTable,
  seededMeans,
  seededMeansTable,
  seedGrid,
  statistic,
} from "../bench/accuracy_seeds_summary.ts";
import type { VariantName } from "../bench/accuracy_variants.ts";

/** Two seeds × two classes; AUROC values chosen so every mean is easy by hand. */
function records(): SeededAuroc[] {
  const cells: [number, VariantName, number, number, number][] = [
    // seed, variant, ratio, class, auroc
    [1, "baseline", 0, 0, 0.8],
    [1, "baseline", 0, 1, 0.9],
    [1, "ad2", 0, 0, 0.9],
    [1, "ad2", 0, 1, 0.9],
    [1, "ad2", 0.1, 0, 0.8],
    [1, "ad2", 0.1, 1, 0.8],
    [2, "baseline", 0, 0, 0.7],
    [2, "baseline", 0, 1, 0.7],
    [2, "ad2", 0, 0, 0.8],
    [2, "ad2", 0, 1, 0.6],
    [2, "ad2", 0.1, 0, 0.6],
    // seed 2, ad2, r = 0.1, class 1 is missing
  ];
  return cells.map(([seed, variant, ratio, normalClass, auroc]) => ({
    seed,
    variant,
    ratio,
    normalClass,
    auroc,
  }));
}

function close(actual: number | null, expected: number | null) {
  if (expected === null) return assert.equal(actual, null);
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${actual} ≠ ${expected}`);
}

Deno.test("seeds: grid in table order, repeated cells must agree", () => {
  const grid = seedGrid([...records(), records()[0]]);
  assert.deepEqual(grid, {
    seeds: [1, 2],
    classes: [0, 1],
    ratios: [0, 0.1],
    variants: ["baseline", "ad2"],
  });
  const clash = { ...records()[0], auroc: 0.81 };
  assert.throws(
    () => seedGrid([...records(), clash]),
    /seed 1, baseline, r = 0, class 0: .*0\.8 and 0\.81/,
  );
});

Deno.test("seeds: per-seed class means, mean and sample sd; a seed missing a class has no value", () => {
  const grid = seedGrid(records());
  const means = seededMeans(records(), grid);
  const ad2At0 = means.find((m) => m.variant === "ad2" && m.ratio === 0)!.auroc;
  assert.deepEqual(ad2At0.perSeed.map((v) => v!.toFixed(3)), ["0.900", "0.700"]);
  close(ad2At0.mean, 0.8);
  close(ad2At0.sd, Math.sqrt(0.02)); // (0.1² + 0.1²) / (2 − 1)
  const ad2At01 = means.find((m) => m.variant === "ad2" && m.ratio === 0.1)!.auroc;
  assert.equal(ad2At01.perSeed[1], null);
  close(ad2At01.mean, 0.8);
  assert.equal(ad2At01.sd, null);
  const text = seededMeansTable(means, grid).rows.map((row) => row.join(" "));
  assert.ok(text.includes("0.0 AD² (paper) 0.900 0.700 0.800 0.141"), text.join("\n"));
});

Deno.test("seeds: goals are paired per seed and class", () => {
  const grid = seedGrid(records());
  const goals = seededGoals(records(), grid);
  const ad2 = goals.find((g) => g.variant === "ad2")!;
  // seed 1: (0.9 − 0.8 + 0.9 − 0.9) / 2 = 0.05; seed 2: (0.8 − 0.7 + 0.6 − 0.7) / 2 = 0
  close(ad2.costVsBaseline.perSeed[0], 0.05);
  close(ad2.costVsBaseline.perSeed[1], 0);
  close(ad2.costVsAd2.mean, 0);
  // loss at r = 0.1: seed 1 (0.1 + 0.1) / 2; seed 2 lacks class 1 at r = 0.1
  close(ad2.lossByRatio[0].loss.perSeed[0], 0.1);
  assert.equal(ad2.lossByRatio[0].loss.perSeed[1], null);
  const baseline = goals.find((g) => g.variant === "baseline")!;
  assert.equal(baseline.lossByRatio[0].loss.mean, null); // no baseline at r = 0.1
  const rows = seededGoalsTable(goals).rows;
  assert.deepEqual(rows[1], [
    "AD² (paper)",
    "+0.025 ± 0.035 (+0.050 / +0.000)",
    "+0.000 ± 0.000 (+0.000 / +0.000)",
    "0.100 (0.100 / —)",
  ]);
  assert.equal(rows[0][3], "—");
});

Deno.test("seeds: statistic of no values and of one value", () => {
  assert.deepEqual(statistic([null]), { perSeed: [null], mean: null, sd: null });
  assert.deepEqual(statistic([0.5, null]), { perSeed: [0.5, null], mean: 0.5, sd: null });
});
