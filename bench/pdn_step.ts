/**
 * A PDN-only student–teacher training step, the same computation the PyTorch peer
 * (`/work/shared/peer/pdn_torch.py train`) times: a frozen random PDN teacher, a PDN student
 * with the same output channels, EfficientAD's hard-mined (p = 0.999) squared-error loss and
 * one Adam step (lr 1e-4, L2 weight decay 1e-5). Used by the speed bench so the comparison
 * with PyTorch is like for like; the full detector step adds the MobileNetV2 teacher and the
 * autoencoder on top.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { PdnWidth } from "../src/config/schema.ts";
import { createPdn, pdnForward, type PdnParams, pdnVariables } from "../src/model/pdn.ts";
import { hardMinedMean, stDiscrepancy } from "../src/ad2/mod.ts";

/** Output channels of the peer's PDNs per width (EfficientAD-S: 384). */
export const PEER_PDN_OUT_CHANNELS: Readonly<Record<PdnWidth, number>> = {
  full: 384,
  small: 192,
  tiny: 96,
};

const LEARNING_RATE = 1e-4;
const WEIGHT_DECAY = 1e-5;
const P_HARD = 0.999;

/** A frozen teacher PDN, a trainable student PDN and the student's optimiser. */
export class PdnPair {
  /** Network width preset. */
  readonly width: PdnWidth;
  readonly #teacher: PdnParams;
  readonly #student: PdnParams;
  readonly #optimizer: tf.AdamOptimizer;

  /** Builds both networks with seeded torch-default initialisation. */
  constructor(width: PdnWidth, seed = 0) {
    this.width = width;
    const out = PEER_PDN_OUT_CHANNELS[width];
    this.#teacher = createPdn(width, out, seed, false);
    this.#student = createPdn(width, out, seed + 1, true);
    this.#optimizer = tf.train.adam(LEARNING_RATE, 0.9, 0.999, 1e-8);
  }

  /** The frozen teacher's weights (exported to ONNX for the engine comparison). */
  get teacher(): PdnParams {
    return this.#teacher;
  }

  /** Teacher forward pass only (the peer's `fwd` mode); blocks until the result is computed. */
  forward(x: tf.Tensor4D): void {
    const out = pdnForward(this.#teacher, x);
    out.dataSync();
    out.dispose();
  }

  /** One training step on `x` (NHWC); returns the loss, read back (so the step is finished). */
  trainStep(x: tf.Tensor4D): number {
    const variables = pdnVariables(this.#student);
    const loss = tf.tidy(() => {
      const target = pdnForward(this.#teacher, x); // outside the tape: the teacher is frozen
      const { value, grads } = tf.variableGrads(
        () => hardMinedMean(stDiscrepancy(pdnForward(this.#student, x), target), P_HARD),
        variables,
      );
      this.#optimizer.applyGradients(variables.map((variable) => ({
        name: variable.name,
        tensor: grads[variable.name].add(variable.mul(WEIGHT_DECAY)),
      })));
      return value;
    });
    const value = loss.dataSync()[0];
    loss.dispose();
    return value;
  }

  /** Frees both networks and the optimiser state. */
  dispose(): void {
    tf.dispose([...pdnVariables(this.#teacher), ...pdnVariables(this.#student)]);
    this.#optimizer.dispose();
  }
}
