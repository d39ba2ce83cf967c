/**
 * Wall-clock timing helpers shared by the benchmarks.
 *
 * @module
 */

/** Timings of repeated calls, in milliseconds. */
export interface Timing {
  /** Median of the timed calls. */
  medianMs: number;
  /** Fastest timed call. */
  minMs: number;
  /** Every timed call, in order. */
  samplesMs: number[];
}

/**
 * Calls `fn` `warmup` times untimed (first calls compile kernels and allocate), then `repeats`
 * times timed. `fn` must finish its work before returning (read results back, e.g. `dataSync`).
 */
export function timeCalls(fn: () => void, repeats: number, warmup = 1): Timing {
  if (!Number.isInteger(repeats) || repeats < 1) {
    throw new RangeError(`repeats must be a positive integer, got ${repeats}`);
  }
  for (let i = 0; i < warmup; i++) fn();
  const samplesMs: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const start = performance.now();
    fn();
    samplesMs.push(performance.now() - start);
  }
  return { medianMs: median(samplesMs), minMs: Math.min(...samplesMs), samplesMs };
}

/** Median of a non-empty list (mean of the middle two for even lengths). */
export function median(values: readonly number[]): number {
  if (values.length === 0) throw new RangeError("median of an empty list");
  const sorted = values.slice().sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

/** Seconds since `startMs` (a `performance.now()` value), rounded to 0.1 s. */
export function secondsSince(startMs: number): number {
  return Math.round((performance.now() - startMs) / 100) / 10;
}

/** Timings of a first (warm-up) call and of the timed calls after it. */
export interface AdaptiveTiming extends Timing {
  /** The first call, which includes kernel compilation and first allocations. */
  firstCallMs: number;
}

/**
 * Times one untimed-for-the-median first call, then up to `maxCalls` timed calls, stopping
 * early once `budgetMs` of timed calls have elapsed (at least one timed call is made), so
 * slow configurations are measured with fewer repeats instead of taking hours.
 */
export function timeAdaptive(
  fn: () => void,
  { maxCalls, budgetMs }: { maxCalls: number; budgetMs: number },
): AdaptiveTiming {
  if (!Number.isInteger(maxCalls) || maxCalls < 1) {
    throw new RangeError(`maxCalls must be a positive integer, got ${maxCalls}`);
  }
  const first = performance.now();
  fn();
  const firstCallMs = performance.now() - first;
  const samplesMs: number[] = [];
  let spent = 0;
  while (samplesMs.length < maxCalls && (samplesMs.length === 0 || spent < budgetMs)) {
    const start = performance.now();
    fn();
    const ms = performance.now() - start;
    samplesMs.push(ms);
    spent += ms;
  }
  return { firstCallMs, medianMs: median(samplesMs), minMs: Math.min(...samplesMs), samplesMs };
}

/** {@link timeAdaptive} for calls that finish asynchronously (e.g. an ONNX Runtime run). */
export async function timeAdaptiveAsync(
  fn: () => Promise<unknown>,
  { maxCalls, budgetMs }: { maxCalls: number; budgetMs: number },
): Promise<AdaptiveTiming> {
  if (!Number.isInteger(maxCalls) || maxCalls < 1) {
    throw new RangeError(`maxCalls must be a positive integer, got ${maxCalls}`);
  }
  const first = performance.now();
  await fn();
  const firstCallMs = performance.now() - first;
  const samplesMs: number[] = [];
  let spent = 0;
  while (samplesMs.length < maxCalls && (samplesMs.length === 0 || spent < budgetMs)) {
    const start = performance.now();
    await fn();
    const ms = performance.now() - start;
    samplesMs.push(ms);
    spent += ms;
  }
  return { firstCallMs, medianMs: median(samplesMs), minMs: Math.min(...samplesMs), samplesMs };
}
