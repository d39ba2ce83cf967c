/**
 * Loading ONNX Runtime (`npm:onnxruntime-node`, its CPU library inside the npm package) and
 * opening sessions on the configured execution provider and thread count.
 *
 * ORT is optional at run time: without FFI permission, without its native library, or on a
 * CPU without AVX2, {@link loadOnnxRuntime} says why instead of throwing, and the caller falls
 * back to tfjs. Asking for CUDA where this ORT has no CUDA provider is an error that says so.
 *
 * @module
 */
import type * as Ort from "onnxruntime-node";
import { GraphBuilder } from "./graph.ts";

/** The onnxruntime-node module. */
export type OrtModule = typeof Ort;

/** An ORT execution provider the product can ask for. */
export type OrtDevice = "cpu" | "cuda";

/** The outcome of loading ORT: the module, or the one-line reason it is unusable here. */
export type OrtLoad = { ok: true; ort: OrtModule } | { ok: false; reason: string };

let loading: Promise<OrtLoad> | undefined;

/** Loads onnxruntime-node once per thread (Worker); never throws. */
export function loadOnnxRuntime(): Promise<OrtLoad> {
  loading ??= load();
  return loading;
}

async function load(): Promise<OrtLoad> {
  const missing = missingCpuFeature();
  if (missing) return { ok: false, reason: missing };
  let ort: OrtModule;
  try {
    ort = await import("onnxruntime-node");
  } catch (error) {
    const text = firstLine(error);
    if (/ffi|NotCapable|PermissionDenied/i.test(text) || error instanceof Deno.errors.NotCapable) {
      return { ok: false, reason: `no FFI permission (run Deno with --allow-ffi): ${text}` };
    }
    return { ok: false, reason: `onnxruntime-node cannot load (deno install?): ${text}` };
  }
  // Errors reach the caller as exceptions; ORT's own logger would print them a second time
  // (e.g. a missing CUDA provider library), so it reports only fatal ones.
  ort.env.logLevel = "fatal";
  try {
    // A one-node model proves the native library runs on this machine.
    await (await ort.InferenceSession.create(probeModel(), { logSeverityLevel: 3 })).release();
  } catch (error) {
    return { ok: false, reason: `onnxruntime-node loaded but cannot run: ${firstLine(error)}` };
  }
  return { ok: true, ort };
}

/** Options of {@link openSession}. */
export interface SessionOptions {
  /** Intra-op threads (the parallelism of one inference). */
  threads: number;
  /** Execution provider. */
  device: OrtDevice;
  /**
   * ORT's CPU memory arena and memory-pattern planning (default on). Off for the training
   * graphs: their large activations then go back to the system between runs (256 px, batch 8:
   * peak RSS 3.6 instead of 6.6 GB, no slower).
   */
  memoryArena?: boolean;
}

/**
 * An ORT session for `model` (serialised ONNX) with `threads` intra-op threads on `device`.
 *
 * @throws with advice when `device` is "cuda" and this ORT has no usable CUDA provider
 */
export async function openSession(
  ort: OrtModule,
  model: Uint8Array,
  options: SessionOptions,
): Promise<Ort.InferenceSession> {
  const common = {
    intraOpNumThreads: options.threads,
    interOpNumThreads: 1,
    executionMode: "sequential" as const,
    graphOptimizationLevel: "all" as const,
    enableCpuMemArena: options.memoryArena ?? true,
    enableMemPattern: options.memoryArena ?? true,
    logSeverityLevel: 3 as const,
    // Idle pool threads sleep instead of spinning: the trainer shares these cores.
    extra: { session: { intra_op: { allow_spinning: "0" } } },
  };
  if (options.device === "cpu") {
    return await ort.InferenceSession.create(model, { ...common, executionProviders: ["cpu"] });
  }
  try {
    return await ort.InferenceSession.create(model, {
      ...common,
      // Fatal only: a missing provider library is reported by the error below, in one line.
      logSeverityLevel: 4,
      executionProviders: ["cuda", "cpu"],
    });
  } catch (error) {
    throw new Error(
      'inference.device "cuda": this onnxruntime-node has no usable CUDA execution provider ' +
        "(its CUDA libraries come from the package's install script, which Deno does not run, " +
        "and need CUDA 12 with cuDNN 9 on the host); install them into node_modules/" +
        'onnxruntime-node/bin/napi-v6/linux/x64 or use device "cpu" ' +
        `(or model.backend "tensorflow-gpu" with engine "tfjs"). Cause: ${firstLine(error)}`,
    );
  }
}

/**
 * A one-line reason ORT must not be loaded on this CPU, or null: its x64 build assumes AVX2
 * (Linux x64 only; where /proc/cpuinfo is unreadable the load is tried).
 */
function missingCpuFeature(): string | null {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") return null;
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    const flags = info.match(/^flags\s*:(.*)$/m)?.[1].split(/\s+/) ?? null;
    if (flags && !flags.includes("avx2")) return "this CPU has no AVX2";
  } catch {
    // No read permission or no procfs: try loading.
  }
  return null;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split("\n")[0];
}

/**
 * Opens and releases a one-node session with `options`: fails now, with
 * {@link openSession}'s message, where a real model would fail later.
 */
export async function probeSession(ort: OrtModule, options: SessionOptions): Promise<void> {
  await (await openSession(ort, probeModel(), options)).release();
}

/** `y = Relu(x)` over a float `[1]`, serialised. */
function probeModel(): Uint8Array {
  const g = new GraphBuilder();
  g.output(g.node("Relu", [g.input("x", [1])]), "y", [1]);
  return g.encode("probe", "onnxruntime load probe");
}
