/**
 * Generates the committed fixture streams `fixtures/synthetic-line` and `fixtures/bad-input`
 * from fixed seeds. Same seeds, same bytes: `--check` regenerates into a temporary
 * directory and compares byte for byte with what is committed.
 *
 * usage: deno run --allow-read --allow-write --allow-ffi --allow-env --allow-sys \
 *          scripts/make_fixtures.ts [--out DIR] [--force] [--check]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BAD_INPUT_DEFAULTS, buildBadInputStream } from "../src/streams/bad_input.ts";
import {
  buildSyntheticLineStream,
  SYNTHETIC_LINE_DEFAULTS,
} from "../src/streams/synthetic_line.ts";
import { assertStreamDirWritable, STREAM_FILES } from "../src/streams/format.ts";

const HELP = `usage: scripts/make_fixtures.ts [--out DIR] [--force] [--check]

Writes DIR/synthetic-line (${SYNTHETIC_LINE_DEFAULTS.count} part images, ${
  SYNTHETIC_LINE_DEFAULTS.anomalyRatio * 100
} % anomalous) and DIR/bad-input.

  --out DIR  fixtures directory (default: the repository's fixtures/)
  --force    overwrite existing streams
  --check    regenerate into a temporary directory and compare with DIR byte for byte`;

/** Names of the generated streams. */
const STREAMS = ["synthetic-line", "bad-input"] as const;

async function generate(root: string, force: boolean, command: string): Promise<void> {
  // Refuse up front, not after the first stream has been rewritten.
  for (const stream of STREAMS) await assertStreamDirWritable(`${root}/${stream}`, force);
  let last = 0;
  const info = await buildSyntheticLineStream(
    `${root}/synthetic-line`,
    SYNTHETIC_LINE_DEFAULTS,
    {
      force,
      createdBy: command,
      onProgress: (done) => {
        if (done - last >= 50 || done === SYNTHETIC_LINE_DEFAULTS.count) {
          last = done;
          console.error(`synthetic-line: ${done}/${SYNTHETIC_LINE_DEFAULTS.count}`);
        }
      },
    },
  );
  console.error(`synthetic-line: ${info.count} messages`);
  const bad = await buildBadInputStream(`${root}/bad-input`, BAD_INPUT_DEFAULTS, {
    force,
    createdBy: command,
  });
  console.error(`bad-input: ${bad.count} messages`);
}

async function sizeReport(root: string): Promise<string> {
  const lines: string[] = [];
  let total = 0;
  for (const stream of STREAMS) {
    let bytes = 0;
    for (const file of STREAM_FILES) bytes += (await Deno.stat(`${root}/${stream}/${file}`)).size;
    total += bytes;
    lines.push(`${stream}: ${(bytes / 1024).toFixed(1)} KiB`);
  }
  lines.push(`total: ${(total / 1024).toFixed(1)} KiB`);
  return lines.join("\n");
}

async function sameBytes(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  return x.length === y.length && x.every((v, i) => v === y[i]);
}

async function main(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      out: { type: "string", default: new URL("../fixtures", import.meta.url).pathname },
      force: { type: "boolean", default: false },
      check: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
    strict: true,
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  // Recorded in stream.json; fixed text so regenerating does not change the bytes.
  const command = "deno task fixtures";
  if (!values.check) {
    await generate(values.out, values.force, command);
    console.log(await sizeReport(values.out));
    return 0;
  }
  const temp = await Deno.makeTempDir({ prefix: "fixtures-check-" });
  try {
    await generate(temp, false, command);
    const differing: string[] = [];
    for (const stream of STREAMS) {
      for (const file of STREAM_FILES) {
        const committed = `${values.out}/${stream}/${file}`;
        if (!(await sameBytes(committed, `${temp}/${stream}/${file}`))) differing.push(committed);
      }
    }
    if (differing.length > 0) {
      console.error(`fixtures differ from a fresh generation:\n  ${differing.join("\n  ")}`);
      return 1;
    }
    console.log(`fixtures reproduce byte for byte\n${await sizeReport(values.out)}`);
    return 0;
  } finally {
    await Deno.remove(temp, { recursive: true });
  }
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (error) {
    console.error(`make_fixtures: ${error instanceof Error ? error.message : error}`);
    Deno.exit(1);
  }
}
