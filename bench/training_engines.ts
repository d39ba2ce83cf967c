/**
 * Training step on each engine against the PyTorch peer, in interleaved rounds
 * (`deno run -A bench/training_engines.ts [--cases default,paper] [--rounds N] [--threads 1,2]
 * [--wasm] [--name training-engines]`): each round times the peer's PDN step (`pdn_torch.py train`, its median of 3
 * steps), then ours on the same PDNs — the ORT training engine at each thread count (and
 * tfjs-wasm with `--wasm`) — and the AD² detector step on ORT and tfjs-wasm (with `--wasm`).
 * On a shared machine the load moves within seconds, so `bench:speed`'s one peer timing per
 * case can sit in a quieter (or busier) minute than ours; interleaving gives each round its
 * own ratio, and the median of those ratios is the number to quote. Writes
 * `bench/results/<name>.{json,md}` with the command and load averages.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { InferenceSchema, ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { loadOnnxRuntime } from "../src/model/onnx/runtime.ts";
import { prepareTrainingEngine, type TrainingEngine } from "../src/model/training_engine.ts";
import { OrtPdnPair, PdnPair } from "./pdn_step.ts";
import { ensureTorch, runTorchPeer } from "./torch_peer.ts";
import { speedCases } from "./speed.ts";
import type { SpeedCase } from "./speed_measure.ts";
import {
  environment,
  fixed,
  markdownTable,
  startCommit,
  type Table,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { median } from "./timing.ts";

const BATCH = 8;

/** One round's timings (ms) of every route of a case; null where a route failed. */
interface Round {
  /** Load averages when the round started. */
  load: number[];
  /** Route → median ms of its calls in this round. */
  ms: Record<string, number | null>;
}

/** A case's rounds. */
interface CaseResult {
  speedCase: SpeedCase;
  rounds: Round[];
}

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cases: { type: "string", default: "default" },
    rounds: { type: "string", default: "5" },
    threads: { type: "string", default: "1" },
    calls: { type: "string", default: "3" },
    wasm: { type: "boolean", default: false },
    name: { type: "string", default: "training-engines" },
  },
});
void startCommit();
await initBackend("wasm");
const loaded = await loadOnnxRuntime();
if (!loaded.ok) throw new Error(`ONNX Runtime cannot load here: ${loaded.reason}`);
const torchProblem = await ensureTorch((line) => console.log(line));
if (torchProblem) throw new Error(torchProblem);
const cases = values.cases.split(",").map((name) => {
  const found = speedCases().find((c) => c.name === name);
  if (!found) throw new Error(`unknown case ${name} (default, paper)`);
  return found;
});
const threadCounts = values.threads.split(",").map(Number);
const rounds = Number(values.rounds);
const calls = Number(values.calls);

/** Median ms of `calls` calls of `fn` after one warm-up call. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  await fn();
  const samples: number[] = [];
  for (let i = 0; i < calls; i++) {
    const start = performance.now();
    await fn();
    samples.push(performance.now() - start);
  }
  return median(samples);
}

const results: CaseResult[] = [];
for (const speedCase of cases) {
  const { imageSize: size, studentWidth: width } = speedCase;
  const x = tf.randomUniform([BATCH, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
  const pixels = x.dataSync() as Float32Array;
  const per = size * size * 3;
  const images = Array.from({ length: BATCH }, (_, i) => pixels.subarray(i * per, (i + 1) * per));
  const routes: [string, () => Promise<unknown>, () => Promise<void>][] = [];
  for (const threads of threadCounts) {
    const pair = await OrtPdnPair.create(loaded.ort, width, size, threads);
    routes.push([
      `PDN step, ORT ${threads}t`,
      () => pair.trainStep(pixels, BATCH),
      () => pair.dispose(),
    ]);
  }
  if (values.wasm) {
    const pair = new PdnPair(width);
    routes.push([`PDN step, tfjs-wasm`, () => Promise.resolve(pair.trainStep(x)), () => {
      pair.dispose();
      return Promise.resolve();
    }]);
  }
  const detectors: Detector[] = [];
  for (const threads of threadCounts) {
    const detector = await Detector.create(
      ModelSchema.parse({ imageSize: size, studentWidth: width }),
      TrainingSchema.parse({}),
    );
    detector.fitTeacherStats([x]);
    detectors.push(detector);
    const engine: TrainingEngine = await prepareTrainingEngine(detector, {
      engine: "onnxruntime",
      inference: InferenceSchema.parse({}),
      warn: (line) => console.warn(line),
      threads,
    });
    routes.push([`AD² step, ORT ${threads}t`, () => engine.step(images), () => engine.dispose()]);
  }
  if (values.wasm) {
    const detector = await Detector.create(
      ModelSchema.parse({ imageSize: size, studentWidth: width }),
      TrainingSchema.parse({}),
    );
    detector.fitTeacherStats([x]);
    detectors.push(detector);
    routes.push([
      "AD² step, tfjs-wasm",
      () => Promise.resolve(detector.trainStep(x)),
      () => Promise.resolve(),
    ]);
  }
  const result: CaseResult = { speedCase, rounds: [] };
  for (let r = 0; r < rounds; r++) {
    const round: Round = { load: Deno.loadavg(), ms: {} };
    const peer = await runTorchPeer("train", width, size, BATCH);
    round.ms["PDN step, PyTorch"] = peer.ok ? peer.medianMs : null;
    for (const [name, fn] of routes) {
      try {
        round.ms[name] = await timed(fn);
      } catch (error) {
        console.warn(`${name}: ${error instanceof Error ? error.message : error}`);
        round.ms[name] = null;
      }
    }
    console.log(
      `${speedCase.name} round ${r + 1}: ` +
        Object.entries(round.ms).map(([k, v]) => `${k} ${fixed(v, 0)}`).join(", ") +
        ` (load ${round.load.map((l) => l.toFixed(1)).join(" ")})`,
    );
    result.rounds.push(round);
  }
  for (const [, , dispose] of routes) await dispose();
  for (const detector of detectors) detector.dispose();
  x.dispose();
  results.push(result);
}

/** Per route: median and min over rounds, and the median of the per-round ratios to PyTorch. */
function summary(result: CaseResult): Table {
  const names = Object.keys(result.rounds[0].ms);
  const rows = names.map((name) => {
    const values = result.rounds.map((r) => r.ms[name]).filter((v): v is number => v !== null);
    const ratios = result.rounds
      .map((r) => {
        const ours = r.ms[name];
        const peer = r.ms["PDN step, PyTorch"];
        return ours !== null && peer ? ours / peer : null;
      })
      .filter((v): v is number => v !== null);
    const comparable = name.startsWith("PDN step") && name !== "PDN step, PyTorch";
    return [
      name,
      values.length ? fixed(median(values), 1) : "—",
      values.length ? fixed(Math.min(...values), 1) : "—",
      comparable && ratios.length ? `${median(ratios).toFixed(2)}×` : "",
      comparable && ratios.length
        ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×`
        : "",
    ];
  });
  return {
    headers: ["route (batch 8)", "median ms", "min ms", "ours/PyTorch (median of rounds)", "range"],
    rows,
    align: ["left", "right", "right", "right", "right"],
  };
}

const env = await environment();
const lines = [
  "# Training step: ONNX Runtime engine, tfjs-wasm and the PyTorch peer, interleaved",
  "",
  (env.command ? `Command: \`${env.command}\`. ` : "") +
  `Run: ${env.date}, commit ${env.commit}, Deno ${env.deno}, ${env.cpu}. ` +
  `Each round: the PyTorch peer's PDN step (\`pdn_torch.py train\`, median of its 3 steps, one ` +
  `thread), then each of our routes (median of ${calls} calls after a warm-up call); ratios ` +
  "are per round, then their median. PDN steps are like for like with the peer (frozen random " +
  "PDN teacher, PDN student, hard-mined p = 0.999 squared error, Adam lr 1e-4 with L2 weight " +
  "decay 1e-5); the AD² step is the product's detector step (MobileNetV2 teacher, two-headed " +
  "student, autoencoder with dropout, AD² loss), which has no peer. Load averages (1/5/15 min) " +
  "are in each round's row of the JSON; the machine is shared.",
  "",
];
for (const result of results) {
  const c = result.speedCase;
  const loads = result.rounds.map((r) => r.load[0]);
  lines.push(
    `## ${c.name} (${c.imageSize} px, ${c.studentWidth} student)`,
    "",
    `1-minute load average at the rounds' starts: ${loads.map((l) => l.toFixed(1)).join(", ")}.`,
    "",
    markdownTable(summary(result)),
    "",
  );
  console.log(`\n${c.name}\n${textTable(summary(result))}`);
}
await writeResultJson(`${values.name}.json`, { environment: env, results });
console.log(`wrote ${await writeResultText(`${values.name}.md`, lines.join("\n"))}`);
