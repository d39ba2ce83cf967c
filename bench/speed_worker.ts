/**
 * Worker entry of the speed benchmark: one timing job or one long scoring run per worker.
 *
 * @module
 */
import {
  measureSpeed,
  memoryRun,
  type MemoryRunJob,
  type MemoryRunResult,
  type SpeedJob,
  type SpeedMeasurement,
} from "./speed_measure.ts";
import { serveJobs } from "./worker_pool.ts";

/** A message to the speed worker. */
export type SpeedWorkerJob =
  | { kind: "speed"; job: SpeedJob }
  | { kind: "memory"; job: MemoryRunJob };

serveJobs<SpeedWorkerJob, SpeedMeasurement | MemoryRunResult>((message) =>
  message.kind === "speed" ? measureSpeed(message.job) : memoryRun(message.job)
);
