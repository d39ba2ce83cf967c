/**
 * Regenerates `src/bus/verdict.schema.json` from the zod source:
 * `deno run --allow-write src/bus/write_verdict_schema.ts`. A test fails when they differ.
 *
 * @module
 */
import { VERDICT_SCHEMA_URL, verdictJsonSchema } from "./verdict.ts";

/** The file's exact text: pretty JSON with a trailing newline (what `deno fmt` keeps). */
export function verdictSchemaText(): string {
  return JSON.stringify(verdictJsonSchema(), null, 2) + "\n";
}

if (import.meta.main) {
  await Deno.writeTextFile(VERDICT_SCHEMA_URL, verdictSchemaText());
  console.log(`wrote ${VERDICT_SCHEMA_URL.pathname}`);
}
