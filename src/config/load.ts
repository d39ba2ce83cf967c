/**
 * Reading JSON configuration files and turning zod errors into messages that name the file
 * and the field.
 *
 * @module
 */
import type { z } from "zod";

/** Reads and parses a JSON file; errors name the file. */
export async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (error) {
    throw new Error(`${path}: cannot read (${(error as Error).message})`);
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new Error(`${path}: invalid JSON (${(error as Error).message})`);
  }
}

/**
 * One line per problem: `file: field.path: message`, e.g.
 * `pipelines/demo.json: model.imageSize: must be a multiple of 32`.
 */
export function formatZodError(error: z.ZodError, source: string, prefix?: string): string {
  return error.issues.map((issue) => {
    const path = [...(prefix ? [prefix] : []), ...issue.path].join(".") || "(root)";
    return `${source}: ${path}: ${issue.message}`;
  }).join("\n");
}
