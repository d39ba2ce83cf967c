/**
 * Keeping a `run` line alive: a stage whose Worker crashes (or whose connection closes for
 * good) is started again with back-off, and each crash and restart is logged. The supervised
 * handle is a {@link StageHandle} that forwards to the current incarnation, so the control
 * service and the progress lines never see the swap.
 *
 * @module
 */
import type { MetricsJson } from "../observe/metrics.ts";
import type { SnapshotReport, StageStatus } from "../stages/stage.ts";
import type { StageSetup } from "./stage_factory.ts";
import type { StageHandle } from "./stage_host.ts";

/** Restart back-off of {@link superviseStage}. */
export interface RestartBackoff {
  /** First delay before a restart (default 1 s). */
  initialMs: number;
  /** Longest delay (default 30 s). */
  maxMs: number;
  /** A stage that ran this long before crashing restarts after `initialMs` again (default 60 s). */
  resetAfterMs: number;
}

/** Default back-off: 1 s, doubling to 30 s; reset after a minute of healthy running. */
export const DEFAULT_RESTART_BACKOFF: RestartBackoff = {
  initialMs: 1_000,
  maxMs: 30_000,
  resetAfterMs: 60_000,
};

/** A supervised stage: a {@link StageHandle} plus how often it was restarted. */
export interface SupervisedStage extends StageHandle {
  /** Restarts so far. */
  readonly restarts: number;
}

/**
 * A failure that a restart cannot cure: the server refused this process's credentials (they
 * were revoked or rotated). The line stops with the server's reason instead of looping.
 */
export function isFatalStageFailure(error: Error): boolean {
  return /authorization violation|authentication (timeout|expired|revoked)|user authentication/i
    .test(error.message);
}

/**
 * Starts the stage of `setup` with `start` and starts it again whenever it fails, until stopped.
 * Its `failure` rejects only for a {@link isFatalStageFailure}; other crashes are handled here
 * and reported through `log`.
 */
export async function superviseStage(
  setup: StageSetup,
  start: () => Promise<StageHandle>,
  log: (line: string) => void,
  backoff: RestartBackoff = DEFAULT_RESTART_BACKOFF,
): Promise<SupervisedStage> {
  const name = `${setup.config.line}/${setup.stage}`;
  let current = await start();
  let startedAt = Date.now();
  let stopping = false;
  let restarts = 0;
  let delayMs = backoff.initialMs;
  let wake: (() => void) | undefined;
  let rejectFailure!: (error: Error) => void;
  const failure = new Promise<never>((_, reject) => (rejectFailure = reject));
  failure.catch(() => undefined);

  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  const watch = (handle: StageHandle) => {
    handle.failure.catch(async (error: Error) => {
      if (stopping || handle !== current) return;
      if (Date.now() - startedAt >= backoff.resetAfterMs) delayMs = backoff.initialMs;
      while (!stopping) {
        if (isFatalStageFailure(error)) {
          log(`${name} failed (${error.message}); not restarting: a restart cannot cure it`);
          rejectFailure(error);
          return;
        }
        const wait = delayMs < 1_000 ? `${delayMs} ms` : `${(delayMs / 1000).toFixed(1)} s`;
        log(`${name} crashed (${error.message}); restarting in ${wait}`);
        await sleep(delayMs);
        delayMs = Math.min(backoff.maxMs, delayMs * 2);
        if (stopping) return;
        try {
          current = await start();
          startedAt = Date.now();
          restarts++;
          log(`${name} restarted (restart ${restarts})`);
          watch(current);
          return;
        } catch (startError) {
          error = startError as Error;
        }
      }
    });
  };
  watch(current);

  return {
    name: setup.stage,
    get restarts() {
      return restarts;
    },
    status: (): Promise<StageStatus> => current.status(),
    pause: (): Promise<StageStatus> => current.pause(),
    resume: (): Promise<StageStatus> => current.resume(),
    snapshot: (): Promise<SnapshotReport> => current.snapshot(),
    metrics: (): Promise<MetricsJson | null> => current.metrics(),
    async stop() {
      stopping = true;
      wake?.();
      await current.stop();
    },
    failure,
  };
}
