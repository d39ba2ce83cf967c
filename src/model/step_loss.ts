/**
 * The detector's training loss from its networks' outputs — the one definition both training
 * engines use: tfjs differentiates it together with the networks (`Detector.trainStep`), ONNX
 * Runtime gets its gradient w.r.t. the networks' outputs from tfjs and backpropagates that
 * through its own backward graph (`src/model/training_engine.ts`). Either way the loss
 * semantics (quantiles, NMFE weights, ATDR selection, autoencoder protection) are those of
 * `src/ad2`, unchanged.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { TrainingConfig } from "../config/schema.ts";
import { sampleWeightedMeanSquare, stDiscrepancy, studentTeacherLoss } from "../ad2/mod.ts";
import { largestIndices } from "../ad2/contamination.ts";

/** What one step's loss needs besides the tensors. */
export interface StepLossOptions {
  /** Loss hyper-parameters. */
  training: TrainingConfig;
  /** Teacher channels C (the student's output has 2C: teacher-mimicking, then AE-mimicking). */
  channels: number;
  /** ATDR outliers of this batch (fixed before the batch is seen). */
  outlierCount: number;
  /** Read each sample's mean ST discrepancy even without a trim (the `st` contamination signal). */
  readStPerSample: boolean;
}

/** The step's loss and what it decided. Tensors belong to the caller. */
export interface StepLoss {
  /** L = L_ST + L_AE + L_STAE. */
  total: tf.Scalar;
  /** `st`, `ae`, `stae` and the method's parts (`hard`, `nmfe`, `atdr`); may alias. */
  parts: Record<string, tf.Scalar>;
  /** ATDR's outliers (batch indices). */
  outliers: number[];
  /** ATDR's per-sample distance sums. */
  distanceSums: number[];
  /** Per-sample mean ST discrepancy, when read. */
  stPerSample: number[];
  /** Samples kept out of the AE terms by `autoencoderTrim`. */
  trimmed: number[];
}

/**
 * The AD² (or ablation) training loss of one batch. Call it inside `tf.tidy` (or a gradient
 * function): its intermediates are left to the caller's scope, as in `tf.variableGrads`.
 *
 * @param studentOut the student's output `[b, h, w, 2C]`
 * @param aeOut the autoencoder's output `[b, h, w, C]` (training mode: dropout applied)
 * @param target the normalised teacher features `[b, h, w, C]`
 */
export function detectorStepLoss(
  studentOut: tf.Tensor4D,
  aeOut: tf.Tensor4D,
  target: tf.Tensor4D,
  options: StepLossOptions,
): StepLoss {
  const cfg = options.training;
  const channels = options.channels;
  const batchSize = studentOut.shape[0];
  const usesAtdr = cfg.method === "atdr" || cfg.method === "ad2";
  const [studentSt, studentAe] = tf.split(studentOut, [channels, channels], 3) as tf.Tensor4D[];
  const discrepancy = stDiscrepancy(studentSt, target);
  const st = studentTeacherLoss(
    discrepancy,
    // ATDR reads these features as plain numbers: no gradient flows through selection.
    studentSt,
    cfg.method,
    {
      pLarge: cfg.pLarge,
      omegaLarge: cfg.omegaLarge,
      pHard: cfg.pHard,
      xi: cfg.xi,
      metric: cfg.atdrDistance,
      outlierCount: options.outlierCount,
    },
  );
  let stPerSample: number[] = [];
  let trimmed: number[] = [];
  // Read as plain numbers, and only when the trim or the estimator uses them (a device sync
  // per step): they select samples, they carry no gradient.
  if (cfg.autoencoderTrim > 0 || options.readStPerSample) {
    stPerSample = Array.from(tf.mean(discrepancy, [1, 2, 3]).dataSync());
    trimmed = largestIndices(stPerSample, cfg.autoencoderTrim);
  }
  const aeWeights = autoencoderSampleWeights(
    batchSize,
    usesAtdr ? st.outliers : [],
    usesAtdr ? cfg.protectAutoencoder : "off",
    cfg.xi,
    trimmed,
  );
  const ae = sampleWeightedMeanSquare(target, aeOut, aeWeights);
  const stae = sampleWeightedMeanSquare(aeOut, studentAe, aeWeights);
  const total = st.loss.add(ae).add(stae) as tf.Scalar;
  const parts: Record<string, tf.Scalar> = { st: st.loss, ae, stae };
  for (const [name, part] of Object.entries(st.parts)) if (part) parts[name] = part;
  return {
    total,
    parts,
    outliers: st.outliers,
    distanceSums: st.distanceSums,
    stPerSample,
    trimmed,
  };
}

/**
 * Per-sample weights of the AE and student–AE losses: undefined (all equal, the paper) when
 * nothing is protected; else 1 for inliers, ξ (`weights`) or 0 (`exclude`) for ATDR's outliers,
 * and 0 for the `trimmed` samples (autoencoderTrim).
 */
export function autoencoderSampleWeights(
  batchSize: number,
  outliers: readonly number[],
  protection: TrainingConfig["protectAutoencoder"],
  xi: number,
  trimmed: readonly number[] = [],
): number[] | undefined {
  const protectOutliers = protection !== "off" && outliers.length > 0;
  if (!protectOutliers && trimmed.length === 0) return undefined;
  const weights = new Array<number>(batchSize).fill(1);
  if (protectOutliers) {
    const outlierWeight = protection === "weights" ? xi : 0;
    for (const i of outliers) weights[i] = outlierWeight;
  }
  for (const i of trimmed) weights[i] = 0;
  return weights;
}
