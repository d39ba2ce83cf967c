/**
 * Shared helpers of the ad2 tests: backend setup, closeness and leak assertions, a seeded PRNG.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import "@tensorflow/tfjs-backend-wasm";
import assert from "node:assert/strict";

/** Switches tfjs to `name` and waits until it is ready. */
export async function useBackend(name: "cpu" | "wasm"): Promise<void> {
  await tf.setBackend(name);
  await tf.ready();
}

/** Asserts |actual − expected| ≤ tolerance elementwise, with a readable message. */
export function assertClose(
  actual: number | ArrayLike<number>,
  expected: number | ArrayLike<number>,
  tolerance = 1e-5,
  label = "value",
): void {
  const a = typeof actual === "number" ? [actual] : Array.from(actual);
  const e = typeof expected === "number" ? [expected] : Array.from(expected);
  assert.equal(a.length, e.length, `${label}: length ${a.length} != ${e.length}`);
  for (let i = 0; i < a.length; i++) {
    assert.ok(
      Math.abs(a[i] - e[i]) <= tolerance,
      `${label}[${i}]: got ${a[i]}, expected ${
        e[i]
      } (±${tolerance})\n  actual ${a}\n  expected ${e}`,
    );
  }
}

/** Runs `body` and asserts it leaves no extra tensor behind. */
export async function assertNoLeak(body: () => void | Promise<void>): Promise<void> {
  const before = tf.memory().numTensors;
  await body();
  assert.equal(tf.memory().numTensors, before, "tensor leak");
}

/** Deterministic uniform [0,1) generator (mulberry32) for reproducible random tests. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Reference quantile: full sort, then torch's linear interpolation. */
export function naiveQuantile(values: ArrayLike<number>, q: number): number {
  const sorted = Array.from(values).sort((a, b) => a - b);
  const position = q * (sorted.length - 1);
  const below = Math.floor(position);
  const above = Math.min(below + 1, sorted.length - 1);
  return sorted[below] + (sorted[above] - sorted[below]) * (position - below);
}
