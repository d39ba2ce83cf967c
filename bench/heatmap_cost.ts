/**
 * What a heatmap costs the scorer: one batch scored plainly (`score`), with maps
 * (`scoreWithMaps`: the same forward pass plus the map output), and with everything the scorer
 * adds per image (region, share above threshold, 8-bit PNG), on the tfjs `Detector` and on the
 * scorer's own engine for the configuration (ONNX Runtime by default). The demo line's detector
 * (pipelines/demo.json: MobileNetV2 teacher, tiny student, 64 px), batch 8. Writes
 * `bench/results/heatmap-cost.json`; prints medians and minima over interleaved rounds (minima
 * are the better estimate on a shared machine) and the load average.
 *
 *   deno task bench:heatmap [--repeats 30]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPipelineConfig } from "../src/pipeline/config.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector, type MappedScoreReport } from "../src/model/detector.ts";
import { prepareScoringEngines } from "../src/model/engine.ts";
import { toBatch } from "../src/model/batches.ts";
import { SeededRandom } from "../src/util/prng.ts";
import { encodeHeatmapPng } from "../src/image/heatmap_png.ts";
import { localise } from "../src/stages/localise.ts";
import { environment, fixed, textTable, writeResultJson } from "./report.ts";
import { median } from "./timing.ts";
import { positiveInt } from "./cli_args.ts";

const { values } = parseArgs({ args: Deno.args, options: { repeats: { type: "string" } } });
const repeats = positiveInt(values.repeats, 30, "--repeats");
const config = await loadPipelineConfig("pipelines/demo.json");
const size = config.model.imageSize;
const batchSize = config.scorer.batchSize;
await initBackend(config.model.backend);
const detector = await Detector.create(config.model, config.training);
const random = new SeededRandom(5);
const images = Array.from(
  { length: 16 },
  () => new Float32Array(size * size * 3).map(() => random.next()),
);
detector.fitTeacherStats([toBatch(images.slice(0, 8), size), toBatch(images.slice(8), size)]);
detector.fitMapNormalisation([toBatch(images.slice(0, 8), size)]);
const batch = toBatch(images.slice(0, batchSize), size);
const batchImages = images.slice(0, batchSize);
// The scorer's own engine for this configuration (ONNX Runtime unless configured otherwise).
const engines = await prepareScoringEngines(config.inference, config.model, console.warn);
const engine = await engines.build(detector, "bench");

/** Region, share above threshold and the 8-bit PNG of each report, as the scorer makes them. */
async function localiseAll(reports: MappedScoreReport[]): Promise<void> {
  await Promise.all(reports.map((report, i) => {
    const findings = localise({
      line: "bench",
      imageId: `image-${i}`,
      map: report.map,
      size,
      score: report.score,
      threshold: 0.1,
      original: { width: 1280, height: 960 },
      publishHeatmap: true,
    });
    return encodeHeatmapPng(report.map, size, findings.scaleMax);
  }));
}

const variants: [string, () => unknown][] = [
  ["tfjs Detector: score", () => detector.score(batch)],
  ["tfjs Detector: scoreWithMaps", () => detector.scoreWithMaps(batch)],
  [
    "tfjs Detector: scoreWithMaps + region + PNG",
    () => localiseAll(detector.scoreWithMaps(batch)),
  ],
  [`${engine.description}: score`, () => engine.score(batchImages)],
  [`${engine.description}: scoreWithMaps`, () => engine.scoreWithMaps(batchImages)],
  [
    `${engine.description}: scoreWithMaps + region + PNG`,
    async () => await localiseAll(await engine.scoreWithMaps(batchImages)),
  ],
];
// Interleaved rounds (one call of each variant per round) share the machine's noise evenly.
const samples: number[][] = variants.map(() => []);
for (let round = -1; round < repeats; round++) {
  for (const [i, [, fn]] of variants.entries()) {
    const start = performance.now();
    await fn();
    if (round >= 0) samples[i].push(performance.now() - start); // round -1 warms up
  }
}
const timings = samples.map((s) => ({ medianMs: median(s), minMs: Math.min(...s) }));
const sample = detector.scoreWithMaps(batch)[0];
const pngBytes = (await encodeHeatmapPng(sample.map, size, Math.max(0.2, sample.score))).length;
batch.dispose();
await engine.dispose();
detector.dispose();

const rows = variants.map(([name], i) => [name, timings[i]] as const);
console.log(textTable({
  headers: ["per batch of " + batchSize, "median ms", "min ms", "min vs its plain score"],
  rows: rows.map(([name, t], i) => {
    const plain = timings[i - (i % 3)]; // the first row of its engine
    return [
      name,
      fixed(t.medianMs, 1),
      fixed(t.minMs, 1),
      `${fixed((100 * (t.minMs - plain.minMs)) / plain.minMs, 1)} %`,
    ];
  }),
}));
console.log(`heatmap PNG: ${pngBytes} bytes (${size}×${size}); load average ${Deno.loadavg()}`);
const path = await writeResultJson("heatmap-cost.json", {
  environment: await environment(),
  model: config.model,
  batchSize,
  repeats,
  timings: Object.fromEntries(rows.map(([name, t]) => [name, t])),
  pngBytes,
});
console.log(`wrote ${path}`);
