/**
 * Quantiles of tensor elements with `torch.quantile` semantics (linear interpolation between
 * the two closest order statistics), returned as plain numbers.
 *
 * Strategy (measured on wasm, 8×64×64×304 ≈ 10M floats, 2 shared cores, medians): copying
 * the data out with `dataSync()` alone costs ~110 ms, so quantiles in a thin tail (q ≥ 7/8 or
 * q ≤ 1/8, e.g. the 0.999 hard-example threshold) read only that tail with `tf.topk` plus a NaN
 * check (~40 ms at q = 0.999, ~170–270 ms at q = 0.9, vs ~280–400 ms for the copy-and-select
 * path), while central quantiles use an O(n) Floyd–Rivest selection over a copy (~220–350 ms
 * at q = 0.5, vs ~800 ms for topk). On the cpu backend `dataSync()` is free and topk is far
 * slower (a JS object per element), so the selection path is always used there.
 * The result is a plain number: no gradient flows through a quantile.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";

/** torch.quantile refuses more than 2^24 elements; the EfficientAD peers quantile the first 2^24. */
export const DEFAULT_MAX_QUANTILE_ELEMENTS = 2 ** 24;

/** Values a quantile can be taken of. */
export type QuantileValues = Float32Array | Float64Array | Int32Array | Uint8Array | number[];

/**
 * The q-quantile of a tensor's elements, linear interpolation (torch.quantile's default).
 * Reads the data synchronously; the result is a constant (no gradient).
 *
 * Returns NaN when any considered element is NaN (as torch does), so callers can detect a
 * diverged model.
 *
 * @param t any tensor (flattened in row-major order)
 * @param q quantile in [0, 1]
 * @param maxElements only the first `maxElements` elements are considered (torch peers'
 *   2^24 cap)
 * @throws if `q` is outside [0, 1], the tensor is empty or `maxElements` is not a positive
 *   integer
 */
export function quantileOf(
  t: tf.Tensor,
  q: number,
  maxElements: number = DEFAULT_MAX_QUANTILE_ELEMENTS,
): number {
  return quantilesOf(t, [q], maxElements)[0];
}

/**
 * Several quantiles of one tensor from a single data read (e.g. the 0.9 and 0.995 map
 * quantiles). Same semantics as {@link quantileOf}; results are in the order of `qs`.
 */
export function quantilesOf(
  t: tf.Tensor,
  qs: readonly number[],
  maxElements: number = DEFAULT_MAX_QUANTILE_ELEMENTS,
): number[] {
  if (!Number.isInteger(maxElements) || maxElements < 1) {
    throw new RangeError(`maxElements must be a positive integer, got ${maxElements}`);
  }
  if (t.size === 0) throw new RangeError("quantile of an empty tensor is undefined");
  validateQuantiles(qs);
  const n = Math.min(t.size, maxElements);
  const tail = tailOf(qs, n);
  if (tail !== undefined && tf.getBackend() !== "cpu") return tailQuantiles(t, qs, n, tail);
  // dataSync() of the cpu backend is the tensor's own storage: selection works on a copy.
  return quantilesOfValues(t.dataSync() as QuantileValues, qs, maxElements);
}

/** The share of the elements below which reading only a tail via `tf.topk` pays off. */
const TOPK_TAIL_SHARE = 1 / 8;

/** Which tail (if one) holds every order statistic the quantiles need. */
function tailOf(qs: readonly number[], n: number): "top" | "bottom" | undefined {
  const limit = Math.max(2, Math.floor(n * TOPK_TAIL_SHARE));
  if (qs.every((q) => n - Math.floor(q * (n - 1)) <= limit)) return "top";
  if (qs.every((q) => Math.floor(q * (n - 1)) + 2 <= limit)) return "bottom";
  return undefined;
}

/**
 * Quantiles that all lie in one thin tail, read with `tf.topk` so only that tail leaves the
 * backend (on wasm ~10x faster than copying 10M floats out for selection).
 */
function tailQuantiles(
  t: tf.Tensor,
  qs: readonly number[],
  n: number,
  tail: "top" | "bottom",
): number[] {
  const ranks = qs.map((q) => {
    const position = q * (n - 1);
    const below = Math.floor(position);
    return { below, fraction: position - below };
  });
  // k largest (of t, or of −t for the bottom tail), sorted descending.
  const k = tail === "top"
    ? Math.max(...ranks.map((r) => n - r.below))
    : Math.min(n, Math.max(...ranks.map((r) => r.below + 2)));
  // Only tensors leave the tidy: tidy walks every key of a returned typed array (slow for 1M).
  const [topValues, nanFlag] = tf.tidy(() => {
    const flat = t.reshape([-1]);
    const considered = n < t.size ? flat.slice(0, n) : flat;
    const signed = tail === "top" ? considered : considered.neg();
    return [tf.topk(signed, k, true).values, tf.isNaN(considered).any()];
  });
  const sorted = topValues.dataSync();
  const nanCount = nanFlag.dataSync()[0];
  tf.dispose([topValues, nanFlag]);
  if (nanCount !== 0) return qs.map(() => NaN);
  // Order statistic r (ascending, 0-based) of the first n elements.
  const orderStatistic = (r: number): number => tail === "top" ? sorted[n - 1 - r] : -sorted[r];
  return ranks.map(({ below, fraction }) => {
    const low = orderStatistic(below);
    if (fraction === 0 || below === n - 1) return low;
    return low + (orderStatistic(below + 1) - low) * fraction;
  });
}

/**
 * The q-quantile (torch semantics) of the elements of each group of samples, where a sample is
 * a row along axis 0 (e.g. the inlier and the outlier samples of an ATDR batch); a group's
 * elements are its samples' elements in index order, of which the first `maxElements` count.
 * No tensor is sliced: slicing ~10M floats costs >100 ms on wasm, so thin top tails come from
 * one batched `tf.topk` per sample row (the group's top-k is inside the union of its rows'
 * top-k), anything else from one data read.
 *
 * @returns one quantile per group (NaN for a group holding NaN)
 * @throws on an empty group, an index outside the batch, or q outside [0, 1]
 */
export function quantileOfSampleGroups(
  t: tf.Tensor,
  groups: readonly (readonly number[])[],
  q: number,
  maxElements: number = DEFAULT_MAX_QUANTILE_ELEMENTS,
): number[] {
  validateQuantiles([q]);
  if (t.rank < 1 || t.size === 0) throw new RangeError("quantile of an empty tensor is undefined");
  const b = t.shape[0];
  const rowSize = t.size / b;
  for (const group of groups) {
    if (group.length === 0) throw new RangeError("a sample group must not be empty");
    for (const i of group) {
      if (!Number.isInteger(i) || i < 0 || i >= b) {
        throw new RangeError(`sample index ${i} is outside a batch of ${b}`);
      }
    }
  }
  const sizes = groups.map((g) => Math.min(g.length * rowSize, maxElements));
  const topCounts = sizes.map((n) => n - Math.floor(q * (n - 1)));
  const k = Math.max(...topCounts);
  const thinTop = sizes.every((n, g) =>
    n === groups[g].length * rowSize && topCounts[g] <= Math.max(2, Math.floor(n * TOPK_TAIL_SHARE))
  );
  if (thinTop && k <= rowSize && tf.getBackend() !== "cpu") {
    return groupTopTailQuantiles(t, groups, q, k, rowSize);
  }
  const data = t.dataSync() as QuantileValues;
  return groups.map((group, g) => {
    const values = new Float64Array(sizes[g]);
    for (let j = 0; j < group.length && j * rowSize < sizes[g]; j++) {
      const take = Math.min(rowSize, sizes[g] - j * rowSize);
      for (let e = 0; e < take; e++) values[j * rowSize + e] = data[group[j] * rowSize + e];
    }
    return quantilesOfValues(values, [q])[0];
  });
}

function groupTopTailQuantiles(
  t: tf.Tensor,
  groups: readonly (readonly number[])[],
  q: number,
  k: number,
  rowSize: number,
): number[] {
  const b = t.shape[0];
  const [topValues, nanRows] = tf.tidy(() => {
    const matrix = t.reshape([b, rowSize]);
    return [tf.topk(matrix, k, true).values, tf.isNaN(matrix).any(1)];
  });
  const rows = topValues.dataSync();
  const rowHasNaN = nanRows.dataSync();
  tf.dispose([topValues, nanRows]);
  return groups.map((group) => {
    if (group.some((row) => rowHasNaN[row] !== 0)) return NaN;
    const n = group.length * rowSize;
    const pool = new Float32Array(group.length * k);
    group.forEach((row, j) => pool.set(rows.subarray(row * k, (row + 1) * k), j * k));
    pool.sort(); // ascending; its top (n − below) entries are the group's largest ones
    const position = q * (n - 1);
    const below = Math.floor(position);
    const fraction = position - below;
    // Group order statistic r (ascending) is its (n − 1 − r)-th largest element.
    const orderStatistic = (r: number) => pool[pool.length - 1 - (n - 1 - r)];
    const low = orderStatistic(below);
    if (fraction === 0 || below === n - 1) return low;
    return low + (orderStatistic(below + 1) - low) * fraction;
  });
}

/**
 * Quantiles of plain numbers (first `maxElements` of them), torch.quantile semantics.
 * The input is not modified.
 *
 * @throws on empty input or a quantile outside [0, 1]
 */
export function quantilesOfValues(
  values: QuantileValues,
  qs: readonly number[],
  maxElements: number = DEFAULT_MAX_QUANTILE_ELEMENTS,
): number[] {
  validateQuantiles(qs);
  const n = Math.min(values.length, maxElements);
  if (n === 0) throw new RangeError("quantile of no values is undefined");
  // Float32 data is copied as float32 (what tensors hold); anything else keeps float64 precision.
  const work = values instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
  let hasNaN = false;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== v) hasNaN = true;
    work[i] = v;
  }
  if (hasNaN) return qs.map(() => NaN);

  // Select ascending ranks so each selection can start right of the previous one.
  const order = qs.map((_, i) => i).sort((a, b) => qs[a] - qs[b]);
  const result = new Array<number>(qs.length);
  let left = 0;
  for (const index of order) {
    const position = qs[index] * (n - 1);
    const below = Math.floor(position);
    const fraction = position - below;
    selectKth(work, below, left, n - 1);
    left = below;
    const low = work[below];
    if (fraction === 0 || below === n - 1) {
      result[index] = low;
      continue;
    }
    // After selection every element right of `below` is >= low; the next order statistic is
    // their minimum.
    let high = Infinity;
    for (let i = below + 1; i < n; i++) if (work[i] < high) high = work[i];
    result[index] = low + (high - low) * fraction;
  }
  return result;
}

function validateQuantiles(qs: readonly number[]): void {
  if (qs.length === 0) throw new RangeError("at least one quantile is required");
  for (const q of qs) {
    if (!(q >= 0 && q <= 1)) throw new RangeError(`quantile must be in [0, 1], got ${q}`);
  }
}

/**
 * Floyd–Rivest selection: afterwards `a[k]` holds the k-th smallest element of a[left..right],
 * everything left of k is <= it and everything right of k is >= it. Expected ~n + min(k, n−k)
 * comparisons; recursion depth is O(log log n) because each recursive call works on a sample.
 */
function selectKth(a: Float32Array | Float64Array, k: number, left: number, right: number): void {
  while (right > left) {
    if (right - left > 600) {
      // Narrow [left, right] to a window around k sized from a random-like sample, recursively.
      const n = right - left + 1;
      const rank = k - left + 1;
      const logN = Math.log(n);
      const sampleSize = 0.5 * Math.exp((2 * logN) / 3);
      const spread = 0.5 * Math.sqrt((logN * sampleSize * (n - sampleSize)) / n) *
        (rank - n / 2 < 0 ? -1 : 1);
      const windowLeft = Math.max(left, Math.floor(k - (rank * sampleSize) / n + spread));
      const windowRight = Math.min(
        right,
        Math.floor(k + ((n - rank) * sampleSize) / n + spread),
      );
      selectKth(a, k, windowLeft, windowRight);
    }
    // Partition a[left..right] around pivot a[k] (Hoare style, robust to many equal values).
    const pivot = a[k];
    let i = left;
    let j = right;
    swap(a, left, k);
    if (a[right] > pivot) swap(a, left, right);
    while (i < j) {
      swap(a, i, j);
      i++;
      j--;
      while (a[i] < pivot) i++;
      while (a[j] > pivot) j--;
    }
    if (a[left] === pivot) {
      swap(a, left, j);
    } else {
      j++;
      swap(a, j, right);
    }
    if (j <= k) left = j + 1;
    if (k <= j) right = j - 1;
  }
}

function swap(a: Float32Array | Float64Array, i: number, j: number): void {
  const tmp = a[i];
  a[i] = a[j];
  a[j] = tmp;
}
