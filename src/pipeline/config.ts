/**
 * Loading a line's pipeline file (`pipelines/<line>.json`).
 *
 * @module
 */
import { type PipelineConfig, PipelineSchema } from "../config/schema.ts";
import { formatZodError, readJsonFile } from "../config/load.ts";

/** Directory holding one `<line>.json` per line. */
export const PIPELINES_DIR = "pipelines";

/** Path of the pipeline file of `line`. */
export function pipelineConfigPath(line: string): string {
  return `${PIPELINES_DIR}/${line}.json`;
}

/** Validates a parsed pipeline file; errors name `source` and every bad field path. */
export function parsePipelineConfig(value: unknown, source: string): PipelineConfig {
  const parsed = PipelineSchema.safeParse(value);
  if (!parsed.success) throw new Error(formatZodError(parsed.error, source));
  return parsed.data;
}

/**
 * Reads and validates a pipeline file. Errors are one line per problem, naming the file and
 * the field, e.g. `pipelines/demo.json: trainer.bufferSize: Expected number, received string`.
 */
export async function loadPipelineConfig(path: string): Promise<PipelineConfig> {
  return parsePipelineConfig(await readJsonFile(path), path);
}
