/**
 * What every pipeline stage exposes to its host (a Worker, or the process itself) and, through
 * the host, to the control service and the progress log.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import type { PipelineConfig } from "../config/schema.ts";

/** The three stages of a line. */
export const STAGE_NAMES = ["ingest", "trainer", "scorer"] as const;
/** A stage name. */
export type StageName = typeof STAGE_NAMES[number];

/** Status of one stage, as `status` endpoints and progress lines report it. */
export interface StageStatus {
  /** Which stage. */
  stage: StageName;
  /** Line id. */
  line: string;
  /** Messages taken from the stage's input since it started. */
  imagesIn: number;
  /** Messages it produced: decoded images + rejections (ingest), verdicts (scorer), trained images (trainer). */
  imagesOut: number;
  /** Messages waiting for this stage in JetStream (pending + unacknowledged), null if unknown. */
  backlog: number | null;
  /** Training steps (trainer) or null. */
  step: number | null;
  /** Latest total loss (trainer) or null. */
  loss: number | null;
  /** Current model version (trainer: last published; scorer: in use), null before the first. */
  modelVersion: number | null;
  /** True once a model version exists (warm-up over). */
  warm: boolean;
  /** True while training is paused (trainer only). */
  paused: boolean;
  /** Stage-specific counters. */
  details: Record<string, number | string | null>;
}

/** What the trainer's snapshot did. */
export interface SnapshotReport {
  /** Step of the snapshot. */
  step: number;
  /** Version published, or null when still warming up (below `warmupSteps`). */
  modelVersion: number | null;
  /** Checkpoint directory written, or null before the first step. */
  checkpoint: string | null;
}

/** A running stage. */
export interface PipelineStage {
  /** Which stage. */
  readonly name: StageName;
  /** Connects its consumers and starts processing. */
  start(): Promise<void>;
  /** Current status. */
  status(): Promise<StageStatus>;
  /** Stops taking input, finishes and acknowledges what is in hand, saves state. */
  stop(): Promise<void>;
  /** Pauses training (trainer only). */
  pause?(): Promise<StageStatus>;
  /** Resumes training (trainer only). */
  resume?(): Promise<StageStatus>;
  /** Publishes a version and saves a checkpoint now (trainer only). */
  snapshot?(): Promise<SnapshotReport>;
}

/** Where a stage's progress and problems go. */
export interface StageLog {
  /** Informational line. */
  info(message: string): void;
  /** Something went wrong but the stage carries on. */
  warn(message: string): void;
}

/** Construction options every stage takes. */
export interface StageOptions {
  /** Open connection (the stage does not close it). */
  connection: NatsConnection;
  /** The line's configuration. */
  config: PipelineConfig;
  /** Where progress and problems go. */
  log: StageLog;
}

/** A {@link StageLog} writing `[line/stage] message` to the console. */
export function consoleStageLog(line: string, stage: StageName): StageLog {
  const prefix = `[${line}/${stage}]`;
  return {
    info: (message) => console.log(`${prefix} ${message}`),
    warn: (message) => console.warn(`${prefix} ${message}`),
  };
}

/** Error text of anything thrown. */
export function errorText(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
