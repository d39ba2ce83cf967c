/**
 * Sharing this machine's cores between the stages `run` starts in one process: the trainer's
 * tfjs-wasm uses one core, so a scorer beside it gets the others for ONNX Runtime.
 *
 * @module
 */
import type { PipelineConfig } from "../config/schema.ts";
import type { StageName } from "../stages/stage.ts";
import { availableCores } from "../util/cores.ts";

/**
 * `config` with `inference.threads: "auto"` resolved for the stages in `stages`: the cores
 * less one when the trainer runs beside the scorer (at least one); unchanged otherwise (a
 * scorer alone takes every core).
 */
export function withScorerThreads(
  config: PipelineConfig,
  stages: readonly StageName[],
  cores = availableCores(),
): PipelineConfig {
  if (config.inference.threads !== "auto") return config;
  if (!stages.includes("scorer") || !stages.includes("trainer")) return config;
  return { ...config, inference: { ...config.inference, threads: Math.max(1, cores - 1) } };
}
