import { strict as assert } from "node:assert";
import { argmax, boxToImage, fractionAbove, peakRegion } from "../src/ad2/regions.ts";
import { pixelAuroc } from "../src/metrics/pixel_auroc.ts";
import {
  decodeHeatmapPng,
  encodeHeatmapPng,
  heatmapOverlayPng,
  quantiseMap,
} from "../src/image/heatmap_png.ts";
import { localise } from "../src/stages/localise.ts";
import { scoredVerdict, VerdictSchema } from "../src/bus/verdict.ts";
import { heatmapSubject } from "../src/bus/subjects.ts";
import { parseOriginalSize } from "../src/bus/decoded_image.ts";

/** An 8×8 map, 0 everywhere but the given cells. */
function map8(cells: Record<string, number>): Float32Array {
  const map = new Float32Array(64);
  for (const [key, value] of Object.entries(cells)) {
    const [x, y] = key.split(",").map(Number);
    map[y * 8 + x] = value;
  }
  return map;
}

Deno.test("peakRegion: the connected blob around the peak, not a hotter-than-threshold blob elsewhere", () => {
  // Blob A (peak 0.9) spans x 1-3, y 2-3 (diagonal link at 3,3); blob B elsewhere is above the
  // threshold too but not connected.
  const map = map8({ "1,2": 0.9, "2,2": 0.5, "3,3": 0.4, "6,6": 0.7, "7,7": 0.6 });
  assert.equal(argmax(map), 2 * 8 + 1);
  assert.deepEqual(peakRegion(map, 8, 0.3), { x: 1, y: 2, width: 3, height: 2 });
  // A level above every pixel still yields the peak pixel itself.
  assert.deepEqual(peakRegion(map, 8, 5), { x: 1, y: 2, width: 1, height: 1 });
  assert.equal(fractionAbove(map, 0.3), 5 / 64);
  assert.equal(fractionAbove(map, 0.9), 0);
  assert.throws(() => peakRegion(new Float32Array(10), 8, 0), /8×8 map/);
});

Deno.test("boxToImage maps map pixels onto the stretched original, covering and clamped", () => {
  // 8 px map over a 200×100 image: one map pixel is 25×12.5 original pixels.
  assert.deepEqual(boxToImage({ x: 1, y: 2, width: 3, height: 2 }, 8, 200, 100), {
    x: 25,
    y: 25,
    width: 75,
    height: 25,
  });
  assert.deepEqual(boxToImage({ x: 7, y: 7, width: 1, height: 1 }, 8, 200, 100), {
    x: 175,
    y: 87,
    width: 25,
    height: 13,
  });
  assert.deepEqual(boxToImage({ x: 0, y: 0, width: 8, height: 8 }, 8, 3, 3), {
    x: 0,
    y: 0,
    width: 3,
    height: 3,
  });
});

Deno.test("pixelAuroc pools pixels over images; ties count one half; undefined without both classes", () => {
  const perfect = pixelAuroc([
    { map: [0.9, 0.1, 0.2, 0.1], mask: [1, 0, 0, 0] },
    { map: [0.1, 0.8, 0.0, 0.3], mask: [0, 255, 0, 0] },
  ]);
  assert.equal(perfect, 1);
  assert.equal(pixelAuroc([{ map: [0.5, 0.5], mask: [1, 0] }]), 0.5);
  assert.equal(pixelAuroc([{ map: [0.1, 0.9], mask: [1, 0] }]), 0);
  // 3 defect pixels vs 3 normal: 8 of 9 pairs ordered right.
  assert.equal(pixelAuroc([{ map: [3, 2, 0.5, 1, 0, -1], mask: [1, 1, 1, 0, 0, 0] }]), 8 / 9);
  assert.throws(
    () => pixelAuroc([{ map: [1, 2], mask: [0, 0] }]),
    /0 anomalous and 2 normal pixels/,
  );
  assert.throws(
    () => pixelAuroc([{ map: [1, 2], mask: [0] }]),
    /map 0 has 2 pixels but its mask 1/,
  );
  // Stride 2 on a 4×4 map keeps rows and columns 0 and 2: the pixels where the rank is perfect.
  const map = [9, 0, 1, 0, 0, 0, 0, 0, 2, 5, 8, 0, 0, 0, 0, 0];
  const mask = [1, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0];
  assert.equal(pixelAuroc([{ map, mask }], { stride: 2 }), 1);
  assert.ok(pixelAuroc([{ map, mask }]) < 1);
  assert.throws(() => pixelAuroc([{ map: [1, 2, 3], mask: [1, 0, 0] }], { stride: 2 }), /square/);
});

Deno.test("heatmap PNG: 8-bit greyscale with a linear 0..scaleMax scale, round trip within half a step", async () => {
  const size = 16;
  const map = new Float32Array(size * size).map((_, i) => (i / (size * size)) * 1.5 - 0.2);
  const png = await encodeHeatmapPng(map, size, 1.2);
  assert.deepEqual([...png.subarray(1, 4)].map((c) => String.fromCharCode(c)).join(""), "PNG");
  const decoded = await decodeHeatmapPng(png, 1.2);
  assert.equal(decoded.size, size);
  for (let i = 0; i < map.length; i++) {
    const expected = Math.min(1.2, Math.max(0, map[i]));
    assert.ok(Math.abs(decoded.values[i] - expected) <= 1.2 / 255 / 2 + 1e-6, `pixel ${i}`);
  }
  assert.deepEqual([...quantiseMap([-1, 0, 0.6, 1.2, 5], 1.2)], [0, 0, 128, 255, 255]);
  await assert.rejects(() => encodeHeatmapPng(map, size, 0), /scaleMax/);
  const overlay = await heatmapOverlayPng(png, 64);
  assert.ok(overlay.length > 100);
});

Deno.test("localise: region in original pixels only when anomalous; the scale keeps the threshold mid-grey", () => {
  const map = map8({ "4,1": 0.8, "5,1": 0.5 });
  const base = {
    line: "demo",
    imageId: "img-1",
    map,
    size: 8,
    threshold: 0.3,
    original: { width: 800, height: 400 },
    publishHeatmap: true,
  };
  const hot = localise({ ...base, score: 0.85 });
  assert.deepEqual(hot.localisation.region, { x: 400, y: 50, width: 200, height: 50 });
  assert.equal(hot.localisation.anomalousFraction, 2 / 64);
  assert.equal(hot.scaleMax, 0.85);
  assert.deepEqual(hot.localisation.heatmap, {
    subject: heatmapSubject("demo", "img-1"),
    stream: "INSPECT_demo_HEATMAPS",
    format: "png",
    width: 8,
    height: 8,
    scaleMax: 0.85,
  });
  const cool = localise({ ...base, score: 0.25, threshold: 0.3 });
  assert.equal(cool.localisation.region, null);
  assert.equal(cool.scaleMax, 0.6);
  const unknownSize = localise({ ...base, score: 0.85, original: null, publishHeatmap: false });
  assert.equal(unknownSize.localisation.region, null);
  assert.equal(unknownSize.localisation.heatmap, null);
  // The verdict carrying it is schema-valid.
  const verdict = scoredVerdict(
    { line: "demo", imageSeq: 3, capturedAt: null },
    "img-1",
    { score: 0.85, stScore: 0.8, aeScore: 0.4, threshold: 0.3, modelVersion: 2, modelStep: 50 },
    new Date(),
    hot.localisation,
  );
  assert.deepEqual(VerdictSchema.parse(JSON.parse(JSON.stringify(verdict))), verdict);
});

Deno.test("the original-size header parses strictly", () => {
  assert.deepEqual(parseOriginalSize("640x480"), { width: 640, height: 480 });
  for (const bad of [undefined, "", "0x5", "640", "640x480x3", "-1x2", "axb"]) {
    assert.equal(parseOriginalSize(bad), null, String(bad));
  }
});
