/**
 * Benchmark dispatcher (`deno task bench <accuracy|speed> [flags]`). Each benchmark is also
 * runnable directly: `bench/accuracy.ts`, `bench/speed.ts`.
 *
 * @module
 */
import { accuracyMain } from "./accuracy.ts";
import { speedMain } from "./speed.ts";

/** Benchmarks by name. */
const BENCHMARKS: Record<string, (args: string[]) => Promise<number>> = {
  accuracy: accuracyMain,
  speed: speedMain,
};

/** Runs the benchmark named by `args[0]` with the remaining arguments; returns the exit code. */
export async function benchMain(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  const run = name === undefined ? undefined : BENCHMARKS[name];
  if (!run) {
    console.error(
      `usage: deno task bench <${Object.keys(BENCHMARKS).join("|")}> [flags] (--help for flags)`,
    );
    return 2;
  }
  return await run(rest);
}

if (import.meta.main) Deno.exit(await benchMain(Deno.args));
