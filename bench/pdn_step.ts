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
import {
  createPdn,
  pdnForward,
  pdnOutputSize,
  type PdnParams,
  pdnVariables,
} from "../src/model/pdn.ts";
import { hardMinedMean, stDiscrepancy } from "../src/ad2/mod.ts";
import { buildTrainingGraphs, pdnChain } from "../src/model/onnx/training_graph.ts";
import { pdnGraph } from "../src/model/onnx/student_graph.ts";
import { GraphBuilder } from "../src/model/onnx/graph.ts";
import type { OrtModule } from "../src/model/onnx/runtime.ts";
import { AdamState, OrtTrainingSessions } from "../src/model/training_engine.ts";

/** Output channels of the peer's PDNs per width (EfficientAD-S: 384). */
export const PEER_PDN_OUT_CHANNELS: Readonly<Record<PdnWidth, number>> = {
  full: 384,
  small: 192,
  tiny: 96,
};

const LEARNING_RATE = 1e-4;
const WEIGHT_DECAY = 1e-5;
const P_HARD = 0.999;

/**
 * The peer's `fwd` work as ONNX: `pair`'s frozen teacher PDN on NHWC `images`
 * `[batch, size, size, 3]` → `features` (NCHW), serialised.
 */
export function pdnForwardModel(pair: PdnPair, size: number): Uint8Array {
  const g = new GraphBuilder();
  const input = g.input(PDN_FORWARD_IO.images, ["batch", size, size, 3]);
  const nchw = g.node("Transpose", [input], { perm: [0, 3, 1, 2] });
  g.output(pdnGraph(g, pair.teacher, nchw, "pdn"), PDN_FORWARD_IO.features, [
    "batch",
    "c",
    "h",
    "w",
  ]);
  return g.encode("pdn", `PDN ${pair.width}`);
}

/** Input and output names of {@link pdnForwardModel}. */
export const PDN_FORWARD_IO = { images: "images", features: "features" } as const;

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

  /** The trainable student's weights (the ORT pair trains them). */
  get student(): PdnParams {
    return this.#student;
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

/**
 * {@link PdnPair}'s step on ONNX Runtime, the product's training route
 * (`src/model/training_engine.ts`): the frozen teacher and the student's forward pass in one
 * session, the hard-mined loss and its gradient w.r.t. the student's output by tfjs
 * (`hardMinedMean`), the student's backward graph in a second session, Adam in TypeScript.
 * Same networks, same seeds, same loss and optimiser as the tfjs pair.
 */
export class OrtPdnPair {
  readonly #pair: PdnPair;
  readonly #student: PdnParams;
  readonly #sessions: OrtTrainingSessions;
  readonly #adam: AdamState;
  private constructor(pair: PdnPair, student: PdnParams, sessions: OrtTrainingSessions) {
    this.#pair = pair;
    this.#student = student;
    this.#sessions = sessions;
    this.#adam = new AdamState(pdnVariables(student).map((v) => v.size));
  }

  /** Builds the pair's graphs for `size`-pixel inputs and opens their sessions. */
  static async create(
    ort: OrtModule,
    width: PdnWidth,
    size: number,
    threads: number,
    seed = 0,
  ): Promise<OrtPdnPair> {
    const pair = new PdnPair(width, seed);
    const student = pair.student;
    const out = PEER_PDN_OUT_CHANNELS[width];
    const grid = pdnOutputSize(size);
    const graphs = buildTrainingGraphs({
      imageSize: size,
      paramShapes: pdnVariables(student).map((v) => v.shape),
      chains: [{ chain: pdnChain(student, "student", size, 0), input: "raw" }],
      teacher: {
        append: (g, raw) => pdnGraph(g, pair.teacher, raw, "teacher"),
        shape: [out, grid, grid],
      },
      label: `pdn_${width}_${size}px`,
    });
    const sessions = await OrtTrainingSessions.open(ort, graphs, { threads, device: "cpu" });
    return new OrtPdnPair(pair, student, sessions);
  }

  /** The trained student's weights (tests compare them with {@link PdnPair}'s). */
  get student(): PdnParams {
    return this.#student;
  }

  /** One training step on `pixels` (`[batch, S, S, 3]` NHWC, row-major); returns the loss. */
  async trainStep(pixels: Float32Array, batch: number): Promise<number> {
    const variables = pdnVariables(this.#student);
    const params = variables.map((v) => ({
      data: (v.dataSync() as Float32Array).slice(),
      shape: v.shape,
    }));
    const sessions = this.#sessions;
    const graphs = sessions.graphs;
    const feeds = sessions.feeds(pixels, batch, params, []);
    const forward = await sessions.forward(feeds);
    const shape = [batch, ...graphs.outputs[0].shape];
    let loss = 0;
    // Read out inside, not returned: tf.tidy would walk a returned typed array element-wise.
    let gradient: Float32Array = new Float32Array(0);
    tf.tidy(() => {
      const student = tf.tensor4d(
        forward[graphs.outputs[0].output].data as Float32Array,
        shape as [number, number, number, number],
      );
      const target = tf.tensor4d(
        forward[graphs.teacherOut!].data as Float32Array,
        shape as [number, number, number, number],
      );
      const { value, grad } = tf.valueAndGrad((s: tf.Tensor) =>
        hardMinedMean(stDiscrepancy(s as tf.Tensor4D, target), P_HARD)
      )(student);
      loss = value.dataSync()[0];
      gradient = grad.dataSync() as Float32Array;
    });
    const gradients = await sessions.backward(feeds, forward, [gradient], batch);
    const values = params.map((p) => p.data);
    this.#adam.apply(values, gradients, LEARNING_RATE, WEIGHT_DECAY);
    variables.forEach((variable, i) => {
      const updated = tf.tensor(values[i], variable.shape);
      variable.assign(updated);
      updated.dispose();
    });
    return loss;
  }

  /** Frees the sessions and both networks. */
  async dispose(): Promise<void> {
    await this.#sessions.release();
    this.#pair.dispose();
  }
}
