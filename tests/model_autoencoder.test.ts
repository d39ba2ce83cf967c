import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import {
  autoencoderForward,
  autoencoderVariables,
  createAutoencoder,
} from "../src/model/autoencoder.ts";
import { pdnOutputSize } from "../src/model/pdn.ts";

Deno.test("autoencoder output matches the PDN grid for several sizes", async () => {
  await initBackend("wasm");
  for (const imageSize of [32, 64, 128]) {
    const ae = createAutoencoder({ imageSize, outChannels: 6, latent: 8, seed: 1 });
    const side = pdnOutputSize(imageSize);
    for (const training of [false, true]) {
      const shape = tf.tidy(() =>
        autoencoderForward(ae, tf.randomUniform([2, imageSize, imageSize, 3]), training).shape
      );
      assert.deepEqual(shape, [2, side, side, 6], `S=${imageSize} training=${training}`);
    }
    assert.equal(ae.upsampleSizes.at(-1), side);
    // Bottleneck kernel S/32 brings the encoder to 1×1.
    assert.deepEqual(ae.encoder[5].kernel.shape, [imageSize / 32, imageSize / 32, 64, 8]);
    tf.dispose(autoencoderVariables(ae));
  }
});

Deno.test("autoencoder reproduces anomalib's upsampling sides at S = 256", async () => {
  await initBackend("wasm");
  const ae = createAutoencoder({ imageSize: 256, outChannels: 4, latent: 64, seed: 1 });
  assert.deepEqual(ae.upsampleSizes, [3, 8, 15, 32, 63, 127, 64]);
  assert.equal(autoencoderVariables(ae).length, 28);
  tf.dispose(autoencoderVariables(ae));
});

Deno.test("autoencoder: dropout only in training; eval is deterministic; seeded init", async () => {
  await initBackend("wasm");
  const opts = { imageSize: 32, outChannels: 3, latent: 4, seed: 9 };
  const [a, b] = [createAutoencoder(opts), createAutoencoder(opts)];
  const x = tf.randomUniform([1, 32, 32, 3], 0, 1, "float32", 2) as tf.Tensor4D;
  const evalA = tf.tidy(() => Array.from(autoencoderForward(a, x, false).dataSync()));
  const evalB = tf.tidy(() => Array.from(autoencoderForward(b, x, false).dataSync()));
  assert.deepEqual(evalA, evalB);
  const trained = tf.tidy(() => Array.from(autoencoderForward(a, x, true).dataSync()));
  assert.notDeepEqual(trained, evalA);
  tf.dispose([x, ...autoencoderVariables(a), ...autoencoderVariables(b)]);
});

Deno.test("autoencoder gradients on wasm equal the cpu backend's", async () => {
  const opts = { imageSize: 32, outChannels: 5, latent: 6, seed: 3 };
  const grads = async (backend: "wasm" | "cpu") => {
    await initBackend(backend);
    const ae = createAutoencoder(opts);
    const vars = autoencoderVariables(ae);
    const result = tf.tidy(() => {
      const x = tf.randomUniform([1, 32, 32, 3], 0, 1, "float32", 4) as tf.Tensor4D;
      const { grads } = tf.variableGrads(
        () => autoencoderForward(ae, x, false).square().mean() as tf.Scalar,
        vars,
      );
      return vars.map((v) => Array.from(grads[v.name].dataSync()));
    });
    tf.dispose(vars);
    return result;
  };
  const onWasm = await grads("wasm");
  const onCpu = await grads("cpu");
  onCpu.forEach((expected, layer) => {
    const scale = expected.reduce((m, v) => Math.max(m, Math.abs(v)), 1e-12);
    expected.forEach((v, i) => {
      assert.ok(Math.abs(onWasm[layer][i] - v) <= 1e-3 * scale, `variable ${layer}[${i}]`);
    });
  });
});

Deno.test("autoencoder rejects bad sizes and inputs", async () => {
  await initBackend("wasm");
  assert.throws(
    () => createAutoencoder({ imageSize: 48, outChannels: 3, latent: 4, seed: 1 }),
    /multiple of 32/,
  );
  const ae = createAutoencoder({ imageSize: 32, outChannels: 3, latent: 4, seed: 1 });
  assert.throws(() => autoencoderForward(ae, tf.zeros([1, 64, 64, 3]), false), /built for/);
  tf.dispose(autoencoderVariables(ae));
});

Deno.test("autoencoder dropout: a seed makes the training-mode output reproducible", async () => {
  await initBackend("wasm");
  const ae = createAutoencoder({ imageSize: 64, outChannels: 8, latent: 8, seed: 1 });
  const x = tf.randomUniform([1, 64, 64, 3], 0, 1, "float32", 3) as tf.Tensor4D;
  try {
    const run = (seed?: number) =>
      tf.tidy(() => Array.from(autoencoderForward(ae, x, true, seed).dataSync()));
    assert.deepEqual(run(5), run(5), "same seed, same masks");
    assert.notDeepEqual(run(5), run(6), "another seed, other masks");
  } finally {
    x.dispose();
    for (const v of autoencoderVariables(ae)) v.dispose();
  }
});
