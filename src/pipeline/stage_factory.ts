/**
 * Builds a stage by name: the one place that knows which class runs which stage.
 *
 * @module
 */
import type { NatsConnection } from "nats";
import type { PipelineConfig } from "../config/schema.ts";
import { consoleStageLog, type PipelineStage, type StageName } from "../stages/stage.ts";

/** What a stage needs from its host. */
export interface StageSetup {
  /** Which stage. */
  stage: StageName;
  /** The line's configuration. */
  config: PipelineConfig;
  /** Trainer checkpoints go to `<checkpointDir>/<line>`. */
  checkpointDir: string;
}

/**
 * Creates (does not start) the stage described by `setup` on `connection`. Stage modules load
 * on demand, so an ingest-only process never loads TensorFlow.js.
 */
export async function createStage(
  setup: StageSetup,
  connection: NatsConnection,
): Promise<PipelineStage> {
  const log = consoleStageLog(setup.config.line, setup.stage);
  const common = { connection, config: setup.config, log };
  switch (setup.stage) {
    case "ingest": {
      const { IngestStage } = await import("../stages/ingest.ts");
      return new IngestStage(common);
    }
    case "trainer": {
      const { TrainerStage } = await import("../stages/trainer.ts");
      return new TrainerStage({ ...common, checkpointDir: setup.checkpointDir });
    }
    case "scorer": {
      const { ScorerStage } = await import("../stages/scorer.ts");
      return new ScorerStage(common);
    }
  }
}

/** The NATS client name of a stage (visible in the server's connection list). */
export function stageClientName(setup: StageSetup): string {
  return `inspect-${setup.config.line}-${setup.stage}`;
}
