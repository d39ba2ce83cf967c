/**
 * Worker entry of the inspection benchmark: its own wasm backend, one job at a time (see
 * `worker_pool.ts`).
 *
 * @module
 */
import { initBackend } from "../src/model/backend.ts";
import { type InspectConfig, type InspectJob, InspectJobRunner } from "./inspect_job.ts";
import { serveJobs } from "./worker_pool.ts";

/** What the inspection pool sends: the job and the run's shared settings. */
export interface InspectWorkerJob {
  /** The job to run. */
  job: InspectJob;
  /** Shared settings. */
  config: InspectConfig;
}

const ready = initBackend("wasm");
const runner = new InspectJobRunner();
serveJobs(async ({ job, config }: InspectWorkerJob) => {
  await ready;
  return await runner.run(job, config);
});
