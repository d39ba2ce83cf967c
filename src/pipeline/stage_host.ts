/**
 * Hosting a stage: in this thread (a process running one stage) or in its own Deno Worker
 * (the `run` command), behind one interface. A Worker has its own event loop and its own
 * tfjs wasm instance, so training never blocks scoring and the two use both cores.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import { connectNats, type NatsAuth, natsTargetOf } from "../bus/connection.ts";
import type { PipelineStage, SnapshotReport, StageName, StageStatus } from "../stages/stage.ts";
import { createStage, stageClientName, type StageSetup } from "./stage_factory.ts";
import { metrics, type MetricsJson } from "../observe/metrics.ts";

/** A started stage, wherever it runs. */
export interface StageHandle {
  /** Which stage. */
  readonly name: StageName;
  /** Its status. */
  status(): Promise<StageStatus>;
  /** Pause training (trainer). */
  pause(): Promise<StageStatus>;
  /** Resume training (trainer). */
  resume(): Promise<StageStatus>;
  /** Publish a version and save a checkpoint (trainer). */
  snapshot(): Promise<SnapshotReport>;
  /**
   * Refreshes the stage's state gauges; returns its Worker's metrics as JSON, or null when
   * the stage runs in this thread (its metrics are in this thread's registry).
   */
  metrics(): Promise<MetricsJson | null>;
  /** Graceful stop: finish and acknowledge work in hand, save state, close its connection. */
  stop(): Promise<void>;
  /** Rejects if the stage fails after starting. */
  readonly failure: Promise<never>;
}

/** Methods a host forwards to the stage. */
export type StageMethod = "status" | "pause" | "resume" | "snapshot" | "stop" | "metrics";

/** Messages from host to Worker. */
export type ToWorker =
  | { type: "init"; setup: StageSetup; natsUrl: string; natsAuth?: NatsAuth }
  | { type: "call"; id: number; method: StageMethod };

/** Messages from Worker to host. */
export type FromWorker =
  | { type: "ready" }
  | { type: "failed"; error: string }
  | { type: "result"; id: number; ok: true; value: unknown }
  | { type: "result"; id: number; ok: false; error: string };

/**
 * Connects a stage's own NATS client (reconnecting once connected, until the server refuses
 * its credentials); a failure is one line naming server, method and reason.
 */
export async function connectStage(
  setup: StageSetup,
  natsUrl: string,
  natsAuth?: NatsAuth,
): Promise<NatsConnection> {
  return await connectNats(natsTargetOf(natsUrl, natsAuth), {
    name: stageClientName(setup),
    reconnect: true,
  });
}

/** How long a stage whose NATS connection is gone may take to stop (its loops wait on NATS). */
export const STOP_AFTER_CONNECTION_LOSS_MS = 10_000;

/**
 * Awaits a stage's stop; after the connection was lost (e.g. credentials revoked) only for
 * {@link STOP_AFTER_CONNECTION_LOSS_MS}, so the process exits instead of hanging.
 */
async function stopWithin(stop: Promise<unknown>, lost: boolean, stage: string): Promise<void> {
  if (!lost) {
    await stop;
    return;
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new Error(
            `${stage}: not stopped ${STOP_AFTER_CONNECTION_LOSS_MS} ms after NATS was lost`,
          ),
        ),
      STOP_AFTER_CONNECTION_LOSS_MS,
    );
  });
  try {
    await Promise.race([stop, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Calls `method` on a stage, failing clearly when the stage lacks it. */
export async function callStage(
  stage: PipelineStage,
  method: StageMethod,
): Promise<unknown> {
  if (method === "metrics") {
    metrics().observeStatus(await stage.status());
    return await metrics().json();
  }
  const fn = stage[method] as ((this: PipelineStage) => Promise<unknown>) | undefined;
  if (!fn) throw new Error(`the ${stage.name} stage has no ${method} action`);
  return await fn.call(stage);
}

/** Starts a stage in this thread. */
export async function startLocalStage(
  setup: StageSetup,
  natsUrl: string,
  natsAuth?: NatsAuth,
): Promise<StageHandle> {
  const connection = await connectStage(setup, natsUrl, natsAuth);
  const stage = await createStage(setup, connection);
  try {
    await stage.start();
  } catch (error) {
    await connection.close();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  // A closed connection is a failure unless we closed it ourselves.
  const failure = connection.closed().then((error) => {
    if (stopping) return new Promise<never>(() => {});
    throw new Error(`${setup.stage}: NATS: ${error?.message ?? "connection closed"}`);
  });
  failure.catch(() => undefined);
  return {
    name: setup.stage,
    status: () => stage.status(),
    pause: () => callStage(stage, "pause") as Promise<StageStatus>,
    resume: () => callStage(stage, "resume") as Promise<StageStatus>,
    snapshot: () => callStage(stage, "snapshot") as Promise<SnapshotReport>,
    metrics: async () => {
      metrics().observeStatus(await stage.status());
      return null;
    },
    stop() {
      stopping ??= (async () => {
        try {
          await stopWithin(stage.stop(), connection.isClosed(), setup.stage);
        } finally {
          if (!connection.isClosed()) await connection.drain();
        }
      })();
      return stopping;
    },
    failure,
  };
}

/** Starts a stage in a new Worker; resolves once it has started. */
export async function startWorkerStage(
  setup: StageSetup,
  natsUrl: string,
  natsAuth?: NatsAuth,
): Promise<StageHandle> {
  const worker = new Worker(new URL("./stage_worker.ts", import.meta.url).href, {
    type: "module",
    name: `${setup.config.line}/${setup.stage}`,
  });
  const calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  let nextId = 1;
  let rejectFailure!: (error: Error) => void;
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => undefined);
  let resolveReady!: () => void;
  let rejectReady!: (error: Error) => void;
  const ready = new Promise<void>((resolve, reject) => {
    resolveReady = resolve;
    rejectReady = reject;
  });
  let terminated = false;
  let connectionLost = false;
  const fail = (error: Error) => {
    rejectReady(error);
    for (const call of calls.values()) call.reject(error);
    calls.clear();
    if (!terminated) {
      rejectFailure(error);
      // A failed stage is done: its Worker goes, so a supervisor can start a fresh one.
      terminated = true;
      worker.terminate();
    }
  };
  worker.onmessage = (event: MessageEvent<FromWorker>) => {
    const message = event.data;
    if (message.type === "ready") resolveReady();
    else if (message.type === "failed") {
      connectionLost = true;
      fail(new Error(`${setup.stage}: ${message.error}`));
    } else {
      const call = calls.get(message.id);
      calls.delete(message.id);
      if (message.ok) call?.resolve(message.value);
      else call?.reject(new Error(message.error));
    }
  };
  worker.onerror = (event: ErrorEvent) => {
    event.preventDefault();
    fail(new Error(`${setup.stage} worker crashed: ${event.message}`));
  };
  const call = (method: StageMethod) =>
    new Promise<unknown>((resolve, reject) => {
      if (terminated) return reject(new Error(`${setup.stage} stage is stopped`));
      const id = nextId++;
      calls.set(id, { resolve, reject });
      worker.postMessage({ type: "call", id, method } satisfies ToWorker);
    });
  worker.postMessage({ type: "init", setup, natsUrl, natsAuth } satisfies ToWorker);
  try {
    await ready;
  } catch (error) {
    terminated = true;
    worker.terminate();
    throw error;
  }
  let stopping: Promise<void> | undefined;
  return {
    name: setup.stage,
    status: () => call("status") as Promise<StageStatus>,
    pause: () => call("pause") as Promise<StageStatus>,
    resume: () => call("resume") as Promise<StageStatus>,
    snapshot: () => call("snapshot") as Promise<SnapshotReport>,
    metrics: () => call("metrics") as Promise<MetricsJson>,
    stop() {
      stopping ??= (async () => {
        try {
          await stopWithin(call("stop"), connectionLost, setup.stage);
        } finally {
          terminated = true;
          worker.terminate();
        }
      })();
      return stopping;
    },
    failure,
  };
}
