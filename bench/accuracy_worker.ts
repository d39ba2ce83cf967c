/**
 * Worker entry of the accuracy benchmark: its own wasm backend, its own dataset copy, one job
 * at a time (see `worker_pool.ts`).
 *
 * @module
 */
import { initBackend } from "../src/model/backend.ts";
import { type AccuracyConfig, type AccuracyJob, AccuracyJobRunner } from "./accuracy_job.ts";
import { serveJobs } from "./worker_pool.ts";

/** What the accuracy pool sends: the job and the run's shared settings. */
export interface AccuracyWorkerJob {
  /** The (class, ratio, variant) to run. */
  job: AccuracyJob;
  /** Shared settings. */
  config: AccuracyConfig;
}

const ready = initBackend("wasm");
const runner = new AccuracyJobRunner();
serveJobs(async ({ job, config }: AccuracyWorkerJob) => {
  await ready;
  return await runner.run(job, config);
});
