/**
 * The registry of `main.ts` subcommands. Each is loaded only when invoked, so `score` does not
 * pay for NATS and `record` does not pay for TensorFlow.js.
 *
 * @module
 */

/** A subcommand: parses its own arguments and returns an exit code. */
export type CommandMain = (args: string[]) => Promise<number>;

/** One registry entry. */
export interface CommandEntry {
  /** One line for `main.ts help`. */
  summary: string;
  /** Loads the module and returns its entry point. */
  load: () => Promise<CommandMain>;
}

/** Every subcommand of `main.ts`, by name. */
export const COMMANDS: Record<string, CommandEntry> = {
  run: {
    summary: "serve a line: ingest, online AD² trainer and scorer beside NATS (default: demo)",
    load: async () => (await import("./run.ts")).runCommand,
  },
  stage: {
    summary: "run one stage (ingest | trainer | scorer) of a line against a NATS cluster",
    load: async () => (await import("./stage.ts")).stageCommand,
  },
  simulate: {
    summary: "publish a fixture stream as a camera would, to see verdicts within a minute",
    load: async () => (await import("./simulate.ts")).simulateCommand,
  },
  verdicts: {
    summary: "follow a line's verdicts, one line each",
    load: async () => (await import("./verdicts.ts")).verdictsCommand,
  },
  train: {
    summary: "train a detector offline on a directory of images and save a checkpoint",
    load: async () => (await import("./train.ts")).trainCommand,
  },
  score: {
    summary: "score a directory of images with a checkpoint (one JSON line per image)",
    load: async () => (await import("./score.ts")).scoreCommand,
  },
  record: {
    summary: "record live NATS messages into a fixture stream directory",
    load: async () => (await import("./record.ts")).recordCommand,
  },
  replay: {
    summary: "publish a recorded fixture stream, as recorded or faster",
    load: async () => (await import("./replay.ts")).replayCommand,
  },
};

/** The top-level help text. */
export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length), 8);
  const lines = Object.entries(COMMANDS).map(([name, entry]) =>
    `  ${name.padEnd(width)}  ${entry.summary}`
  );
  return [
    'usage: deno task run            serve line "demo" (pipelines/demo.json)',
    "       deno run -A main.ts <command> [options]   (<command> --help for its options)",
    "",
    "commands:",
    ...lines,
  ].join("\n");
}
