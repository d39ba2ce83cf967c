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

/**
 * Pixel AUROC of `maps` against their masks, pooled over every pixel of every image.
 *
 * @returns a value in [0, 1] (0.5 = chance).
 * @throws RangeError when a map and its mask differ in length, or when the pooled pixels lack
 *   defect pixels or normal pixels (the AUROC is undefined then).
 */
export function pixelAuroc(maps: readonly MapWithMask[]): number {
  let total = 0;
  maps.forEach(({ map, mask }, i) => {
    if (map.length !== mask.length) {
      throw new RangeError(
        `pixelAuroc: map ${i} has ${map.length} pixels but its mask ${mask.length}`,
      );
    }
    total += map.length;
  });
  const scores = new Array<number>(total);
  const labels = new Array<boolean>(total);
  let k = 0;
  for (const { map, mask } of maps) {
    for (let i = 0; i < map.length; i++, k++) {
      scores[k] = map[i];
      labels[k] = mask[i] !== 0;
    }
  }
  try {
    return auroc(scores, labels);
  } catch (error) {
    throw new RangeError(`pixelAuroc: ${(error as Error).message.replace(/images/g, "pixels")}`);
  }
}
