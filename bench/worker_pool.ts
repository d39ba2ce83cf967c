/**
 * A fixed-size pool of Deno Workers running independent benchmark jobs. Under Deno tfjs runs
 * wasm single-threaded, so separate workers (each with its own wasm backend) are how the
 * benchmarks use more than one core.
 *
 * Protocol: the pool posts `{ id, job }`; the worker answers `{ id, ok: true, result }` or
 * `{ id, ok: false, error }` (see {@link serveJobs}).
 *
 * @module
 */

/** A job's outcome: its result, or the error it failed with (other jobs carry on). */
export type JobOutcome<Job, Result> =
  | { ok: true; job: Job; result: Result }
  | { ok: false; job: Job; error: string };

/** Message from a worker to the pool. */
type Reply<Result> = { id: number; ok: true; result: Result } | {
  id: number;
  ok: false;
  error: string;
};

/** Runs jobs on `size` workers started from `moduleUrl`. */
export class WorkerPool<Job, Result> {
  readonly #workers: Worker[];

  /** Starts the workers (each imports `moduleUrl`, which must call {@link serveJobs}). */
  constructor(moduleUrl: URL, size: number) {
    if (!Number.isInteger(size) || size < 1) {
      throw new RangeError(`worker count must be a positive integer, got ${size}`);
    }
    this.#workers = Array.from({ length: size }, () => new Worker(moduleUrl, { type: "module" }));
  }

  /** Number of workers. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Runs every job, each worker taking the next pending job when it finishes one. Outcomes come
   * back in job order; `onOutcome` sees each as soon as it is known. A worker that crashes fails
   * its current job and is not given more.
   */
  run(
    jobs: readonly Job[],
    onOutcome?: (outcome: JobOutcome<Job, Result>, done: number) => void,
  ): Promise<JobOutcome<Job, Result>[]> {
    const outcomes: JobOutcome<Job, Result>[] = new Array(jobs.length);
    let next = 0;
    let done = 0;
    const alive = new Set(this.#workers);
    return new Promise((resolve) => {
      if (jobs.length === 0) return resolve([]);
      const settle = (id: number, outcome: JobOutcome<Job, Result>) => {
        outcomes[id] = outcome;
        done++;
        onOutcome?.(outcome, done);
        if (done === jobs.length) resolve(outcomes);
      };
      const feed = (worker: Worker) => {
        if (next >= jobs.length) return;
        const id = next++;
        worker.onmessage = (event: MessageEvent<Reply<Result>>) => {
          const reply = event.data;
          settle(
            id,
            reply.ok
              ? { ok: true, job: jobs[id], result: reply.result }
              : { ok: false, job: jobs[id], error: reply.error },
          );
          feed(worker);
        };
        worker.onerror = (event: ErrorEvent) => {
          event.preventDefault();
          worker.terminate();
          alive.delete(worker);
          settle(id, { ok: false, job: jobs[id], error: `worker crashed: ${event.message}` });
          // The other workers take its share; fail what nobody is left to take.
          if (alive.size === 0) {
            while (next < jobs.length) {
              const lost = next++;
              settle(lost, { ok: false, job: jobs[lost], error: "no worker left" });
            }
          }
        };
        worker.postMessage({ id, job: jobs[id] });
      };
      for (const worker of alive) feed(worker);
    });
  }

  /** Stops every worker. */
  terminate(): void {
    for (const worker of this.#workers) worker.terminate();
  }
}

/** The parts of a dedicated worker's global scope the protocol uses. */
interface WorkerScope {
  onmessage: ((event: MessageEvent<{ id: number; job: unknown }>) => void) | null;
  postMessage(message: unknown): void;
}

/**
 * Called once in a worker module: answers every `{ id, job }` with `handle(job)`'s result or
 * its error. Jobs are handled one at a time, in arrival order.
 */
export function serveJobs<Job, Result>(handle: (job: Job) => Promise<Result>): void {
  const scope = globalThis as unknown as WorkerScope;
  let queue = Promise.resolve();
  scope.onmessage = (event) => {
    const { id, job } = event.data;
    queue = queue.then(async () => {
      try {
        scope.postMessage({ id, ok: true, result: await handle(job as Job) });
      } catch (error) {
        const message = error instanceof Error ? (error.stack ?? error.message) : String(error);
        scope.postMessage({ id, ok: false, error: message });
      }
    });
  };
}
