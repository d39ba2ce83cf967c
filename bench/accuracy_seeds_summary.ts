/**
 * The pure half of `bench:accuracy:seeds`: several `bench:accuracy` runs that differ only in
 * their seed (data split, initial weights, batch order, dropout) combined into mean ± spread
 * per variant and ratio, and issue 6's goals (AUROC lost to pollution, cost at r = 0 against
 * AD² and the baseline) computed per seed, so a difference can be read against how much the
 * same comparison moves from one seed to the next. No I/O.
 *
 * @module
 */
import { ACCURACY_VARIANTS, type VariantName } from "./accuracy_variants.ts";
import { fixed, signed, type Table } from "./report.ts";

/** One (seed, variant, ratio, class) AUROC. */
export interface SeededAuroc {
  /** Base seed of the run. */
  seed: number;
  /** Training variant. */
  variant: VariantName;
  /** Noise ratio. */
  ratio: number;
  /** Normal class. */
  normalClass: number;
  /** Image AUROC. */
  auroc: number;
}

/** Mean and spread over seeds of per-seed values. */
export interface SeedStatistic {
  /** One value per seed, in seed order (`null` where that seed lacks the cells). */
  perSeed: (number | null)[];
  /** Mean over the seeds that have a value; `null` when none has. */
  mean: number | null;
  /** Sample standard deviation over those seeds; `null` below two. */
  sd: number | null;
}

/** Mean AUROC (over classes) of one variant at one ratio, per seed. */
export interface SeededVariantRatio {
  /** Training variant. */
  variant: VariantName;
  /** Noise ratio. */
  ratio: number;
  /** Per seed: the mean over all classes of the grid (null unless every class is there). */
  auroc: SeedStatistic;
}

/** Issue 6's goal quantities of one variant, each computed per seed over the classes. */
export interface SeededGoals {
  /** Training variant. */
  variant: VariantName;
  /** Mean over classes of AUROC(variant, 0) − AUROC(baseline, 0). */
  costVsBaseline: SeedStatistic;
  /** Mean over classes of AUROC(variant, 0) − AUROC(ad2, 0). */
  costVsAd2: SeedStatistic;
  /** Per non-zero ratio: mean over classes of AUROC(variant, 0) − AUROC(variant, r). */
  lossByRatio: { ratio: number; loss: SeedStatistic }[];
}

/** What the runs covered together. */
export interface SeedGrid {
  /** Seeds, ascending. */
  seeds: number[];
  /** Classes, ascending. */
  classes: number[];
  /** Ratios, ascending. */
  ratios: number[];
  /** Variants, in `ACCURACY_VARIANTS` order. */
  variants: VariantName[];
}

/**
 * The grid spanned by `records`, after checking that no cell appears twice with different
 * AUROC (the runs are seeded, so a repeated cell must repeat its value).
 *
 * @throws naming the cell when two records disagree
 */
export function seedGrid(records: readonly SeededAuroc[]): SeedGrid {
  const seen = new Map<string, number>();
  for (const r of records) {
    const key = cellKey(r.seed, r.variant, r.ratio, r.normalClass);
    const previous = seen.get(key);
    if (previous !== undefined && previous !== r.auroc) {
      throw new Error(
        `seed ${r.seed}, ${r.variant}, r = ${r.ratio}, class ${r.normalClass}: two runs give ` +
          `AUROC ${previous} and ${r.auroc}; seeded runs of the same code agree, so these ` +
          "come from code that trains differently (compare the inputs' commits)",
      );
    }
    seen.set(key, r.auroc);
  }
  const sorted = (values: Iterable<number>) => [...new Set(values)].sort((a, b) => a - b);
  const variantsPresent = new Set(records.map((r) => r.variant));
  return {
    seeds: sorted(records.map((r) => r.seed)),
    classes: sorted(records.map((r) => r.normalClass)),
    ratios: sorted(records.map((r) => r.ratio)),
    variants: (Object.keys(ACCURACY_VARIANTS) as VariantName[]).filter((v) =>
      variantsPresent.has(v)
    ),
  };
}

/** Per variant and ratio, the per-seed mean AUROC over the grid's classes. */
export function seededMeans(
  records: readonly SeededAuroc[],
  grid: SeedGrid,
): SeededVariantRatio[] {
  const lookup = aurocLookup(records);
  return grid.variants.flatMap((variant) =>
    grid.ratios.map((ratio) => ({
      variant,
      ratio,
      auroc: statistic(
        grid.seeds.map((seed) =>
          meanOverClasses(grid.classes, (c) => lookup(seed, variant, ratio, c))
        ),
      ),
    }))
  );
}

/**
 * Issue 6's goal quantities per variant and seed. A seed's value needs every class at both
 * ends of the difference; otherwise it is `null` for that seed.
 */
export function seededGoals(records: readonly SeededAuroc[], grid: SeedGrid): SeededGoals[] {
  const lookup = aurocLookup(records);
  const perSeed = (difference: (seed: number, c: number) => number | null) =>
    statistic(grid.seeds.map((seed) => meanOverClasses(grid.classes, (c) => difference(seed, c))));
  const minus = (a: number | null, b: number | null) => (a === null || b === null ? null : a - b);
  return grid.variants.map((variant) => ({
    variant,
    costVsBaseline: perSeed((s, c) => minus(lookup(s, variant, 0, c), lookup(s, "baseline", 0, c))),
    costVsAd2: perSeed((s, c) => minus(lookup(s, variant, 0, c), lookup(s, "ad2", 0, c))),
    lossByRatio: grid.ratios.filter((r) => r !== 0).map((ratio) => ({
      ratio,
      loss: perSeed((s, c) => minus(lookup(s, variant, 0, c), lookup(s, variant, ratio, c))),
    })),
  }));
}

/** Mean AUROC table: one row per variant and ratio, a column per seed, then mean ± sd. */
export function seededMeansTable(means: readonly SeededVariantRatio[], grid: SeedGrid): Table {
  const headers = [
    "noise ratio",
    "variant",
    ...grid.seeds.map((s) => `seed ${s}`),
    "mean",
    "sd over seeds",
  ];
  const rows = [...means]
    .sort((a, b) => a.ratio - b.ratio)
    .map((m) => [
      m.ratio.toFixed(1),
      ACCURACY_VARIANTS[m.variant].label,
      ...m.auroc.perSeed.map((v) => fixed(v)),
      fixed(m.auroc.mean),
      fixed(m.auroc.sd),
    ]);
  return { headers, rows, align: headers.map((_, i) => (i < 2 ? "left" : "right")) };
}

/** Goal table: per variant, each goal quantity as mean ± sd over seeds with the per-seed values. */
export function seededGoalsTable(goals: readonly SeededGoals[]): Table {
  const ratios = goals[0]?.lossByRatio.map((l) => l.ratio) ?? [];
  const headers = [
    "variant",
    "r = 0.0 − baseline",
    "r = 0.0 − AD²",
    ...ratios.map((r) => `loss at r = ${r.toFixed(1)}`),
  ];
  const rows = goals.map((g) => [
    ACCURACY_VARIANTS[g.variant].label,
    describe(g.costVsBaseline, signed),
    describe(g.costVsAd2, signed),
    ...g.lossByRatio.map((l) => describe(l.loss, fixed)),
  ]);
  return { headers, rows, align: headers.map((_, i) => (i === 0 ? "left" : "right")) };
}

/** `mean ± sd (v1 / v2 / …)`, or `—` without values. */
function describe(stat: SeedStatistic, format: (v: number | null) => string): string {
  if (stat.mean === null) return "—";
  const spread = stat.sd === null ? "" : ` ± ${fixed(stat.sd)}`;
  return `${format(stat.mean)}${spread} (${stat.perSeed.map((v) => format(v)).join(" / ")})`;
}

/** Mean, sample sd and per-seed values of `perSeed`. */
export function statistic(perSeed: (number | null)[]): SeedStatistic {
  const values = perSeed.filter((v): v is number => v !== null);
  if (values.length === 0) return { perSeed, mean: null, sd: null };
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  if (values.length < 2) return { perSeed, mean, sd: null };
  const variance = values.reduce((a, v) => a + (v - mean) ** 2, 0) / (values.length - 1);
  return { perSeed, mean, sd: Math.sqrt(variance) };
}

function meanOverClasses(
  classes: readonly number[],
  value: (normalClass: number) => number | null,
): number | null {
  let sum = 0;
  for (const c of classes) {
    const v = value(c);
    if (v === null) return null;
    sum += v;
  }
  return classes.length === 0 ? null : sum / classes.length;
}

function cellKey(seed: number, variant: string, ratio: number, normalClass: number): string {
  return `${seed}|${variant}|${ratio}|${normalClass}`;
}

function aurocLookup(records: readonly SeededAuroc[]) {
  const byKey = new Map<string, number>();
  for (const r of records) byKey.set(cellKey(r.seed, r.variant, r.ratio, r.normalClass), r.auroc);
  return (seed: number, variant: VariantName, ratio: number, normalClass: number) =>
    byKey.get(cellKey(seed, variant, ratio, normalClass)) ?? null;
}
