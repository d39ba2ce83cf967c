/**
 * From a scored image's combined anomaly map to what its verdict says about *where*: the most
 * anomalous region in the camera's pixels, the share of the image above the threshold, and the
 * heatmap to publish with its scale.
 *
 * @module
 */
import { boxToImage, fractionAbove, peakRegion } from "../ad2/regions.ts";
import { heatmapSubject, streamNames } from "../bus/subjects.ts";
import type { Localisation } from "../bus/verdict.ts";

/** What one map gives: the verdict's fields and the heatmap's scale. */
export interface MapFindings {
  /** Fields of the scored verdict. */
  localisation: Localisation;
  /** The map value byte 255 of the heatmap PNG stands for. */
  scaleMax: number;
}

/** Inputs of {@link localise}. */
export interface LocaliseInput {
  /** Line id. */
  line: string;
  /** Image-Id. */
  imageId: string;
  /** Combined map at the model's input resolution, row-major. */
  map: Float32Array;
  /** Side of the map. */
  size: number;
  /** Image score (maximum of the map before resizing). */
  score: number;
  /** Threshold in force. */
  threshold: number;
  /** Original image size, or null when ingest did not say. */
  original: { width: number; height: number } | null;
  /** Whether the heatmap is published. */
  publishHeatmap: boolean;
}

/**
 * The localisation of one scored image. The heatmap scale is max(2 · threshold, score), so a
 * pixel at the threshold is mid-grey on every heatmap of a line while the threshold holds, and
 * the peak of a strong defect is never clipped.
 */
export function localise(input: LocaliseInput): MapFindings {
  const { map, size, score, threshold, original } = input;
  const anomalous = score > threshold;
  const region = anomalous && original
    ? boxToImage(peakRegion(map, size, threshold), size, original.width, original.height)
    : null;
  let scaleMax = Math.max(2 * threshold, score);
  if (!(scaleMax > 0) || !Number.isFinite(scaleMax)) scaleMax = 1;
  return {
    scaleMax,
    localisation: {
      originalSize: original,
      region,
      anomalousFraction: fractionAbove(map, threshold),
      heatmap: input.publishHeatmap
        ? {
          subject: heatmapSubject(input.line, input.imageId),
          stream: streamNames(input.line).heatmaps,
          format: "png",
          width: size,
          height: size,
          scaleMax,
        }
        : null,
    },
  };
}
