import { strict as assert } from "node:assert";
import {
  inspectJobs,
  type InspectReport,
  inspectTables,
  parseInspectArgs,
  wallSecondsAt,
} from "../bench/inspect.ts";
import {
  cellAurocs,
  type InspectTrainResult,
  maskedPixelAuroc,
  topKMean,
} from "../bench/inspect_job.ts";
import type { InspectSample } from "../src/data/inspect_split.ts";

Deno.test("bench:inspect arguments: the line's settings, overrides, clear errors", async () => {
  const parsed = await parseInspectArgs(["--surfaces", "wood,pcb", "--nn", "--no-train"]);
  assert.deepEqual(parsed.grid.surfaces, ["wood", "pcb"]);
  assert.deepEqual(parsed.grid.representations, [
    "resize64",
    "resize128",
    "tiles128",
    "resize256",
  ]);
  assert.equal(parsed.grid.train, false);
  // Detector settings come from pipelines/demo.json unless overridden.
  const demo = JSON.parse(await Deno.readTextFile("pipelines/demo.json"));
  assert.equal(parsed.config.imageSize, demo.model.imageSize);
  const tuned = await parseInspectArgs([
    "--nn",
    "resize128",
    "--image-size",
    "128",
    "--learning-rate",
    "0.001",
  ]);
  assert.deepEqual(tuned.grid.representations, ["resize128"]);
  assert.equal(tuned.config.imageSize, 128);
  assert.equal(tuned.config.learningRate, 0.001);
  await assert.rejects(parseInspectArgs(["--surfaces", "marble"]), /unknown surface "marble"/);
  await assert.rejects(parseInspectArgs(["--nn", "resize96"]), /unknown representation/);
  await assert.rejects(parseInspectArgs(["--image-size", "96"]), /multiple of 32 dividing 256/);
  await assert.rejects(parseInspectArgs(["--curve", "50,900"]), /--curve/);
});

Deno.test("bench:inspect jobs: bound jobs first, then every surface × ratio × variant", () => {
  const jobs = inspectJobs({
    surfaces: ["metal", "fabric"],
    ratios: [0, 0.1],
    variants: ["ad2", "baseline"],
    representations: ["resize64"],
    train: true,
  });
  assert.equal(jobs.length, 2 + 2 * 2 * 2);
  assert.ok(jobs.slice(0, 2).every((j) => j.type === "nn"));
  assert.ok(jobs.slice(2).every((j) => j.type === "train"));
});

Deno.test("bench:inspect scores: top-k mean, per-cell and pixel AUROC", () => {
  assert.equal(topKMean([1, 5, 3, 4], 0.5), 4.5);
  assert.equal(topKMean([1, 5, 3, 4], 0), 5);
  const sample = (kind: "hole" | "stain" | null): InspectSample =>
    ({
      anomalous: kind !== null,
      defect: kind ? { kind, size: "small", areaFraction: 0.001 } : null,
    }) as InspectSample;
  const test = [sample(null), sample(null), sample("hole"), sample("stain")];
  const cells = cellAurocs(test, [0.1, 0.3, 0.9, 0.2]);
  assert.deepEqual(
    cells.map((c) => [c.kind, c.auroc]),
    [["hole", 1], ["stain", 0.5]],
  );
  // Two 2×2 maps; the marked pixel scores highest.
  const maps = [Float32Array.from([0, 0, 0, 1]), Float32Array.from([0.5, 0, 0, 0])];
  const masks = [Uint8Array.from([0, 0, 0, 1]), new Uint8Array(4)];
  assert.equal(maskedPixelAuroc(maps, masks, 1), 1);
  assert.ok(Number.isNaN(maskedPixelAuroc(maps, [new Uint8Array(4), new Uint8Array(4)], 1)));
});

Deno.test("bench:inspect report: learning curve wall time and tables from results", () => {
  assert.equal(wallSecondsAt({ imagesSeen: 100, trainSeconds: 3 }), 10);
  assert.equal(wallSecondsAt({ imagesSeen: 100, trainSeconds: 42 }), 42);
  const result = (variant: "ad2" | "baseline", auroc: number): InspectTrainResult => ({
    type: "train",
    surface: "wood",
    ratio: 0.1,
    variant,
    curve: [50, 100].map((imagesSeen, i) => ({
      imagesSeen,
      steps: imagesSeen - 20,
      auroc: auroc - 0.1 * (1 - i),
      aurocTopK: auroc,
      aurocSt: auroc,
      aurocAe: auroc,
      loss: 1,
      trainSeconds: imagesSeen,
      aurocBuffer: auroc - 0.2,
      bufferDefective: 5,
      bufferHeld: imagesSeen,
    })),
    cells: [{ kind: "hole", size: "large", auroc }],
    pixelAuroc: 0.9,
    injected: 10,
    stepMs: 800,
    losses: Array.from({ length: 80 }, () => 1),
    seconds: { data: 1, train: 2, evaluate: 3 },
  });
  const report = {
    config: { curve: [50, 100] },
    grid: {
      surfaces: ["wood"],
      ratios: [0.1],
      variants: ["ad2", "baseline"],
      representations: [],
      train: true,
    },
    warmupSteps: 25,
    results: [result("ad2", 0.8), result("baseline", 0.7)],
  } as unknown as InspectReport;
  const tables = inspectTables(report);
  const perSurface = tables[0].table;
  assert.deepEqual(perSurface.rows[0], ["wood", "0.800", "0.700"]);
  const curve = tables.find((t) => t.title.startsWith("Cold-start"))!.table;
  assert.deepEqual(curve.rows[0].slice(2, 4), ["0.700", "0.800"]);
  const maturity = tables.find((t) => t.title.startsWith("Label-free maturity"))!.table;
  // A flat loss: the fixed warm-up fires at 25, the plateau once two windows are full (50).
  assert.equal(maturity.rows[0][4], "25");
  assert.equal(maturity.rows[2][4], "50");
  // --buffer-auroc: test AUROC beside the buffer's own (defective / held; steps).
  const memorisation = tables.find((t) => t.title.startsWith("Memorisation"))!.table;
  assert.deepEqual(memorisation.rows[0], [
    "0.1",
    "AD² (paper)",
    "0.700 / 0.600 (5/50; 30 st)",
    "0.800 / 0.600 (5/100; 80 st)",
  ]);
});
