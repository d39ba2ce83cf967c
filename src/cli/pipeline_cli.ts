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
import { type Dashboard, startDashboard } from "../observe/dashboard/server.ts";
import { PortInUseError } from "../observe/http.ts";
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
  "metrics-port"?: string;
  "dashboard-port"?: string;
}

/** `node:util` parseArgs options of {@link PipelineCliValues}, plus `--help`. */
export const PIPELINE_CLI_OPTIONS = {
  line: { type: "string" },
  config: { type: "string" },
  ...NATS_CLI_OPTIONS,
  checkpoints: { type: "string" },
  progress: { type: "string" },
  "metrics-port": { type: "string" },
  "dashboard-port": { type: "string" },
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
  --metrics-port PORT serve /metrics on PORT (default: metrics.port of the pipeline file,
                      9464; 0: any free port; off: none)
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

/** Help line of `run`'s dashboard option. */
export const DASHBOARD_OPTIONS_HELP =
  `  --dashboard-port PORT  serve the dashboard on PORT (default: dashboard.port, 8090; 0: any
                         free port; off: none). Binding beyond loopback (dashboard.hostname)
                         needs dashboard.token or $DASHBOARD_TOKEN.`;

/** `--metrics-port` / `--dashboard-port`: undefined keeps the file's port, `off` serves none. */
function portOption(name: string, value: string | undefined): number | null | undefined {
  if (value === undefined) return undefined;
  if (value === "off") return null;
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new UsageError(`--${name} must be a port number (0-65535) or "off", got "${value}"`);
  }
  return port;
}

/** Runs `stages` of the configured line until SIGINT/SIGTERM; returns the exit code. */
export async function servePipeline(
  values: PipelineCliValues,
  stages: readonly StageName[],
  workers: boolean,
  serve: { dashboard?: boolean } = {},
): Promise<number> {
  const config = await pipelineConfigFrom(values);
  const progressSeconds = values.progress === undefined
    ? 10
    : values.progress === "0"
    ? 0
    : positiveNumber("progress", values.progress);
  // Port options are checked before anything connects or starts.
  const metricsPort = portOption("metrics-port", values["metrics-port"]);
  const dashboardPort = portOption("dashboard-port", values["dashboard-port"]);
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
      metricsPort,
    });
    console.log(
      `line ${config.line}: running ${pipeline.stages.join(", ")} ` +
        `(${workers ? "one Worker each" : "in this process"}) on ` +
        `${nats.child ? nats.url : describeNats(target)}; Ctrl-C stops`,
    );
    if (pipeline.metricsUrl) console.log(`line ${config.line}: metrics at ${pipeline.metricsUrl}`);
    let dashboard: Dashboard | undefined;
    if (serve.dashboard && config.dashboard.enabled && dashboardPort !== null) {
      try {
        dashboard = await startDashboard({
          line: config.line,
          natsUrl: nats.url,
          natsAuth: nats.child ? undefined : target.auth,
          config: config.dashboard,
          port: dashboardPort,
          metrics: () => pipeline.metrics(),
        });
        console.log(`line ${config.line}: dashboard at ${dashboard.url}/`);
      } catch (error) {
        // A taken port costs the view, not the inspection; a refused configuration stops.
        if (error instanceof PortInUseError) {
          console.warn(`${error.message}; running without a dashboard`);
        } else {
          await pipeline.stop().catch(() => undefined);
          throw error;
        }
      }
    }
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
      await dashboard?.close();
      await pipeline.stop();
      console.log(`line ${config.line}: stopped cleanly`);
      return 0;
    }
    console.error(`line ${config.line}: ${outcome.message}; stopping`);
    await dashboard?.close().catch(() => undefined);
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
