/**
 * A model's last check before it may score a line: a few fixed reference images (flat grey,
 * black, white, seeded noise) must score to finite numbers. Catches weights that are finite
 * but blow up (overflowing activations, a zero normalisation scale) before any verdict does.
 *
 * @module
 */
import { SeededRandom } from "../util/prng.ts";
import { toBatch } from "./batches.ts";
import type { Detector } from "./detector.ts";

/** The reference images of `size × size × 3` pixels in [0, 1]. */
export function referenceImages(size: number): Float32Array[] {
  const pixels = size * size * 3;
  const flat = (value: number) => new Float32Array(pixels).fill(value);
  const random = new SeededRandom(20_241_113);
  const noise = new Float32Array(pixels).map(() => random.next());
  return [flat(0.5), flat(0), flat(1), noise];
}

/**
 * Scores the reference images with `detector`; returns null when every score is finite,
 * else a sentence naming the first bad one.
 */
export function referenceScoreProblem(detector: Detector): string | null {
  const size = detector.model.imageSize;
  const names = ["grey", "black", "white", "noise"];
  const batch = toBatch(referenceImages(size), size);
  let reports;
  try {
    reports = detector.score(batch);
  } catch (error) {
    return `scoring the reference images failed: ${(error as Error).message}`;
  } finally {
    batch.dispose();
  }
  for (const [i, report] of reports.entries()) {
    for (const [field, value] of Object.entries(report)) {
      if (!Number.isFinite(value)) return `the ${names[i]} reference image's ${field} is ${value}`;
    }
  }
  return null;
}
