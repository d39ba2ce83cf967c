/**
 * Polluted one-class train/test splits following the AD² paper's protocol (§4.1, the
 * *Overlap* setting of SoftPatch): the training set is the normal class plus anomalous
 * images taken from the test set, which stay in the test set as well.
 *
 * On Fashion-MNIST one class is "normal" and the other nine are anomalies.
 *
 * @module
 */
import { SeededRandom } from "../util/prng.ts";
import {
  FASHION_MNIST_DIR,
  type FashionMnistSplit,
  type FashionMnistSplitName,
  loadFashionMnist,
} from "./fashion_mnist.ts";

/** Options of {@link pollutedSplit}. */
export interface PollutedSplitOptions {
  /** Class id (0–9) treated as normal. */
  normalClass: number;
  /**
   * Noise ratio r: `round(r × trainCount)` anomalous test images are injected into the
   * training set (so the polluted set holds `trainCount × (1 + r)` images).
   */
  ratio: number;
  /** Number of clean normal training images (drawn from the train split). */
  trainCount: number;
  /** Size of the test set (drawn from the test split). */
  testCount: number;
  /** PRNG seed: fixes the test sample, the training sample and the injected images. */
  seed: number;
  /**
   * Share of normal images in the test set (default 0.5). A uniform draw would hold only
   * 10 % normals, too few for a stable AUROC on small test sets.
   */
  testNormalFraction?: number;
}

/** One image of a split, traceable to the dataset. */
export interface SplitSample {
  /** 28×28 greyscale pixels. */
  image: Uint8Array;
  /** Dataset class id. */
  classId: number;
  /** Ground truth: any class but the normal one. */
  anomalous: boolean;
  /** Dataset split it comes from. */
  source: FashionMnistSplitName;
  /** Index within that split (an injected image keeps its test index). */
  index: number;
}

/** A polluted training set and its test set. */
export interface PollutedSplit {
  /** Normal training images with the injected anomalies, shuffled. */
  train: SplitSample[];
  /** Test images (normal and anomalous), in a fixed shuffled order. */
  test: SplitSample[];
  /** How many training images are injected anomalies. */
  injected: number;
}

/** Loads Fashion-MNIST and builds the polluted split (see {@link pollutedSplitFrom}). */
export async function pollutedSplit(
  options: PollutedSplitOptions,
  dir: string = FASHION_MNIST_DIR,
): Promise<PollutedSplit> {
  const [train, test] = await Promise.all([
    loadFashionMnist("train", dir),
    loadFashionMnist("test", dir),
  ]);
  return pollutedSplitFrom(train, test, options);
}

/**
 * Builds the polluted split from loaded splits. Pure and deterministic for a given seed:
 * 1. test set: a seeded sample of the test split, `testNormalFraction` of it normal;
 * 2. training set: a seeded sample of `trainCount` normal train images;
 * 3. `round(ratio × trainCount)` of the test set's anomalies are copied into training.
 *
 * @throws RangeError when the splits cannot supply the requested counts.
 */
export function pollutedSplitFrom(
  trainSplit: FashionMnistSplit,
  testSplit: FashionMnistSplit,
  options: PollutedSplitOptions,
): PollutedSplit {
  const { normalClass, ratio, trainCount, testCount, seed } = options;
  const testNormalFraction = options.testNormalFraction ?? 0.5;
  if (!Number.isInteger(normalClass) || normalClass < 0) {
    throw new RangeError(`normalClass must be a class id ≥ 0: ${normalClass}`);
  }
  if (!(ratio >= 0)) throw new RangeError(`ratio must be ≥ 0: ${ratio}`);
  if (!(testNormalFraction >= 0 && testNormalFraction <= 1)) {
    throw new RangeError(`testNormalFraction must be in [0, 1]: ${testNormalFraction}`);
  }
  for (const [name, n] of [["trainCount", trainCount], ["testCount", testCount]] as const) {
    if (!Number.isInteger(n) || n < 0) throw new RangeError(`${name} must be an integer ≥ 0: ${n}`);
  }
  const rng = new SeededRandom(seed);
  const sampleOf = (split: FashionMnistSplit, source: FashionMnistSplitName, index: number) => ({
    image: split.images[index],
    classId: split.labels[index],
    anomalous: split.labels[index] !== normalClass,
    source,
    index,
  });
  const indicesWhere = (split: FashionMnistSplit, anomalous: boolean) => {
    const out: number[] = [];
    split.labels.forEach((label, i) => {
      if ((label !== normalClass) === anomalous) out.push(i);
    });
    return out;
  };

  const testNormals = Math.round(testCount * testNormalFraction);
  const testPool = {
    normal: indicesWhere(testSplit, false),
    anomalous: indicesWhere(testSplit, true),
  };
  const trainPool = indicesWhere(trainSplit, false);
  const injected = Math.round(ratio * trainCount);
  const testAnomalies = testCount - testNormals;
  const shortages = [
    [testNormals, testPool.normal.length, "normal test images"],
    [testAnomalies, testPool.anomalous.length, "anomalous test images"],
    [trainCount, trainPool.length, "normal train images"],
    [injected, testAnomalies, "anomalies in the test set to inject"],
  ] as const;
  for (const [wanted, available, what] of shortages) {
    if (wanted > available) {
      throw new RangeError(`need ${wanted} ${what} but only ${available} are available`);
    }
  }

  const test = rng.shuffled([
    ...rng.sample(testPool.normal, testNormals),
    ...rng.sample(testPool.anomalous, testAnomalies),
  ]).map((i) => sampleOf(testSplit, "test", i));
  const injectedSamples = rng.sample(test.filter((s) => s.anomalous), injected);
  const train = rng.shuffled([
    ...rng.sample(trainPool, trainCount).map((i) => sampleOf(trainSplit, "train", i)),
    ...injectedSamples,
  ]);
  return { train, test, injected };
}
