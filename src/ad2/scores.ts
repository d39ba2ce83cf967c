/**
 * EfficientAD inference maps and scores: per-pixel student–teacher and autoencoder maps,
 * their quantile-normalised combination, image scores and full-resolution heatmaps.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import { EFFICIENTAD_AE_MAP_WEIGHT, type MapQuantiles, normaliseMap } from "./normalisation.ts";

/**
 * Student–teacher anomaly map: per-pixel mean over channels of (T − S)² → [b,h,w].
 *
 * @param studentST the student's first (teacher-mimicking) output channels, NHWC
 * @param teacherNorm the standardised teacher features, same shape
 * @throws if the shapes differ or are not rank 4
 */
export function stMap(studentST: tf.Tensor4D, teacherNorm: tf.Tensor4D): tf.Tensor3D {
  return channelMeanSquaredDifference(studentST, teacherNorm, "student ST", "teacher");
}

/**
 * Autoencoder anomaly map: per-pixel mean over channels of (AE − S_AE)² → [b,h,w].
 *
 * @throws if the shapes differ or are not rank 4
 */
export function aeMap(studentAE: tf.Tensor4D, aePrediction: tf.Tensor4D): tf.Tensor3D {
  return channelMeanSquaredDifference(studentAE, aePrediction, "student AE", "autoencoder");
}

/**
 * The combined map of the two quantile-normalised maps,
 * (1 − w)·norm(st; stA, stB) + w·norm(ae; aeA, aeB); EfficientAD's is their mean (w = 0.5).
 *
 * @param aeWeight w in [0, 1], the autoencoder map's share
 * @throws if the maps differ in shape or w is outside [0, 1]
 */
export function combinedMap(
  st: tf.Tensor3D,
  ae: tf.Tensor3D,
  q: MapQuantiles,
  aeWeight = EFFICIENTAD_AE_MAP_WEIGHT,
): tf.Tensor3D {
  assertSameShape(st, ae, "st map", "ae map");
  if (!(aeWeight >= 0 && aeWeight <= 1)) {
    throw new RangeError(`autoencoder map weight must be in [0, 1], got ${aeWeight}`);
  }
  return tf.tidy(() =>
    tf.add(
      tf.mul(normaliseMap(st, q.stA, q.stB), 1 - aeWeight),
      tf.mul(normaliseMap(ae, q.aeA, q.aeB), aeWeight),
    )
  ) as tf.Tensor3D;
}

/**
 * Image anomaly scores: the maximum of each map → [b].
 *
 * @throws if the map is not [b,h,w]
 */
export function imageScores(map: tf.Tensor3D): tf.Tensor1D {
  assertRank(map, 3, "map");
  return tf.max(map, [1, 2]);
}

/**
 * Maps resized bilinearly to `size`×`size` (the input resolution) → [b,size,size], with
 * half-pixel centres like torch's `interpolate(mode="bilinear", align_corners=False)`.
 *
 * @throws if the map is not [b,h,w] or `size` is not a positive integer
 */
export function heatmaps(map: tf.Tensor3D, size: number): tf.Tensor3D {
  assertRank(map, 3, "map");
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`heatmap size must be a positive integer, got ${size}`);
  }
  return tf.tidy(() => {
    const resized = tf.image.resizeBilinear(
      map.expandDims(3) as tf.Tensor4D,
      [size, size],
      false,
      true,
    );
    return resized.squeeze([3]) as tf.Tensor3D;
  });
}

function channelMeanSquaredDifference(
  a: tf.Tensor4D,
  b: tf.Tensor4D,
  nameA: string,
  nameB: string,
): tf.Tensor3D {
  assertRank(a, 4, nameA);
  assertSameShape(a, b, nameA, nameB);
  return tf.tidy(() => tf.mean(tf.squaredDifference(b, a), 3) as tf.Tensor3D);
}

function assertRank(t: tf.Tensor, rank: number, name: string): void {
  if (t.rank !== rank) {
    throw new RangeError(`${name} must be rank ${rank}, got shape [${t.shape.join(",")}]`);
  }
}

function assertSameShape(a: tf.Tensor, b: tf.Tensor, nameA: string, nameB: string): void {
  if (a.rank !== b.rank || a.shape.some((n, i) => n !== b.shape[i])) {
    throw new RangeError(
      `${nameA} [${a.shape.join(",")}] and ${nameB} [${b.shape.join(",")}] differ in shape`,
    );
  }
}
