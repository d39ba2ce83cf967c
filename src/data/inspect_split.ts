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

/** What one image of a split is, before it is rendered. */
export interface SampleSpec {
  /** Seed it is rendered from. */
  seed: number;
  /** Its defect, if any. */
  defect?: { kind: DefectKind; size: DefectSize };
}

/** A split's images as specs: render them all ({@link inspectSplit}) or one at a time. */
export interface InspectSplitPlan {
  /** Training images in stream order. */
  train: SampleSpec[];
  /** Test images, shuffled. */
  test: SampleSpec[];
  /** Defective training images. */
  injected: number;
}

/**
 * Plans the split described by `options` without rendering (deterministic in its options): a
 * live camera stream renders its images one at a time, when they are due.
 */
export function inspectSplitPlan(options: InspectSplitOptions): InspectSplitPlan {
  const { trainCount, ratio, testPerCell, testNormal, seed } = options;
  if (!(ratio >= 0 && ratio < 1)) throw new RangeError(`ratio must be in [0, 1), got ${ratio}`);
  if (!Number.isInteger(trainCount) || trainCount < 1) {
    throw new RangeError(`trainCount must be a positive integer, got ${trainCount}`);
  }
  if (trainCount > TEST_SEED_OFFSET) {
    throw new RangeError(`trainCount must be at most ${TEST_SEED_OFFSET}, got ${trainCount}`);
  }
  const kinds = options.kinds ?? DEFECT_KINDS;
  const sizes = options.sizes ?? DEFECT_SIZE_NAMES;
  const random = new SeededRandom(seed);
  // Disjoint seed ranges for training and test renders: no test part is ever trained on.
  const trainSeed = (i: number) => seed * 100_003 + i;
  const testSeed = (i: number) => seed * 100_003 + TEST_SEED_OFFSET + i;

  const injected = Math.round(ratio * trainCount);
  const defective = new Set(
    random.sample(Array.from({ length: trainCount }, (_, i) => i), injected),
  );
  const train = Array.from(
    { length: trainCount },
    (_, i): SampleSpec =>
      defective.has(i)
        ? { seed: trainSeed(i), defect: { kind: random.pick(kinds), size: random.pick(sizes) } }
        : { seed: trainSeed(i) },
  );

  const testSpecs: ({ kind: DefectKind; size: DefectSize } | undefined)[] = [
    ...Array.from({ length: testNormal }, () => undefined),
    ...kinds.flatMap((kind) =>
      sizes.flatMap((size) => Array.from({ length: testPerCell }, () => ({ kind, size })))
    ),
  ];
  const test = random.shuffled(testSpecs).map((defect, i): SampleSpec =>
    defect ? { seed: testSeed(i), defect } : { seed: testSeed(i) }
  );
  return { train, test, injected };
}

/** Renders one planned image of `options.surface`. */
export function renderSplitSample(
  options: Pick<InspectSplitOptions, "surface" | "photo" | "side">,
  spec: SampleSpec,
): InspectSample {
  return {
    ...renderSurface({
      surface: options.surface,
      photo: options.photo,
      side: options.side,
      seed: spec.seed,
      defect: spec.defect,
    }),
    seed: spec.seed,
  };
}

/** Renders the split described by `options` (deterministic in its options). */
export function inspectSplit(options: InspectSplitOptions): InspectSplit {
  const plan = inspectSplitPlan(options);
  const render = (spec: SampleSpec) => renderSplitSample(options, spec);
  return { train: plan.train.map(render), test: plan.test.map(render), injected: plan.injected };
}

/** Test renders' seeds start this far above the training ones (so streams stay below it). */
const TEST_SEED_OFFSET = 50_000;
