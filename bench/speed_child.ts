/**
 * Child-process entry of the speed benchmark: one timing job or one long scoring run per
 * process (see `child_process.ts`).
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
import { serveChildJob } from "./child_process.ts";
import { measureOrtSpeed, ortThreadsOf } from "./speed_ort.ts";

/** The job a speed child runs. */
export type SpeedChildJob =
  | { kind: "speed"; job: SpeedJob }
  | { kind: "memory"; job: MemoryRunJob };

if (import.meta.main) {
  await serveChildJob<SpeedChildJob, SpeedMeasurement | MemoryRunResult>((message) =>
    message.kind === "memory"
      ? memoryRun(message.job)
      : ortThreadsOf(message.job.backend) === null
      ? measureSpeed(message.job)
      : measureOrtSpeed(message.job, ortThreadsOf(message.job.backend)!)
  );
}
