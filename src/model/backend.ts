/**
 * Selecting the tfjs backend the networks run on.
 *
 * `wasm` (XNNPACK, single-threaded under Deno) is the default and the only one whose training
 * path needs our custom convolution gradient (see `conv.ts`). The native TensorFlow backends
 * (`tensorflow`, `tensorflow-gpu`) are not part of this project's frozen lockfile: they are
 * imported on demand and fail with an explanation of how to enable them.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs";
// Side effect: registers the "wasm" backend (works under Deno without setWasmPaths).
import "@tensorflow/tfjs-backend-wasm";
import type { BackendName } from "../config/schema.ts";

/** npm packages providing the native TensorFlow backends, by backend name. */
const NATIVE_PACKAGES = {
  "tensorflow": "@tensorflow/tfjs-node",
  "tensorflow-gpu": "@tensorflow/tfjs-node-gpu",
} as const;

/**
 * Makes `name` the active tfjs backend and waits until it is ready.
 *
 * @returns the name tfjs reports for the active backend (both native variants report
 *   `"tensorflow"`).
 * @throws Error with installation/enablement advice when the backend cannot run here.
 */
export async function initBackend(name: BackendName): Promise<string> {
  switch (name) {
    case "wasm":
    case "cpu":
      await activate(name, name);
      break;
    case "webgpu":
      await initWebGpu();
      break;
    case "tensorflow":
    case "tensorflow-gpu":
      await initNative(name);
      break;
    default: {
      const unknown: never = name;
      throw new Error(`unknown backend "${unknown}"`);
    }
  }
  return tf.getBackend();
}

/**
 * True when the active backend lacks a usable convolution filter gradient, so `conv2d` must use
 * its custom gradient (wasm has no Conv2DBackpropFilter kernel).
 */
export function backendNeedsConvGradWorkaround(): boolean {
  return tf.getBackend() === "wasm";
}

/** Sets backend `registered` (requested by the user as `requested`) or throws why not. */
async function activate(registered: string, requested: BackendName): Promise<void> {
  let ok: boolean;
  try {
    ok = await tf.setBackend(registered);
  } catch (error) {
    throw new Error(`backend "${requested}" failed to initialise: ${describe(error)}`);
  }
  if (!ok) throw new Error(`backend "${requested}" failed to initialise (see tfjs warnings above)`);
  await tf.ready();
}

/** The part of a WebGPU adapter we inspect (Deno reports `isFallbackAdapter` in `info`). */
interface GpuAdapterLike {
  isFallbackAdapter?: boolean;
  info?: { isFallbackAdapter?: boolean; description?: string; device?: string };
}

async function initWebGpu(): Promise<void> {
  const gpu = (globalThis as {
    navigator?: { gpu?: { requestAdapter(options?: unknown): Promise<GpuAdapterLike | null> } };
  }).navigator?.gpu;
  if (!gpu) {
    throw new Error(
      'backend "webgpu" needs WebGPU (navigator.gpu is missing): run Deno with ' +
        "--unstable-webgpu on a host with a GPU and working drivers (Vulkan/Metal/DX12), " +
        'or choose backend "wasm".',
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new Error(
      'backend "webgpu": navigator.gpu exists but no GPU adapter was found; check the GPU ' +
        'drivers (Vulkan/Metal/DX12) or choose backend "wasm".',
    );
  }
  if (adapter.isFallbackAdapter || adapter.info?.isFallbackAdapter) {
    // e.g. Mesa llvmpipe: WebGPU emulated on the CPU, far slower than the wasm backend.
    throw new Error(
      `backend "webgpu": the only WebGPU adapter is a software fallback (${
        adapter.info?.description || adapter.info?.device || "unknown"
      }), slower than wasm; run on a host with a GPU and drivers, or choose backend "wasm".`,
    );
  }
  try {
    await import("@tensorflow/tfjs-backend-webgpu");
  } catch (error) {
    throw new Error(
      `backend "webgpu": loading @tensorflow/tfjs-backend-webgpu failed: ${describe(error)}`,
    );
  }
  await activate("webgpu", "webgpu");
}

async function initNative(name: "tensorflow" | "tensorflow-gpu"): Promise<void> {
  const pkg = NATIVE_PACKAGES[name];
  // A bare specifier resolves only through deno.json "imports": when the package is not mapped
  // this fails at once, without a registry lookup. Held in a variable so that `deno check`
  // and the frozen lockfile never try to resolve it.
  const specifier: string = pkg;
  try {
    await import(specifier);
  } catch (error) {
    throw new Error(
      `backend "${name}" needs the npm package ${pkg} (native TensorFlow for Linux/macOS x64 ` +
        `with glibc${name === "tensorflow-gpu" ? ", plus CUDA and cuDNN" : ""}), which this ` +
        `project does not ship. On a host where it installs: add "${pkg}": ` +
        `"npm:${pkg}@4.22.0" to deno.json "imports" (updating deno.lock), run ` +
        `\`deno install --allow-scripts=npm:${pkg}\` (its install script fetches ` +
        'libtensorflow), and run Deno with --allow-ffi. Otherwise use backend "wasm". ' +
        `Cause: ${describe(error)}`,
    );
  }
  // Both packages register their backend as "tensorflow".
  await activate("tensorflow", name);
}

/** First line of an error message (Deno's module errors can carry long lockfile diffs). */
function describe(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split("\n")[0];
}
