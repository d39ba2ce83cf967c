/**
 * The one command line of the product: `deno task run` serves a line, the other subcommands
 * train, score, record, replay and simulate. `main.ts help` lists them; every subcommand takes
 * `--help`.
 *
 * @module
 */
import { COMMANDS, usage } from "./src/cli/commands.ts";

/** Dispatches `args` to a subcommand and returns the process exit code. */
export async function main(args: string[]): Promise<number> {
  const [name, ...rest] = args;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    console.log(usage());
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`unknown command "${name}"\n\n${usage()}`);
    return 2;
  }
  return await (await command.load())(rest);
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
