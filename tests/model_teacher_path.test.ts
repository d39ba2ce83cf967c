import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import { loadTeacher } from "../src/model/teacher.ts";
import { resizeBilinear } from "../src/model/resize.ts";
import { saveSmallGraphModel } from "./helpers/small_graph_model.ts";

/** An IOHandler writing the standard tfjs layout: model.json + one weights.bin shard. */
function directoryWriter(dir: string): tf.io.IOHandler {
  return {
    save: async (artifacts: tf.io.ModelArtifacts) => {
      const data = tf.io.CompositeArrayBuffer.join(artifacts.weightData!);
      await Deno.writeFile(`${dir}/weights.bin`, new Uint8Array(data));
      const json: tf.io.ModelJSON = {
        modelTopology: artifacts.modelTopology!,
        format: artifacts.format ?? "layers-model",
        generatedBy: artifacts.generatedBy,
        convertedBy: artifacts.convertedBy ?? null,
        weightsManifest: [{ paths: ["weights.bin"], weights: artifacts.weightSpecs! }],
      };
      await Deno.writeTextFile(`${dir}/model.json`, JSON.stringify(json));
      return { modelArtifactsInfo: tf.io.getModelArtifactsInfoForJSON(artifacts) };
    },
  };
}

/** A small conv net saved at input side 32: c1 (stride 2, 8 ch), c2 (stride 4, 16 ch), head. */
async function saveSmallLayersModel(dir: string): Promise<tf.LayersModel> {
  const input = tf.input({ shape: [32, 32, 3] });
  const c1 = tf.layers.conv2d({
    name: "c1",
    filters: 8,
    kernelSize: 3,
    strides: 2,
    padding: "same",
    activation: "relu",
  })
    .apply(input) as tf.SymbolicTensor;
  const c2 = tf.layers.conv2d({
    name: "c2",
    filters: 16,
    kernelSize: 3,
    strides: 2,
    padding: "same",
  })
    .apply(c1) as tf.SymbolicTensor;
  const pooled = tf.layers.globalAveragePooling2d({ name: "pool" }).apply(c2) as tf.SymbolicTensor;
  const head = tf.layers.dense({ name: "head", units: 2 }).apply(pooled) as tf.SymbolicTensor;
  const model = tf.model({ inputs: input, outputs: head });
  await model.save(directoryWriter(dir));
  return model;
}

Deno.test("path teacher loads a saved LayersModel directory at another input size", async () => {
  await initBackend("wasm");
  const dir = await Deno.makeTempDir();
  try {
    const saved = await saveSmallLayersModel(dir);
    const teacher = await loadTeacher(
      { kind: "path", path: dir, taps: ["c1", "c2"], inputRange: "zero1" },
      64,
    );
    assert.equal(teacher.channels, 24);
    assert.deepEqual(teacher.taps, ["c1", "c2"]);
    const images = tf.randomUniform([2, 64, 64, 3], 0, 1, "float32", 7) as tf.Tensor4D;
    const features = teacher.extract(images);
    assert.deepEqual(features.shape, [2, 16, 16, 24]);
    // Same weights as the saved model: c1 at 32×32 resized to 16, c2 already at 16.
    tf.tidy(() => {
      const c1 = saved.getLayer("c1");
      const c2 = saved.getLayer("c2");
      const h1 = c1.apply(images) as tf.Tensor4D;
      const h2 = c2.apply(h1) as tf.Tensor4D;
      const expected = tf.concat([resizeBilinear(h1, [16, 16]), h2], 3);
      assert.ok(tf.abs(features.sub(expected)).max().dataSync()[0] < 1e-5);
    });
    tf.dispose([images, features]);
    teacher.dispose();
    saved.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("path teacher: clear errors for missing dir, unknown tap, non-map output", async () => {
  await initBackend("wasm");
  await assert.rejects(
    loadTeacher(
      { kind: "path", path: "/nonexistent/teacher", taps: [], inputRange: "imagenet" },
      64,
    ),
    /no model.json at \/nonexistent\/teacher\/model.json/,
  );
  const dir = await Deno.makeTempDir();
  try {
    (await saveSmallLayersModel(dir)).dispose();
    await assert.rejects(
      loadTeacher({ kind: "path", path: `file://${dir}`, taps: ["c3"], inputRange: "zero1" }, 64),
      /unknown layer "c3"; layers are .*c1, c2/,
    );
    // No taps: the model's own output, here a [B, 2] classifier head.
    await assert.rejects(
      loadTeacher({ kind: "path", path: `${dir}/model.json`, taps: [], inputRange: "zero1" }, 64),
      /not an NHWC feature map/,
    );
    await Deno.remove(`${dir}/weights.bin`);
    await assert.rejects(
      loadTeacher({ kind: "path", path: dir, taps: ["c1"], inputRange: "zero1" }, 64),
      /weights.bin unreadable/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("path teacher loads a GraphModel and taps nodes by name", async () => {
  await initBackend("wasm");
  const dir = await Deno.makeTempDir();
  try {
    const filter = Float32Array.from({ length: 48 }, (_, i) => Math.sin(i));
    await saveSmallGraphModel(dir, filter);
    const byOutput = await loadTeacher(
      { kind: "path", path: dir, taps: [], inputRange: "imagenet" },
      64,
    );
    const byNode = await loadTeacher(
      { kind: "path", path: dir, taps: ["conv"], inputRange: "imagenet" },
      64,
    );
    assert.equal(byOutput.channels, 4);
    const images = tf.randomUniform([1, 64, 64, 3], 0, 1, "float32", 2) as tf.Tensor4D;
    tf.tidy(() => {
      const relu = byOutput.extract(images);
      const conv = byNode.extract(images);
      assert.deepEqual(relu.shape, [1, 16, 16, 4]);
      // ImageNet-normalised input, 2×2/2 conv to 32×32, then resized to the 16×16 grid.
      const mapped = images.sub([0.485, 0.456, 0.406]).div([0.229, 0.224, 0.225]) as tf.Tensor4D;
      const direct = tf.conv2d(mapped, tf.tensor4d(filter, [2, 2, 3, 4]), 2, "valid");
      const expected = resizeBilinear(direct, [16, 16]);
      assert.ok(tf.abs(conv.sub(expected)).max().dataSync()[0] < 1e-4);
      const expectedRelu = resizeBilinear(tf.relu(direct), [16, 16]);
      assert.ok(tf.abs(relu.sub(expectedRelu)).max().dataSync()[0] < 1e-4);
    });
    await assert.rejects(
      loadTeacher({ kind: "path", path: dir, taps: ["nope"], inputRange: "imagenet" }, 64),
      /GraphModel\) with taps \[nope\] failed/,
    );
    images.dispose();
    byOutput.dispose();
    byNode.dispose();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
