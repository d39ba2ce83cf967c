/**
 * Chaos benchmark (`deno task bench:chaos [flags]`): the shipped demo line (`pipelines/demo.json`,
 * its stages as separate `main.ts stage …` processes, see `src/harness/crash_line.ts`) fed by a
 * camera at a fixed rate with JetStream acknowledgements, while stages are killed with SIGKILL
 * at random and the broker is killed and restarted on its store. Reports images acknowledged,
 * verdicts, lost, duplicated, the time from each restart to the next verdict, and latency from
 * capture to verdict (p50/p99). Writes `bench/results/<name>.{json,md}`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPipelineConfig, parsePipelineConfig } from "../src/pipeline/config.ts";
import { countDelivery, CrashLine, type StageProcess } from "../src/harness/crash_line.ts";
import { IMAGE_ID_HEADER } from "../src/bus/subjects.ts";
import { firstHeader, readStream } from "../src/streams/format.ts";
import { SeededRandom } from "../src/util/prng.ts";
import type { StageName } from "../src/stages/stage.ts";
import {
  type Environment,
  environment,
  fixed,
  markdownTable,
  startCommit,
  textTable,
  writeResultJson,
  writeResultText,
} from "./report.ts";
import { type LatencySummary, latencySummary } from "./speed_pipeline.ts";
import { positiveInt } from "./cli_args.ts";

/** Help text. */
const HELP = `usage: deno task bench:chaos [options]

  --images N           images the camera publishes (default 5000)
  --rate R             images per second (default 20)
  --kills N            kill -9 of a random stage, each restarted (default 10)
  --broker-restarts N  kill -9 of nats-server, restarted on its store (default 3)
  --seed N             schedule seed (default 1)
  --name NAME          results file name (default chaos)
  --help               this text`;

/** One fault and its recovery. */
export interface ChaosEvent {
  /** What was killed. */
  target: StageName | "nats-server";
  /** Seconds from the start when it was killed. */
  killedAtS: number;
  /** Seconds it was down (kill to the restart command). */
  downS: number;
  /** Seconds from the restart command to the next verdict stored, null when none came. */
  toNextVerdictS: number | null;
}

/** The results file. */
export interface ChaosReport {
  /** Machine and software. */
  environment: Environment;
  /** Settings. */
  settings: { images: number; rate: number; kills: number; brokerRestarts: number; seed: number };
  /** Images the broker acknowledged. */
  acknowledged: number;
  /** Camera publications refused (broker down): the camera knows; nothing is owed. */
  refused: number;
  /** Verdicts stored. */
  verdicts: number;
  /** Acknowledged images without a verdict. */
  lost: number;
  /** Verdicts beyond one per image. */
  duplicated: number;
  /** Verdicts by status. */
  byStatus: Record<string, number>;
  /** Faults and recoveries. */
  events: ChaosEvent[];
  /** Capture-to-verdict latency of every verdict, ms. */
  latencyMs: LatencySummary | null;
  /** Longest restart-to-next-verdict, s. */
  worstToNextVerdictS: number | null;
  /** Wall time of the run, s. */
  durationS: number;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Camera images of the committed synthetic line, cycled. */
async function fixtureImages(): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const message of readStream("fixtures/synthetic-line")) {
    if (firstHeader(message.headers, IMAGE_ID_HEADER)) out.push(message.payload);
  }
  if (out.length === 0) throw new Error("fixtures/synthetic-line has no images");
  return out;
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      images: { type: "string" },
      rate: { type: "string" },
      kills: { type: "string" },
      "broker-restarts": { type: "string" },
      seed: { type: "string" },
      name: { type: "string", default: "chaos" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const settings = {
    images: positiveInt(values.images, 5000, "images"),
    rate: positiveInt(values.rate, 20, "rate"),
    kills: positiveInt(values.kills, 10, "kills"),
    brokerRestarts: positiveInt(values["broker-restarts"], 3, "broker-restarts"),
    seed: positiveInt(values.seed, 1, "seed"),
  };
  await startCommit();
  const demo = await loadPipelineConfig("pipelines/demo.json");
  const config = parsePipelineConfig({ ...demo, line: "chaos" }, "pipelines/demo.json (chaos)");
  const payloads = await fixtureImages();
  const random = new SeededRandom(settings.seed);
  const durationMs = (settings.images / settings.rate) * 1000;
  // Faults at random times in the middle 80 % of the run, at least 8 s apart.
  const targets: ChaosEvent["target"][] = [
    ...Array.from(
      { length: settings.kills },
      () => (["ingest", "trainer", "scorer"] as const)[random.int(3)],
    ),
    ...Array.from({ length: settings.brokerRestarts }, () => "nats-server" as const),
  ];
  const slots = targets.length;
  const schedule = targets
    .map((target) => ({ target, sort: random.next() }))
    .sort((a, b) => a.sort - b.sort)
    .map(({ target }, i) => ({
      target,
      atMs: durationMs * (0.1 + (0.8 * (i + random.uniform(0.2, 0.8))) / slots),
      downMs: random.uniform(1_000, 5_000),
    }));

  console.log(
    `bench:chaos: ${settings.images} images at ${settings.rate}/s, ${settings.kills} stage kills, ` +
      `${settings.brokerRestarts} broker restarts (seed ${settings.seed})`,
  );
  const line = await CrashLine.start(config);
  const started = performance.now();
  const startedAtMs = Date.now();
  const events: (ChaosEvent & { restartedAtMs: number })[] = [];
  try {
    const stages = new Map<StageName, StageProcess>();
    for (const stage of ["ingest", "trainer", "scorer"] as const) {
      stages.set(stage, await line.startStage(stage));
    }
    const t0 = performance.now();
    const camera = (async () => {
      for (let i = 0; i < settings.images; i++) {
        const due = t0 + (i * 1000) / settings.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleep(wait);
        await line.publish(`chaos-${i}`, payloads[i % payloads.length]);
        if (i % 500 === 499) {
          console.log(`  ${i + 1} images published, ${line.acked.length} acknowledged`);
        }
      }
    })();
    for (const fault of schedule) {
      const wait = t0 + fault.atMs - performance.now();
      if (wait > 0) await sleep(wait);
      const killedAtMs = Date.now();
      if (fault.target === "nats-server") await line.killBroker();
      else await stages.get(fault.target)!.kill9();
      await sleep(fault.downMs);
      const restartedAtMs = Date.now();
      if (fault.target === "nats-server") await line.restartBroker();
      else stages.set(fault.target, await line.startStage(fault.target));
      console.log(
        `  kill -9 ${fault.target} at ${((killedAtMs - startedAtMs) / 1000).toFixed(0)} s, ` +
          `down ${(fault.downMs / 1000).toFixed(1)} s, back`,
      );
      events.push({
        target: fault.target,
        killedAtS: (killedAtMs - startedAtMs) / 1000,
        downS: (restartedAtMs - killedAtMs) / 1000,
        toNextVerdictS: null,
        restartedAtMs,
      });
    }
    await camera;
    console.log(`  camera done: ${line.acked.length} acknowledged, ${line.refused} refused`);
    let verdicts = await line.waitForVerdicts(600_000).catch(async (error) => {
      console.log(`  ${(error as Error).message}`);
      return await line.verdicts();
    });
    await sleep(10_000); // late duplicates would come with late redeliveries
    verdicts = await line.verdicts();
    const counted = countDelivery(line.acked, line.attempted, verdicts);
    const stored = verdicts.map((v) => Date.parse(v.scoredAt)).sort((a, b) => a - b);
    for (const event of events) {
      const next = stored.find((t) => t >= event.restartedAtMs);
      event.toNextVerdictS = next === undefined ? null : (next - event.restartedAtMs) / 1000;
    }
    const byStatus: Record<string, number> = {};
    for (const v of verdicts) byStatus[v.status] = (byStatus[v.status] ?? 0) + 1;
    const latencies = verdicts.flatMap((v) =>
      v.capturedAt ? [Date.parse(v.scoredAt) - Date.parse(v.capturedAt)] : []
    );
    const toNext = events.flatMap((e) => e.toNextVerdictS === null ? [] : [e.toNextVerdictS]);
    const report: ChaosReport = {
      environment: await environment(),
      settings,
      acknowledged: line.acked.length,
      refused: line.refused,
      verdicts: verdicts.length,
      lost: counted.lost.length,
      duplicated: counted.duplicated.length,
      byStatus,
      events: events.map(({ restartedAtMs: _, ...event }) => event),
      latencyMs: latencySummary(latencies),
      worstToNextVerdictS: toNext.length ? Math.max(...toNext) : null,
      durationS: (performance.now() - started) / 1000,
    };
    const summary = {
      headers: ["acknowledged", "refused", "verdicts", "lost", "duplicated", "p50 ms", "p99 ms"],
      rows: [[
        String(report.acknowledged),
        String(report.refused),
        String(report.verdicts),
        String(report.lost),
        String(report.duplicated),
        fixed(report.latencyMs?.p50, 0),
        fixed(report.latencyMs?.p99, 0),
      ]],
    };
    const faults = {
      headers: ["fault", "killed at s", "down s", "restart → next verdict s"],
      rows: report.events.map((e) => [
        `kill -9 ${e.target}`,
        fixed(e.killedAtS, 0),
        fixed(e.downS, 1),
        fixed(e.toNextVerdictS, 1),
      ]),
    };
    console.log(`\n${textTable(summary)}\n\n${textTable(faults)}`);
    const name = values.name!;
    await writeResultJson(`${name}.json`, report);
    await writeResultText(
      `${name}.md`,
      `# bench:chaos\n\n\`${report.environment.command}\` — commit ${report.environment.commit}, ` +
        `load average ${report.environment.loadAverage.map((l) => l.toFixed(2)).join(" / ")}, ` +
        `${report.durationS.toFixed(0)} s.\n\nVerdicts by status: ${
          JSON.stringify(byStatus)
        }.\n\n` +
        `${markdownTable(summary)}\n\n${markdownTable(faults)}\n`,
    );
    console.log(`\nwrote bench/results/${name}.json and .md`);
    return report.lost === 0 && report.duplicated === 0 ? 0 : 1;
  } finally {
    await line[Symbol.asyncDispose]();
  }
}

if (import.meta.main) Deno.exit(await main());
