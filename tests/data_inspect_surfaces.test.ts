import assert from "node:assert/strict";
import sharp from "sharp";
import {
  DEFECT_KINDS,
  DEFECT_SIZE_NAMES,
  DEFECT_SIZES,
  downsampleMask,
  downsampleRgb,
  type GreyImage,
  PHOTO_SURFACES,
  renderSurface,
  SURFACES,
  tilesOf,
} from "../src/data/inspect_surfaces.ts";
import { inspectSplit } from "../src/data/inspect_split.ts";
import {
  ensureSkimageTextures,
  loadSkimagePhoto,
  skimagePhotoPath,
  TexturesMissingError,
} from "../src/data/skimage_textures.ts";
import { SeededRandom } from "../src/util/prng.ts";

const SIDE = 128;

/** A stand-in photograph: seeded noise (the real ones come from python3-skimage). */
function fakePhoto(seed = 3, side = 300): GreyImage {
  const random = new SeededRandom(seed);
  return {
    width: side,
    height: side,
    pixels: Float32Array.from({ length: side * side }, () => random.next()),
  };
}

function photoFor(surface: string): GreyImage | undefined {
  return (PHOTO_SURFACES as readonly string[]).includes(surface) ? fakePhoto() : undefined;
}

Deno.test("inspect surfaces: same seed gives the same pixels, another seed does not", () => {
  for (const surface of SURFACES) {
    const photo = photoFor(surface);
    const a = renderSurface({ surface, seed: 5, side: SIDE, photo });
    const b = renderSurface({ surface, seed: 5, side: SIDE, photo });
    const c = renderSurface({ surface, seed: 6, side: SIDE, photo });
    assert.deepEqual(a.pixels, b.pixels, surface);
    assert.notDeepEqual(a.pixels, c.pixels, surface);
    assert.equal(a.pixels.length, SIDE * SIDE * 3);
    assert.ok(a.pixels.every((v) => v >= 0 && v <= 1), `${surface} pixels in [0, 1]`);
    assert.equal(a.anomalous, false);
    assert.equal(a.defect, null);
    assert.ok(a.mask.every((m) => m === 0), `${surface}: a normal image has an empty mask`);
  }
});

Deno.test("inspect surfaces: a defect changes only its masked pixels, and visibly", () => {
  for (const surface of SURFACES) {
    const photo = photoFor(surface);
    const normal = renderSurface({ surface, seed: 9, side: SIDE, photo });
    for (const kind of DEFECT_KINDS) {
      const image = renderSurface({
        surface,
        seed: 9,
        side: SIDE,
        photo,
        defect: { kind, size: "medium" },
      });
      const what = `${surface}/${kind}`;
      assert.equal(image.anomalous, true, what);
      let outsideChanged = 0;
      let insideChange = 0;
      let inside = 0;
      for (let p = 0; p < SIDE * SIDE; p++) {
        const diff = Math.abs(image.pixels[3 * p] - normal.pixels[3 * p]) +
          Math.abs(image.pixels[3 * p + 1] - normal.pixels[3 * p + 1]) +
          Math.abs(image.pixels[3 * p + 2] - normal.pixels[3 * p + 2]);
        if (image.mask[p]) {
          inside++;
          insideChange += diff;
        } else if (diff > 0) outsideChanged++;
      }
      assert.equal(outsideChanged, 0, `${what}: pixels outside the mask changed`);
      assert.ok(inside > 0, `${what}: empty mask`);
      assert.ok(insideChange / inside > 0.03, `${what}: mean change ${insideChange / inside}`);
    }
  }
});

Deno.test("inspect surfaces: defect sizes span ~0.1 % to ~3 % of the image and grow", () => {
  for (const surface of SURFACES) {
    const photo = photoFor(surface);
    for (const kind of DEFECT_KINDS) {
      const fractions = DEFECT_SIZE_NAMES.map((size) =>
        renderSurface({ surface, seed: 2, side: 256, photo, defect: { kind, size } }).defect!
          .areaFraction
      );
      const what = `${surface}/${kind} ${fractions}`;
      assert.ok(fractions[0] < fractions[1] && fractions[1] < fractions[2], what);
      DEFECT_SIZE_NAMES.forEach((size, i) => {
        const ratio = fractions[i] / DEFECT_SIZES[size];
        assert.ok(ratio > 0.3 && ratio < 4, `${what}: ${size} is ${ratio.toFixed(2)}× its target`);
      });
    }
  }
});

Deno.test("inspect surfaces: bad sizes and missing photographs are clear errors", () => {
  assert.throws(() => renderSurface({ surface: "metal", seed: 1, side: 32 }), /side must be/);
  assert.throws(() => renderSurface({ surface: "brick", seed: 1, side: 64 }), /photograph/);
  assert.throws(
    () => renderSurface({ surface: "grass", seed: 1, side: 256, photo: fakePhoto(1, 100) }),
    /smaller than the 256-px image/,
  );
});

Deno.test("downsampling averages blocks, masks keep any marked pixel, tiles reassemble", () => {
  const side = 4;
  const pixels = Float32Array.from({ length: side * side * 3 }, (_, i) => i);
  const down = downsampleRgb(pixels, side, 2);
  assert.equal(down.length, 2 * 2 * 3);
  // Top-left block: pixels (0,0),(1,0),(0,1),(1,1), red channel indices 0, 3, 12, 15.
  assert.equal(down[0], (0 + 3 + 12 + 15) / 4);
  const mask = new Uint8Array(16);
  mask[15] = 1;
  assert.deepEqual(Array.from(downsampleMask(mask, side, 2)), [0, 0, 0, 1]);
  const tiles = tilesOf(pixels, side, 2);
  assert.equal(tiles.length, 4);
  assert.deepEqual(Array.from(tiles[3].slice(0, 3)), Array.from(pixels.slice(30, 33)));
  assert.throws(() => downsampleRgb(pixels, side, 3), /not divisible/);
});

Deno.test("inspect split: pollution count, test cells and determinism", () => {
  const options = {
    surface: "fabric" as const,
    side: 64,
    trainCount: 20,
    ratio: 0.3,
    testPerCell: 1,
    testNormal: 5,
    seed: 4,
  };
  const split = inspectSplit(options);
  assert.equal(split.train.length, 20);
  assert.equal(split.injected, 6);
  assert.equal(split.train.filter((s) => s.anomalous).length, 6);
  assert.equal(split.test.length, 5 + DEFECT_KINDS.length * DEFECT_SIZE_NAMES.length);
  assert.equal(split.test.filter((s) => !s.anomalous).length, 5);
  const cells = new Set(
    split.test.flatMap((s) => s.defect ? [`${s.defect.kind}/${s.defect.size}`] : []),
  );
  assert.equal(cells.size, DEFECT_KINDS.length * DEFECT_SIZE_NAMES.length);
  // Training and test parts are different renders.
  const trainSeeds = new Set(split.train.map((s) => s.seed));
  assert.ok(split.test.every((s) => !trainSeeds.has(s.seed)));
  const again = inspectSplit(options);
  assert.deepEqual(again.test.map((s) => s.seed), split.test.map((s) => s.seed));
  assert.deepEqual(again.train[3].pixels, split.train[3].pixels);
  assert.throws(() => inspectSplit({ ...options, ratio: 1 }), /ratio/);
});

Deno.test("skimage textures: present files are used as they are, missing ones named", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(loadSkimagePhoto("brick", dir), TexturesMissingError);
    for (const surface of PHOTO_SURFACES) {
      const path = skimagePhotoPath(surface, dir);
      await Deno.mkdir(path.slice(0, path.lastIndexOf("/")), { recursive: true });
      const grey = new Uint8Array(300 * 280).map((_, i) => i % 251);
      await sharp(grey, { raw: { width: 300, height: 280, channels: 1 } }).png().toFile(path);
    }
    // Every file is there: nothing is downloaded.
    await ensureSkimageTextures(dir, () => assert.fail("should not fetch"));
    const photo = await loadSkimagePhoto("gravel", dir);
    assert.equal(photo.width, 300);
    assert.equal(photo.height, 280);
    assert.ok(Math.abs(photo.pixels[1] - 1 / 255) < 1e-7);
    assert.ok(photo.pixels.every((v) => v >= 0 && v <= 1));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
