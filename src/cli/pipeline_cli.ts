/**
 * What `run` and `stage` share: choosing the pipeline file, getting a NATS server (starting a
 * local one when nothing listens), running until SIGINT/SIGTERM, then stopping gracefully.
 *
 * @module
 */
import type { PipelineConfig } from "../config/schema.ts";
import { loadPipelineConfig, pipelineConfigPath } from "../pipeline/config.ts";
import { ensureNatsServer, NATS_INSTALL_HINT } from "../pipeline/nats_server.ts";
import { DEFAULT_CHECKPOINT_DIR, runPipeline } from "../pipeline/run.ts";
import type { StageName } from "../stages/stage.ts";
import { positiveNumber, UsageError } from "../streams/cli_support.ts";
import {
  describeNats,
  NATS_CLI_OPTIONS,
  NATS_OPTIONS_HELP,
  type NatsFlagValues,
  natsTarget,
} from "../bus/connection.ts";

/** Where a local nats-server keeps its JetStream store. */
export const LOCAL_NATS_STORE = "data/nats";

/** Options shared by `run` and `stage`, as parsed from the command line. */
export interface PipelineCliValues extends NatsFlagValues {
  line?: string;
  config?: string;
  checkpoints?: string;
  progress?: string;
}

/** `node:util` parseArgs options of {@link PipelineCliValues}, plus `--help`. */
export const PIPELINE_CLI_OPTIONS = {
  line: { type: "string" },
  config: { type: "string" },
  ...NATS_CLI_OPTIONS,
  checkpoints: { type: "string" },
  progress: { type: "string" },
  help: { type: "boolean", default: false },
} as const;

/** Help lines of the shared options. */
export const PIPELINE_OPTIONS_HELP =
  `  --line LINE         serve pipelines/LINE.json (default: demo)
  --config FILE       serve this pipeline file instead
${NATS_OPTIONS_HELP}
                      When nothing listens on a local URL and no credentials are given, a
                      nats-server with JetStream is started with its store in ${LOCAL_NATS_STORE}
  --checkpoints DIR   trainer checkpoints go to DIR/LINE (default ${DEFAULT_CHECKPOINT_DIR})
  --progress SECONDS  seconds between progress lines (default 10; 0: none)
  --help              this text`;

/** The pipeline file named by `--config`, or `pipelines/<--line or demo>.json`. */
export async function pipelineConfigFrom(values: PipelineCliValues): Promise<PipelineConfig> {
  if (values.config && values.line) throw new UsageError("--line and --config exclude each other");
  const path = values.config ?? pipelineConfigPath(values.line ?? "demo");
  const config = await loadPipelineConfig(path);
  if (values.line && config.line !== values.line) {
    throw new Error(`${path}: line is "${config.line}", expected "${values.line}"`);
  }
  return config;
}

/** Runs `stages` of the configured line until SIGINT/SIGTERM; returns the exit code. */
export async function servePipeline(
  values: PipelineCliValues,
  stages: readonly StageName[],
  workers: boolean,
): Promise<number> {
  const config = await pipelineConfigFrom(values);
  const progressSeconds = values.progress === undefined
    ? 10
    : values.progress === "0"
    ? 0
    : positiveNumber("progress", values.progress);
  const target = natsTarget(values);
  let nats;
  try {
    nats = await ensureNatsServer(target, LOCAL_NATS_STORE);
  } catch (error) {
    const message = (error as Error).message;
    console.error(message === NATS_INSTALL_HINT ? `no NATS server answers; ${message}` : message);
    return 1;
  }
  if (nats.child) {
    console.log(
      `started a local nats-server with JetStream at ${nats.url} (store ${LOCAL_NATS_STORE})`,
    );
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  for (const signal of signals) Deno.addSignalListener(signal, onSignal);
  try {
    const pipeline = await runPipeline({
      config,
      natsUrl: nats.url,
      natsAuth: nats.child ? undefined : target.auth,
      stages,
      workers,
      checkpointDir: values.checkpoints ?? DEFAULT_CHECKPOINT_DIR,
      progressIntervalMs: progressSeconds * 1000,
    });
    console.log(
      `line ${config.line}: running ${pipeline.stages.join(", ")} ` +
        `(${workers ? "one Worker each" : "in this process"}) on ` +
        `${nats.child ? nats.url : describeNats(target)}; Ctrl-C stops`,
    );
    const stopped = new Promise<"signal">((resolve) =>
      stop.signal.addEventListener("abort", () => resolve("signal"), { once: true })
    );
    const outcome = await Promise.race([
      stopped,
      pipeline.failure.catch((error) => error as Error),
    ]);
    if (outcome === "signal") {
      console.log(`line ${config.line}: stopping (draining, acknowledging, saving a checkpoint)`);
      // A second signal while stopping forces the exit.
      for (const signal of signals) {
        Deno.removeSignalListener(signal, onSignal);
        Deno.addSignalListener(signal, () => Deno.exit(130));
      }
      await pipeline.stop();
      console.log(`line ${config.line}: stopped cleanly`);
      return 0;
    }
    console.error(`line ${config.line}: ${outcome.message}; stopping`);
    await pipeline.stop().catch((error) => console.error(`while stopping: ${error.message}`));
    return 1;
  } finally {
    for (const signal of signals) {
      try {
        Deno.removeSignalListener(signal, onSignal);
      } catch {
        // already removed
      }
    }
    await nats.child?.stop();
  }
}
