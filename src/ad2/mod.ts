/**
 * AD² math: quantiles, the EfficientAD/AD² training losses, normalisations and anomaly
 * scores. Pure functions of tensors (no I/O); see each module for details.
 *
 * @module
 */
export {
  DEFAULT_MAX_QUANTILE_ELEMENTS,
  quantileOf,
  quantileOfSampleGroups,
  quantilesOf,
  quantilesOfValues,
  type QuantileValues,
} from "./quantile.ts";
export {
  atdrLoss,
  type AtdrLossOptions,
  atdrSelect,
  type AtdrSelection,
  type AtdrSelectOptions,
  type FeatureDistance,
  hardMinedMean,
  type LossMethod,
  nmfeLoss,
  type NmfeOptions,
  type NmfeReport,
  nmfeReport,
  pairwiseDistances,
  sampleWeightedMeanSquare,
  stDiscrepancy,
  type StudentTeacherLoss,
  studentTeacherLoss,
  type StudentTeacherLossOptions,
} from "./losses.ts";
export {
  AUTO_AE_EXPLAINED_HIGH,
  AUTO_AE_EXPLAINED_LOW,
  autoAeMapWeight,
  type ChannelStats,
  ChannelStatsAccumulator,
  EFFICIENTAD_AE_MAP_WEIGHT,
  explainedVariance,
  FEATURE_STD_EPSILON,
  MAP_SPREAD_EPSILON,
  type MapQuantiles,
  mapQuantilesFrom,
  normaliseFeatures,
  normaliseMap,
} from "./normalisation.ts";
export { aeMap, combinedMap, heatmaps, imageScores, stMap } from "./scores.ts";
