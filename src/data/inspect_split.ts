/**
 * Polluted training streams and labelled test sets of one inspection surface
 * (`inspect_surfaces.ts`). Unlike the Fashion-MNIST overlap protocol, a line never shows the
 * same part twice: training and test images are distinct renders (different seeds), and the
 * training stream's defects are drawn uniformly over every kind and size.
 *
 * @module
 */
import { SeededRandom } from "../util/prng.ts";
import {
  DEFECT_KINDS,
  DEFECT_SIZE_NAMES,
  type DefectKind,
  type DefectSize,
  type GreyImage,
  renderSurface,
  type Surface,
  type SurfaceImage,
} from "./inspect_surfaces.ts";

/** Options of {@link inspectSplit}. */
export interface InspectSplitOptions {
  /** The surface. */
  surface: Surface;
  /** Its photograph, for photographic surfaces. */
  photo?: GreyImage;
  /** Side of the rendered images in pixels. */
  side: number;
  /** Training stream length (normal and defective together). */
  trainCount: number;
  /** Pollution r: `round(r × trainCount)` training images carry a defect. */
  ratio: number;
  /** Defective test images per (kind, size) cell. */
  testPerCell: number;
  /** Normal test images. */
  testNormal: number;
  /** Seed of the whole split. */
  seed: number;
  /** Defect kinds (default all). */
  kinds?: readonly DefectKind[];
  /** Defect sizes (default all). */
  sizes?: readonly DefectSize[];
}

/** A rendered sample with its place in the split. */
export interface InspectSample extends SurfaceImage {
  /** Seed it was rendered from (re-render with the same spec to get it back). */
  seed: number;
}

/** A training stream and a test set. */
export interface InspectSplit {
  /** Training images in stream order (the order a camera would send them). */
  train: InspectSample[];
  /** Test images: `testNormal` normal ones and `testPerCell` per (kind, size), shuffled. */
  test: InspectSample[];
  /** Defective training images. */
  injected: number;
}

/** Renders the split described by `options` (deterministic in its options). */
export function inspectSplit(options: InspectSplitOptions): InspectSplit {
  const { trainCount, ratio, testPerCell, testNormal, seed } = options;
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`ratio must be in [0, 1), got ${ratio}`);
  if (!Number.isInteger(trainCount) || trainCount < 1) {
    throw new RangeError(`trainCount must be a positive integer, got ${trainCount}`);
  }
  const kinds = options.kinds ?? DEFECT_KINDS;
  const sizes = options.sizes ?? DEFECT_SIZE_NAMES;
  const random = new SeededRandom(seed);
  // Disjoint seed ranges for training and test renders: no test part is ever trained on.
  const trainSeed = (i: number) => seed * 100_003 + i;
  const testSeed = (i: number) => seed * 100_003 + 50_000 + i;
  const render = (s: number, defect?: { kind: DefectKind; size: DefectSize }): InspectSample => ({
    ...renderSurface({
      surface: options.surface,
      photo: options.photo,
      side: options.side,
      seed: s,
      defect,
    }),
    seed: s,
  });

  const injected = Math.round(ratio * trainCount);
  const defective = new Set(
    random.sample(Array.from({ length: trainCount }, (_, i) => i), injected),
  );
  const train = Array.from({ length: trainCount }, (_, i) =>
    render(
      trainSeed(i),
      defective.has(i) ? { kind: random.pick(kinds), size: random.pick(sizes) } : undefined,
    ));

  const testSpecs: ({ kind: DefectKind; size: DefectSize } | undefined)[] = [
    ...Array.from({ length: testNormal }, () => undefined),
    ...kinds.flatMap((kind) =>
      sizes.flatMap((size) => Array.from({ length: testPerCell }, () => ({ kind, size })))
    ),
  ];
  const test = random.shuffled(testSpecs).map((defect, i) => render(testSeed(i), defect));
  return { train, test, injected };
}
