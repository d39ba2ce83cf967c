import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { initBackend } from "../src/model/backend.ts";
import { pdnOutputSize } from "../src/model/pdn.ts";
import { loadTeacher } from "../src/model/teacher.ts";
import { TeacherSchema } from "../src/config/schema.ts";

const S = 64;

Deno.test("mobilenet_v2 teacher loads offline and gives [b, S/4, S/4, 152]", async () => {
  await initBackend("wasm");
  const teacher = await loadTeacher(TeacherSchema.parse({ kind: "mobilenet_v2" }), S);
  try {
    assert.equal(teacher.channels, 24 + 32 + 96);
    assert.deepEqual(teacher.taps, ["block_2_add", "block_5_add", "block_10_project_BN"]);
    const images = tf.randomUniform([2, S, S, 3], 0, 1, "float32", 3) as tf.Tensor4D;
    const features = teacher.extract(images);
    assert.deepEqual(features.shape, [2, pdnOutputSize(S), pdnOutputSize(S), 152]);
    const values = features.dataSync();
    assert.ok(values.every(Number.isFinite));
    // ImageNet features of noise are not constant and differ between the two images.
    const [a, b] = tf.split(features, 2, 0);
    assert.ok(tf.tidy(() => tf.sub(a, b).abs().max().dataSync()[0]) > 1e-3);
    // Deterministic: the same image gives the same features.
    const again = teacher.extract(images);
    assert.deepEqual(Array.from(again.dataSync()), Array.from(values));
    tf.dispose([images, features, a, b, again]);
  } finally {
    teacher.dispose();
  }
});

Deno.test("mobilenet_v2 teacher refuses layers at/after block_11 and unknown layers", async () => {
  await initBackend("wasm");
  for (const tap of ["block_11_expand", "block_12_add", "out_relu", "dense_3"]) {
    await assert.rejects(
      loadTeacher({ kind: "mobilenet_v2", taps: ["block_2_add", tap] }, S),
      /at or after block_11.*not ImageNet/,
      tap,
    );
  }
  await assert.rejects(
    loadTeacher({ kind: "mobilenet_v2", taps: ["block_2_sum"] }, S),
    /unknown layer "block_2_sum"/,
  );
});

Deno.test("mobilenet_v2 teacher: single early tap and no gradient through extract", async () => {
  await initBackend("wasm");
  const teacher = await loadTeacher({ kind: "mobilenet_v2", taps: ["block_1_project_BN"] }, S);
  const images = tf.randomUniform([1, S, S, 3]) as tf.Tensor4D;
  const before = tf.memory().numTensors;
  const grad = tf.grad((x: tf.Tensor) => teacher.extract(x as tf.Tensor4D).sum())(images);
  assert.equal(teacher.channels, 24);
  assert.equal(tf.tidy(() => tf.abs(grad).max().dataSync()[0]), 0);
  grad.dispose();
  assert.equal(tf.memory().numTensors, before);
  images.dispose();
  teacher.dispose();
});

Deno.test("random_pdn teacher is seeded and sized", async () => {
  await initBackend("wasm");
  const cfg = TeacherSchema.parse({ kind: "random_pdn" });
  const [t1, t2] = [await loadTeacher(cfg, S), await loadTeacher(cfg, S)];
  const images = tf.randomUniform([2, S, S, 3], 0, 1, "float32", 4) as tf.Tensor4D;
  const [f1, f2] = [t1.extract(images), t2.extract(images)];
  assert.equal(t1.name, "random_pdn (untrained, tests only)");
  assert.deepEqual(f1.shape, [2, S / 4, S / 4, 64]);
  assert.deepEqual(Array.from(f1.dataSync()), Array.from(f2.dataSync()));
  assert.throws(() => t1.extract(tf.zeros([1, 32, 32, 3])), /expects \[B, 64, 64, 3\]/);
  tf.dispose([images, f1, f2]);
  t1.dispose();
  t2.dispose();
});

Deno.test("teachers reject image sizes that are not multiples of 32", async () => {
  await assert.rejects(
    loadTeacher({ kind: "random_pdn", width: "tiny", seed: 1 }, 48),
    /multiple of 32/,
  );
});
