/**
 * Where an anomaly map says the defect is, as plain numbers a verdict can carry: the bounding
 * box of the most anomalous region (mapped to the original image's pixels) and the share of the
 * image above the threshold. Pure functions on a row-major `size × size` map.
 *
 * @module
 */

/** An axis-aligned box in pixels: `x`, `y` of the top-left corner, width and height (≥ 1). */
export interface PixelBox {
  /** Left column (inclusive). */
  x: number;
  /** Top row (inclusive). */
  y: number;
  /** Columns covered. */
  width: number;
  /** Rows covered. */
  height: number;
}

/** A square map's side, checking the map holds `size²` values. */
function assertSquare(map: ArrayLike<number>, size: number): void {
  if (!Number.isInteger(size) || size < 1 || map.length !== size * size) {
    throw new RangeError(
      `expected a ${size}×${size} map (${size * size} values), got ${map.length}`,
    );
  }
}

/** Index of the largest value of `map` (the first one on ties). */
export function argmax(map: ArrayLike<number>): number {
  if (map.length === 0) throw new RangeError("argmax of an empty map");
  let best = 0;
  for (let i = 1; i < map.length; i++) if (map[i] > map[best]) best = i;
  return best;
}

/** Share of the map's pixels strictly above `threshold`, in [0, 1]. */
export function fractionAbove(map: ArrayLike<number>, threshold: number): number {
  if (map.length === 0) throw new RangeError("fractionAbove of an empty map");
  let above = 0;
  for (let i = 0; i < map.length; i++) if (map[i] > threshold) above++;
  return above / map.length;
}

/**
 * The most anomalous region: the 8-connected component of pixels at or above
 * `min(level, peak)` that contains the map's peak, as a box in map pixels. Taking the minimum
 * guarantees a region (at least the peak pixel) whenever it is asked for, e.g. when the image
 * score — the maximum of the unresized map — is above the threshold but no resized pixel is.
 */
export function peakRegion(map: ArrayLike<number>, size: number, level: number): PixelBox {
  assertSquare(map, size);
  const peak = argmax(map);
  const cut = Math.min(level, map[peak]);
  const seen = new Uint8Array(map.length);
  const stack = [peak];
  seen[peak] = 1;
  let [minX, minY, maxX, maxY] = [size, size, -1, -1];
  while (stack.length > 0) {
    const index = stack.pop()!;
    const x = index % size;
    const y = (index - x) / size;
    minX = Math.min(minX, x);
    maxX = Math.max(maxX, x);
    minY = Math.min(minY, y);
    maxY = Math.max(maxY, y);
    for (let dy = -1; dy <= 1; dy++) {
      for (let dx = -1; dx <= 1; dx++) {
        const nx = x + dx;
        const ny = y + dy;
        if (nx < 0 || ny < 0 || nx >= size || ny >= size) continue;
        const next = ny * size + nx;
        if (!seen[next] && map[next] >= cut) {
          seen[next] = 1;
          stack.push(next);
        }
      }
    }
  }
  return { x: minX, y: minY, width: maxX - minX + 1, height: maxY - minY + 1 };
}

/**
 * A box in the pixels of a `size × size` map mapped onto an image of `width × height` that was
 * stretched to the map (ingest resizes without cropping): the smallest whole-pixel box covering
 * the same area, clamped to the image.
 */
export function boxToImage(box: PixelBox, size: number, width: number, height: number): PixelBox {
  if (!(width >= 1 && height >= 1)) {
    throw new RangeError(`image size must be positive, got ${width}×${height}`);
  }
  const sx = width / size;
  const sy = height / size;
  const left = Math.max(0, Math.floor(box.x * sx));
  const top = Math.max(0, Math.floor(box.y * sy));
  const right = Math.min(width, Math.ceil((box.x + box.width) * sx));
  const bottom = Math.min(height, Math.ceil((box.y + box.height) * sy));
  return { x: left, y: top, width: Math.max(1, right - left), height: Math.max(1, bottom - top) };
}
