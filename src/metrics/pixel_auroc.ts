/**
 * Pixel-level AUROC: every pixel of every anomaly map is a score, every pixel of the matching
 * ground-truth mask a label (non-zero = defect), pooled over the images as MVTec AD's pixel
 * AUROC is. Maps and masks must have the same resolution (resize the mask to the map first).
 *
 * @module
 */
import { auroc } from "./auroc.ts";

/** One anomaly map and its ground-truth mask, row-major, same length. */
export interface MapWithMask {
  /** Anomaly map values (higher = more anomalous). */
  map: ArrayLike<number>;
  /** Defect mask: non-zero where the image is defective. */
  mask: ArrayLike<number>;
}

/** Subsampling for large maps (the rank AUROC sorts every pixel pooled). */
export interface PixelAurocOptions {
  /**
   * Take every `stride`-th row and column of each map (default 1: every pixel). Needs the
   * maps to be square.
   */
  stride?: number;
}

/**
 * Pixel AUROC of `maps` against their masks, pooled over every pixel of every image (or every
 * `stride`-th row and column).
 *
 * @returns a value in [0, 1] (0.5 = chance).
 * @throws RangeError when a map and its mask differ in length, a strided map is not square, or
 *   the pooled pixels lack defect pixels or normal pixels (the AUROC is undefined then).
 */
export function pixelAuroc(maps: readonly MapWithMask[], options: PixelAurocOptions = {}): number {
  const stride = options.stride ?? 1;
  if (!Number.isInteger(stride) || stride < 1) {
    throw new RangeError(`pixelAuroc: stride must be a positive integer, got ${stride}`);
  }
  const scores: number[] = [];
  const labels: boolean[] = [];
  maps.forEach(({ map, mask }, m) => {
    if (map.length !== mask.length) {
      throw new RangeError(
        `pixelAuroc: map ${m} has ${map.length} pixels but its mask ${mask.length}`,
      );
    }
    const side = Math.round(Math.sqrt(map.length));
    if (stride > 1 && side * side !== map.length) {
      throw new RangeError(`pixelAuroc: a stride needs square maps; map ${m} has ${map.length}`);
    }
    const width = stride > 1 ? side : map.length;
    for (let y = 0; y * width < map.length; y += stride) {
      for (let x = 0; x < width; x += stride) {
        scores.push(map[y * width + x]);
        labels.push(mask[y * width + x] !== 0);
      }
    }
  });
  try {
    return auroc(scores, labels);
  } catch (error) {
    throw new RangeError(`pixelAuroc: ${(error as Error).message.replace(/images/g, "pixels")}`);
  }
}
