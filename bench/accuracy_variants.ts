/**
 * The training variants the accuracy benchmarks compare: the paper's four (baseline, NMFE only,
 * ATDR only, AD²) and the robust-trainer switches on top of AD² (issue 6). A variant is a set of
 * TrainingSchema overrides, so every variant is also a configuration users can select.
 *
 * `robust` was chosen on bench/results/probe-robust.md (2 classes, r ∈ {0, 0.1, 0.3}, where it
 * was named `auto_st`): the smallest AUROC loss from r = 0 of the variants tried.
 *
 * @module
 */
import type { HygieneConfigInput, TrainingConfigInput } from "../src/config/schema.ts";

/** Variant names, in table order. */
export const VARIANT_NAMES = [
  "baseline",
  "nmfe",
  "atdr",
  "ad2",
  "ad2_exclude",
  "ad2_trim",
  "robust_without_hygiene",
  "robust",
  "robust_adaptive_cap",
  "robust_two_flags",
  "robust_two_flags_adaptive_cap",
] as const;

/** One of {@link VARIANT_NAMES}. */
export type VariantName = typeof VARIANT_NAMES[number];

/** What a variant trains with and how tables show it. */
export interface AccuracyVariant {
  /** Display name. */
  label: string;
  /** TrainingSchema overrides (on top of the benchmark's shared training fields). */
  training: TrainingConfigInput;
  /**
   * Training-set hygiene (the live trainer's `trainer.hygiene`, emulated offline): which
   * ATDR-flagged images stop being trained on. `null`: none ever does (the paper).
   */
  hygiene: HygieneConfigInput | null;
  /** Paper Table 3's switches; `null` for variants outside the paper's ablation. */
  switches: { nmfe: boolean; atdr: boolean } | null;
  /** Line colour in the chart. */
  color: string;
}

/** The robust trainer's training fields (its hygiene is separate, see `robust`). */
const ROBUST_TRAINING: TrainingConfigInput = {
  method: "ad2",
  atdrOutlierCount: "auto",
  contamination: { signal: "st" },
  protectAutoencoder: "exclude",
  autoencoderTrim: 0.25,
};

/** Every variant. */
export const ACCURACY_VARIANTS: Record<VariantName, AccuracyVariant> = {
  baseline: {
    label: "baseline (EfficientAD)",
    training: { method: "baseline" },
    hygiene: null,
    switches: { nmfe: false, atdr: false },
    color: "#555555",
  },
  nmfe: {
    label: "NMFE only",
    training: { method: "nmfe" },
    hygiene: null,
    switches: { nmfe: true, atdr: false },
    color: "#1f77b4",
  },
  atdr: {
    label: "ATDR only",
    training: { method: "atdr" },
    hygiene: null,
    switches: { nmfe: false, atdr: true },
    color: "#2ca02c",
  },
  ad2: {
    label: "AD² (paper)",
    training: { method: "ad2", atdrOutlierCount: 1, protectAutoencoder: "off" },
    hygiene: null,
    switches: { nmfe: true, atdr: true },
    color: "#d62728",
  },
  ad2_exclude: {
    label: "AD² + AE exclusion",
    training: { method: "ad2", atdrOutlierCount: 1, protectAutoencoder: "exclude" },
    hygiene: null,
    switches: null,
    color: "#ff7f0e",
  },
  ad2_trim: {
    label: "AD² + AE exclusion + AE trim 25 %",
    training: {
      method: "ad2",
      atdrOutlierCount: 1,
      protectAutoencoder: "exclude",
      autoencoderTrim: 0.25,
    },
    hygiene: null,
    switches: null,
    color: "#8c564b",
  },
  robust_without_hygiene: {
    label: "robust trainer without hygiene",
    training: ROBUST_TRAINING,
    hygiene: null,
    switches: null,
    color: "#17becf",
  },
  robust: {
    label: "robust trainer",
    training: ROBUST_TRAINING,
    // An image ATDR flags leaves training at once, but never more than 30 % of the recent
    // distinct images (the cap against confirmation bias).
    hygiene: { flagsToReject: 1, maxRejectedFraction: 0.3 },
    switches: null,
    color: "#9467bd",
  },
  robust_adaptive_cap: {
    label: "robust trainer, cap = 2 × defect rate",
    training: ROBUST_TRAINING,
    // As `robust`, but the rejection cap follows the estimate: min(0.3, 2 × rate), so a clean
    // line (estimate ≈ 0.05) loses about a tenth of its images to hygiene instead of 30 %.
    hygiene: { flagsToReject: 1, maxRejectedFraction: 0.3, capPerDefectRate: 2 },
    switches: null,
    color: "#bcbd22",
  },
  robust_two_flags: {
    label: "robust trainer, reject at 2 flags",
    training: ROBUST_TRAINING,
    // An image leaves training only once ATDR has flagged it twice, on the hypothesis that a
    // normal image's flags are one-off and an anomaly's recur. Measured (10 classes): hard normal
    // images are flagged again and again too, so a clean line still lost 21 % of its images.
    hygiene: { flagsToReject: 2, maxRejectedFraction: 0.3 },
    switches: null,
    color: "#e377c2",
  },
  robust_two_flags_adaptive_cap: {
    label: "robust trainer, reject at 2 flags, cap = 2 × defect rate",
    training: ROBUST_TRAINING,
    hygiene: { flagsToReject: 2, maxRejectedFraction: 0.3, capPerDefectRate: 2 },
    switches: null,
    color: "#7f7f7f",
  },
};

/** Parses a variant name; the error lists the valid ones. */
export function parseVariantName(name: string): VariantName {
  const trimmed = name.trim();
  if ((VARIANT_NAMES as readonly string[]).includes(trimmed)) return trimmed as VariantName;
  throw new Error(`unknown variant "${trimmed}": expected one of ${VARIANT_NAMES.join(", ")}`);
}

/** Whether the variant uses ATDR (and so makes outlier picks). */
export function usesAtdr(name: VariantName): boolean {
  const method = ACCURACY_VARIANTS[name].training.method;
  return method === "atdr" || method === "ad2";
}
