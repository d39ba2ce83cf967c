/**
 * Our engines against the PyTorch peer in interleaved rounds (`deno task bench:engines
 * [--cases default,paper] [--work forward,train] [--rounds N] [--threads 1,2] [--calls N]
 * [--wasm] [--name engines]`): each round times the peer (`pdn_torch.py fwd` / `train`, its
 * median of 3 calls), then ours on the same PDNs — ONNX Runtime at each thread count (the
 * scoring engine's forward pass; the training engine's step) and tfjs-wasm with `--wasm` —
 * and, for `train`, the product's AD² detector step, which has no peer. On a shared machine the
 * load moves within seconds, so `bench:speed`'s one peer timing per case can sit in a quieter
 * (or busier) minute than ours; interleaving gives each round its own ratio, and the median of
 * those ratios is the number to quote. Writes `bench/results/<name>.{json,md}` with the
 * command and load averages.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as tf from "@tensorflow/tfjs";
import { InferenceSchema, ModelSchema, TrainingSchema } from "../src/config/schema.ts";
import { initBackend } from "../src/model/backend.ts";
import { Detector } from "../src/model/detector.ts";
import { loadOnnxRuntime, openSession } from "../src/model/onnx/runtime.ts";
import { prepareTrainingEngine, type TrainingEngine } from "../src/model/training_engine.ts";
import { OrtPdnPair, PDN_FORWARD_IO, pdnForwardModel, PdnPair } from "./pdn_step.ts";
import { ensureTorch, type PeerMode, runTorchPeer } from "./torch_peer.ts";
import { positiveInt } from "./cli_args.ts";
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
import { median, timeAdaptiveAsync } from "./timing.ts";

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
  /** Route → the peer mode its ratio is taken against (null: no peer). */
  peers: Record<string, PeerMode | null>;
  rounds: Round[];
}

/** A timed route: its name, the peer mode it is compared with (none: no peer), its call. */
interface Route {
  name: string;
  peer: PeerMode | null;
  call: () => Promise<unknown>;
  dispose: () => Promise<void>;
}

/** The peer's route name for `mode`. */
function peerRoute(mode: PeerMode): string {
  return mode === "fwd" ? "PDN forward, PyTorch" : "PDN step, PyTorch";
}

const WORK: Record<string, PeerMode> = { forward: "fwd", train: "train" };

const { values } = parseArgs({
  args: Deno.args,
  options: {
    cases: { type: "string", default: "default" },
    work: { type: "string", default: "forward,train" },
    rounds: { type: "string" },
    threads: { type: "string", default: "1" },
    calls: { type: "string" },
    wasm: { type: "boolean", default: false },
    name: { type: "string", default: "engines" },
  },
});
const cases = values.cases.split(",").map((name) => {
  const found = speedCases().find((c) => c.name === name);
  if (!found) throw new Error(`--cases: unknown case "${name}" (default, paper)`);
  return found;
});
const work = values.work.split(",").map((name) => {
  const mode = WORK[name];
  if (!mode) throw new Error(`--work: unknown work "${name}" (forward, train)`);
  return mode;
});
const threadCounts = values.threads.split(",").map((text) => positiveInt(text, 1, "--threads"));
const rounds = positiveInt(values.rounds, 5, "--rounds");
const calls = positiveInt(values.calls, 3, "--calls");
void startCommit();
await initBackend("wasm");
const loaded = await loadOnnxRuntime();
if (!loaded.ok) throw new Error(`ONNX Runtime cannot load here: ${loaded.reason}`);
const ort = loaded.ort;
const torchProblem = await ensureTorch((line) => console.log(line));
if (torchProblem) throw new Error(torchProblem);

/** Median ms of `calls` calls of `fn` after one warm-up call. */
async function timed(fn: () => Promise<unknown>): Promise<number> {
  return (await timeAdaptiveAsync(fn, { maxCalls: calls, budgetMs: Infinity })).medianMs;
}

/** The forward-pass routes of a case: the peer's teacher PDN on ORT (and tfjs-wasm). */
async function forwardRoutes(speedCase: SpeedCase, x: tf.Tensor4D): Promise<Route[]> {
  const { imageSize: size, studentWidth: width } = speedCase;
  const pair = new PdnPair(width);
  const model = pdnForwardModel(pair, size);
  const pixels = x.dataSync() as Float32Array;
  const routes: Route[] = [];
  for (const threads of threadCounts) {
    const session = await openSession(ort, model, { threads, device: "cpu" });
    const feeds = { [PDN_FORWARD_IO.images]: new ort.Tensor("float32", pixels, x.shape) };
    routes.push({
      name: `PDN forward, ORT ${threads}t`,
      peer: "fwd",
      call: () => session.run(feeds),
      dispose: () => session.release(),
    });
  }
  if (values.wasm) {
    routes.push({
      name: "PDN forward, tfjs-wasm",
      peer: "fwd",
      call: () => Promise.resolve(pair.forward(x)),
      dispose: () => Promise.resolve(pair.dispose()),
    });
  } else {
    pair.dispose(); // the graph holds copies of its weights
  }
  return routes;
}

/**
 * The training routes of a case: the peer's PDN step on the ORT training engine (and
 * tfjs-wasm), and the product's AD² detector step on each engine (no peer).
 */
async function trainRoutes(speedCase: SpeedCase, x: tf.Tensor4D): Promise<Route[]> {
  const { imageSize: size, studentWidth: width } = speedCase;
  const pixels = x.dataSync() as Float32Array;
  const per = size * size * 3;
  const images = Array.from({ length: BATCH }, (_, i) => pixels.subarray(i * per, (i + 1) * per));
  const routes: Route[] = [];
  for (const threads of threadCounts) {
    const pair = await OrtPdnPair.create(ort, width, size, threads);
    routes.push({
      name: `PDN step, ORT ${threads}t`,
      peer: "train",
      call: () => pair.trainStep(pixels, BATCH),
      dispose: () => pair.dispose(),
    });
  }
  if (values.wasm) {
    const pair = new PdnPair(width);
    routes.push({
      name: "PDN step, tfjs-wasm",
      peer: "train",
      call: () => Promise.resolve(pair.trainStep(x)),
      dispose: () => Promise.resolve(pair.dispose()),
    });
  }
  const newDetector = async () => {
    const detector = await Detector.create(
      ModelSchema.parse({ imageSize: size, studentWidth: width }),
      TrainingSchema.parse({}),
    );
    detector.fitTeacherStats([x]);
    return detector;
  };
  for (const threads of threadCounts) {
    const detector = await newDetector();
    const engine: TrainingEngine = await prepareTrainingEngine(detector, {
      engine: "onnxruntime",
      inference: InferenceSchema.parse({}),
      warn: (line) => console.warn(line),
      threads,
    });
    routes.push({
      name: `AD² step, ORT ${threads}t`,
      peer: null,
      call: () => engine.step(images),
      dispose: async () => {
        await engine.dispose();
        detector.dispose();
      },
    });
  }
  if (values.wasm) {
    const detector = await newDetector();
    routes.push({
      name: "AD² step, tfjs-wasm",
      peer: null,
      call: () => Promise.resolve(detector.trainStep(x)),
      dispose: () => Promise.resolve(detector.dispose()),
    });
  }
  return routes;
}

const results: CaseResult[] = [];
for (const speedCase of cases) {
  const { imageSize: size, studentWidth: width } = speedCase;
  const x = tf.randomUniform([BATCH, size, size, 3], 0, 1, "float32", 7) as tf.Tensor4D;
  const routes: Route[] = [];
  if (work.includes("fwd")) routes.push(...await forwardRoutes(speedCase, x));
  if (work.includes("train")) routes.push(...await trainRoutes(speedCase, x));
  const peers: Record<string, PeerMode | null> = {};
  for (const mode of work) peers[peerRoute(mode)] = null;
  for (const route of routes) peers[route.name] = route.peer;
  const result: CaseResult = { speedCase, peers, rounds: [] };
  for (let r = 0; r < rounds; r++) {
    const round: Round = { load: Deno.loadavg(), ms: {} };
    for (const mode of work) {
      const peer = await runTorchPeer(mode, width, size, BATCH);
      if (!peer.ok) console.warn(`${peerRoute(mode)}: ${peer.reason}`);
      round.ms[peerRoute(mode)] = peer.ok ? peer.medianMs : null;
    }
    for (const route of routes) {
      try {
        round.ms[route.name] = await timed(route.call);
      } catch (error) {
        console.warn(`${route.name}: ${error instanceof Error ? error.message : error}`);
        round.ms[route.name] = null;
      }
    }
    console.log(
      `${speedCase.name} round ${r + 1}: ` +
        Object.entries(round.ms).map(([k, v]) => `${k} ${fixed(v, 0)}`).join(", ") +
        ` (load ${round.load.map((l) => l.toFixed(1)).join(" ")})`,
    );
    result.rounds.push(round);
  }
  for (const route of routes) await route.dispose();
  x.dispose();
  results.push(result);
}
/** Per route: median and min over rounds, and the median of the per-round ratios to its peer. */
function summary(result: CaseResult): Table {
  const rows = Object.entries(result.peers).map(([name, mode]) => {
    const values = result.rounds.map((r) => r.ms[name]).filter((v): v is number => v !== null);
    const ratios = mode === null ? [] : result.rounds
      .map((r) => {
        const ours = r.ms[name];
        const peer = r.ms[peerRoute(mode)];
        return ours !== null && peer ? ours / peer : null;
      })
      .filter((v): v is number => v !== null);
    return [
      name,
      values.length ? fixed(median(values), 1) : "—",
      values.length ? fixed(Math.min(...values), 1) : "—",
      ratios.length ? `${median(ratios).toFixed(2)}×` : "",
      ratios.length ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}×` : "",
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
  "# Engines against the PyTorch peer, interleaved: PDN forward and training step",
  "",
  (env.command ? `Command: \`${env.command}\`. ` : "") +
  `Run: ${env.date}, commit ${env.commit}, Deno ${env.deno}, ${env.cpu}. ` +
  "Each round: the PyTorch peer (`pdn_torch.py fwd` / `train`, median of its 3 calls, one " +
  `thread), then each of our routes (median of ${calls} calls after a warm-up call); ratios ` +
  "are per round, then their median. Forward: the frozen random PDN teacher, as the peer's " +
  "`fwd` (ORT: the scoring engine on the graph exported from the tfjs weights). PDN steps are " +
  "like for like with the peer (frozen random PDN teacher, PDN student, hard-mined p = 0.999 " +
  "squared error, Adam lr 1e-4 with L2 weight decay 1e-5; ORT: the training engine); the AD² " +
  "step is the product's detector step (MobileNetV2 teacher, two-headed student, autoencoder " +
  "with dropout, AD² loss), which has no peer. Load averages (1/5/15 min) are in each round's " +
  "row of the JSON; the machine is shared.",
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
