import * as tf from "@tensorflow/tfjs";
import assert from "node:assert/strict";
import { backendNeedsConvGradWorkaround, initBackend } from "../src/model/backend.ts";

Deno.test("wasm and cpu backends initialise; only wasm needs the conv gradient workaround", async () => {
  assert.equal(await initBackend("cpu"), "cpu");
  assert.equal(backendNeedsConvGradWorkaround(), false);
  assert.equal(await initBackend("wasm"), "wasm");
  assert.equal(tf.getBackend(), "wasm");
  assert.equal(backendNeedsConvGradWorkaround(), true);
});

Deno.test("native TensorFlow backends fail with install advice naming the package", async () => {
  await assert.rejects(
    initBackend("tensorflow"),
    (error: Error) =>
      /needs the npm package @tensorflow\/tfjs-node /.test(error.message) &&
      /deno install/.test(error.message) && /--allow-ffi/.test(error.message),
  );
  await assert.rejects(
    initBackend("tensorflow-gpu"),
    (error: Error) =>
      /@tensorflow\/tfjs-node-gpu/.test(error.message) && /CUDA/.test(error.message),
  );
  // A failed request leaves the previous backend active.
  assert.equal(await initBackend("wasm"), "wasm");
  assert.equal(tf.getBackend(), "wasm");
});

Deno.test("webgpu refuses clearly without a hardware adapter", async () => {
  await initBackend("wasm");
  const gpu = (globalThis as {
    navigator?: { gpu?: { requestAdapter(): Promise<{ info?: { isFallbackAdapter?: boolean } }> } };
  }).navigator?.gpu;
  const adapter = await gpu?.requestAdapter();
  if (!gpu) {
    await assert.rejects(initBackend("webgpu"), /--unstable-webgpu/);
  } else if (!adapter) {
    await assert.rejects(initBackend("webgpu"), /no GPU adapter/);
  } else if (adapter.info?.isFallbackAdapter) {
    await assert.rejects(initBackend("webgpu"), /software fallback/);
  } else {
    assert.equal(await initBackend("webgpu"), "webgpu"); // a host with a real GPU
  }
  assert.equal(await initBackend("wasm"), "wasm");
});
