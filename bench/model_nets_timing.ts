/**
 * Timing of the networks in `src/model` on one backend, shaped like the PyTorch peer
 * (`/work/shared/peer/pdn_torch.py`): PDN-small (192 outputs) forward at S = 256, batch 1, and a
 * student train step (teacher forward, student forward, hard-quantile loss, backward, Adam) at
 * S = 64, batch 8; then per-kernel times of that step. Prints medians and minima (the minimum
 * is the better estimate on a shared machine) and the load average.
 *
 * Usage: deno run --allow-read --allow-env --allow-sys bench/model_nets_timing.ts [wasm|cpu]
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
import type { BackendName } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { conv2d } from "../src/model/conv.ts";
import { withoutGradient } from "../src/model/stop_gradient.ts";
import { createPdn, pdnForward, type PdnParams, pdnVariables } from "../src/model/pdn.ts";

/** Median and minimum wall time (ms) of `fn` over `runs` runs after one warm-up. */
function timeIt(fn: () => void, runs: number): { median: number; min: number } {
  fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const start = performance.now();
    fn();
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(runs / 2)], min: times[0] };
}

/** Per-kernel minimum time (ms) over `runs` profiled calls; convs keyed by their shapes. */
async function kernelTimes(fn: () => void, runs: number): Promise<[string, number][]> {
  const best = new Map<string, number>();
  for (let r = 0; r < runs; r++) {
    const info = await tf.profile(fn);
    const totals = new Map<string, number>();
    for (const k of info.kernels) {
      if (k.name === "unnamed scope") continue; // customGrad scopes: nested, double counted
      const key = k.name === "Conv2D" ? `Conv2D ${JSON.stringify(k.inputShapes)}` : k.name;
      totals.set(key, (totals.get(key) ?? 0) + (k.kernelTimeMs as number));
    }
    for (const [key, ms] of totals) best.set(key, Math.min(best.get(key) ?? Infinity, ms));
  }
  return [...best].sort((a, b) => b[1] - a[1]);
}

/** One student step as in the peer: loss = mean of the distances at or above their 0.999 quantile. */
function trainStep(
  teacher: PdnParams,
  student: PdnParams,
  optimizer: tf.Optimizer,
  x: tf.Tensor4D,
): void {
  tf.tidy(() => {
    const target = pdnForward(teacher, x);
    const { value, grads } = tf.variableGrads(() => {
      const distances = tf.reshape(tf.squaredDifference(pdnForward(student, x), target), [-1]);
      const k = Math.max(1, Math.ceil(distances.size * 0.001));
      const threshold = withoutGradient((d) => tf.min(tf.topk(d, k).values), distances);
      const hard = tf.cast(tf.greaterEqual(distances, threshold), "float32");
      return tf.div(tf.sum(tf.mul(distances, hard)), tf.sum(hard)) as tf.Scalar;
    }, pdnVariables(student));
    optimizer.applyGradients(grads);
    value.dataSync();
  });
}

const backend = (Deno.args[0] ?? "wasm") as BackendName;
console.log(`backend ${await initBackend(backend)}, load average ${Deno.loadavg().join(" ")}`);
const teacher = createPdn("small", 192, 1, false);
const student = createPdn("small", 192, 2);

const image256 = tf.randomUniform([1, 256, 256, 3]) as tf.Tensor4D;
// Reading a scalar instead of the whole map: large dataSync copies cost GC time, not compute.
const forward = () => tf.tidy(() => tf.sum(pdnForward(teacher, image256)).dataSync());
const fwd = timeIt(forward, 5);
console.log(
  `fwd small size=256 batch=1 median=${fwd.median.toFixed(0)} ms min=${fwd.min.toFixed(0)} ms`,
);

const batch64 = tf.randomUniform([8, 64, 64, 3]) as tf.Tensor4D;
const optimizer = tf.train.adam(1e-4);
const step = () => trainStep(teacher, student, optimizer, batch64);
const train = timeIt(step, 5);
console.log(
  `train small size=64 batch=8 median=${train.median.toFixed(0)} ms min=${train.min.toFixed(0)} ms`,
);
console.log("train step kernels (min ms over 3 profiled steps):");
let total = 0;
for (const [name, ms] of await kernelTimes(step, 3)) {
  total += ms;
  if (ms >= 2) console.log(`${ms.toFixed(0).padStart(6)}  ${name}`);
}
console.log(`${total.toFixed(0).padStart(6)}  (sum of kernels)`);

if (backend === "wasm") {
  // The stock gradient cannot run on wasm (no Conv2DBackpropFilter kernel); its dx half
  // (Conv2DBackpropInput, i.e. conv2dTranspose) can, so compare that alone with our dx + dW.
  console.log("per layer at the train shapes (min ms of 5): forward | custom dx+dW | stock dx");
  const layers: [string, [number, number, number, number], number][] = [
    ["conv1 3→64 k4 p3", [8, 64, 64, 3], 3],
    ["conv2 64→128 k4 p3", [8, 34, 34, 64], 3],
    ["conv3 128→128 k3 p1", [8, 19, 19, 128], 1],
    ["conv4 128→192 k4 p0", [8, 19, 19, 128], 0],
  ];
  for (const [i, [name, shape, pad]] of layers.entries()) {
    const w = student.kernels[i];
    const x = tf.randomUniform(shape) as tf.Tensor4D;
    const dy = tf.tidy(() => tf.randomUniform(conv2d(x, w, 1, pad).shape)) as tf.Tensor4D;
    const fwdOnly = timeIt(() => tf.tidy(() => tf.sum(conv2d(x, w, 1, pad)).dataSync()), 5).min;
    const withGrads = timeIt(() =>
      tf.tidy(() => {
        const grads = tf.grads((a: tf.Tensor, b: tf.Tensor) =>
          conv2d(a as tf.Tensor4D, b as tf.Tensor4D, 1, pad).mul(dy).sum()
        )([x, w]);
        tf.addN(grads.map((g) => tf.sum(g))).dataSync();
      }), 5).min;
    const stockDx = timeIt(() =>
      tf.tidy(() => tf.sum(tf.conv2dTranspose(dy, w, shape, 1, pad)).dataSync()), 5).min;
    console.log(
      `  ${name}: ${fwdOnly.toFixed(0)} | ${(withGrads - fwdOnly).toFixed(0)} | ${
        stockDx.toFixed(0)
      }`,
    );
    tf.dispose([x, dy]);
  }
}
console.log(`load average ${Deno.loadavg().join(" ")}`);
