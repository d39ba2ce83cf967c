/**
 * Runs an engine-choice helper script (`tests/helpers/*_choice.ts`) in a Deno process of its
 * own with exactly `permissions`, and returns the JSON it printed and its stderr (the one-line
 * fallback warnings the tests count).
 */
import { strict as assert } from "node:assert";

/** What a helper printed: its JSON choice on stdout, its log lines on stderr. */
export interface EngineChoiceRun {
  choice: Record<string, unknown>;
  stderr: string;
}

/** Runs `script` (a helper's file URL) with `permissions`; fails the test if it fails. */
export async function runEngineChoice(
  script: URL,
  permissions: string[],
): Promise<EngineChoiceRun> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", ...permissions, script.pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(output.stderr).trim();
  assert.equal(output.code, 0, stderr);
  return { choice: JSON.parse(new TextDecoder().decode(output.stdout)), stderr };
}
