/**
 * Crash harness (the crash tests and `bench:chaos`): a line whose stages run as separate OS
 * processes (`main.ts stage …`) against a private `nats-server` with a file store (or a
 * JetStream cluster of several on loopback), so that any of them, a broker node included, can
 * be killed with SIGKILL and started again on the same store and port. A camera publishes with JetStream acknowledgements and remembers which
 * images the broker acknowledged: those are the images the line owes exactly one verdict.
 * With `KEEP_CRASH_DIR=1` the work directory (stage logs, broker store) is kept for a look.
 *
 * @module
 */
import { headers, type JetStreamClient, type JetStreamManager, type NatsConnection } from "nats";
import { connectNats, natsTargetOf } from "../bus/connection.ts";
import type { PipelineConfig } from "../config/schema.ts";
import { ModelStore, type ModelVersionRecord } from "../bus/model_store.ts";
import {
  CAPTURED_AT_HEADER,
  IMAGE_ID_HEADER,
  imageSubject,
  MODEL_VERSIONS_BUCKET,
  modelVersionKey,
  streamNames,
} from "../bus/subjects.ts";
import { parseVerdict, type Verdict } from "../bus/verdict.ts";
import type { StageName, StageStatus } from "../stages/stage.ts";
import { type NatsServerHandle, startNatsServer } from "../pipeline/nats_server.ts";
import { control, readStreamMessages, waitUntil } from "./bus.ts";

/** `main.ts`, resolved from this module. */
const MAIN_TS = new URL("../../main.ts", import.meta.url).pathname;

/** One stage process. */
export interface StageProcess {
  /** Which stage. */
  readonly stage: StageName;
  /** Its OS process id. */
  readonly pid: number;
  /** Resolves with the exit code when the process ends. */
  readonly exited: Promise<number>;
  /** SIGKILL: no clean-up of any kind. */
  kill9(): Promise<void>;
  /** SIGTERM: the graceful stop. */
  stop(): Promise<number>;
}

/** Options of {@link CrashLine.start}. */
export interface CrashLineOptions {
  /** Extra environment of every stage process (e.g. test-only fault injection). */
  env?: Record<string, string>;
  /** Broker nodes: 1 (default) is one server; 3 is a JetStream cluster on loopback. */
  nodes?: number;
}

/** One broker node: how to start it again on the same port and store. */
interface BrokerNode {
  handle: NatsServerHandle;
  port: number;
  storeDir: string;
  args: string[];
}

/** A port nothing listens on now (the OS picks it; closed again at once). */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Starts `count` nodes: one plain server, or a JetStream cluster named `inspect`. */
async function startBroker(dir: string, count: number): Promise<BrokerNode[]> {
  if (count === 1) {
    const handle = await startNatsServer({ storeDir: `${dir}/nats` });
    return [{ handle, port: handle.port, storeDir: `${dir}/nats`, args: [] }];
  }
  const clients = Array.from({ length: count }, freePort);
  const routes = Array.from({ length: count }, freePort);
  const specs = clients.map((port, i) => ({
    port,
    storeDir: `${dir}/nats-${i + 1}`,
    args: [
      "--name",
      `n${i + 1}`,
      "--cluster_name",
      "inspect",
      "--cluster",
      `nats://127.0.0.1:${routes[i]}`,
      "--routes",
      routes.filter((_, j) => j !== i).map((p) => `nats://127.0.0.1:${p}`).join(","),
    ],
  }));
  return await Promise.all(specs.map(async (spec) => ({
    ...spec,
    handle: await startNatsServer({ storeDir: spec.storeDir, port: spec.port, args: spec.args }),
  })));
}

/** A line of stage processes on a restartable broker. */
export class CrashLine implements AsyncDisposable {
  /** The line's configuration (written to `pipeline.json` in the work directory). */
  readonly config: PipelineConfig;
  /** Work directory: pipeline file, broker store, checkpoints, stage logs. */
  readonly dir: string;
  /** Image-Ids the broker acknowledged, in order. */
  readonly acked: string[] = [];
  /** Every Image-Id the camera tried to publish (acknowledged or not). */
  readonly attempted: string[] = [];
  /** Camera publications that failed (broker down): the camera knows, nothing is owed. */
  refused = 0;
  readonly #nodes: BrokerNode[];
  #nc?: NatsConnection;
  readonly #env: Record<string, string>;
  readonly #processes = new Set<StageProcess>();
  #logs = 0;

  private constructor(
    config: PipelineConfig,
    dir: string,
    nodes: BrokerNode[],
    env: Record<string, string>,
  ) {
    this.config = config;
    this.dir = dir;
    this.#nodes = nodes;
    this.#env = env;
  }

  /** Writes the pipeline file and starts the broker (no stage yet). */
  static async start(config: PipelineConfig, options: CrashLineOptions = {}): Promise<CrashLine> {
    const dir = await Deno.makeTempDir({ prefix: "crash-line-" });
    // Several stage processes on one machine: each serves its metrics on a free port.
    const file = { ...config, metrics: { ...config.metrics, port: 0 } };
    await Deno.writeTextFile(`${dir}/pipeline.json`, JSON.stringify(file, null, 2));
    const nodes = await startBroker(dir, options.nodes ?? 1);
    const line = new CrashLine(config, dir, nodes, options.env ?? {});
    line.#nc = await connectNats(natsTargetOf(line.url), {
      name: `crash-${config.line}-camera`,
      reconnect: true,
    });
    // A cluster answers JetStream requests once it has elected a meta leader.
    await waitUntil(
      async () =>
        await line.jsm().then((jsm) => jsm.getAccountInfo()).then(() => true, () => false),
      60_000,
      "JetStream to answer",
    );
    return line;
  }

  /** Broker URL: every node, comma-separated (the same across restarts). */
  get url(): string {
    return this.#nodes.map((node) => `nats://127.0.0.1:${node.port}`).join(",");
  }

  /** The test's own connection (reconnects across broker restarts). */
  get nc(): NatsConnection {
    return this.#nc!;
  }

  /** JetStream client of {@link nc}. */
  get js(): JetStreamClient {
    return this.nc.jetstream();
  }

  /** JetStream manager of {@link nc}. */
  jsm(): Promise<JetStreamManager> {
    return this.nc.jetstreamManager();
  }

  /** Starts `main.ts stage <stage>` and resolves once its control service answers. */
  async startStage(stage: StageName, timeoutMs = 120_000): Promise<StageProcess> {
    const log = await Deno.open(`${this.dir}/${stage}-${++this.#logs}.log`, {
      write: true,
      create: true,
    });
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        MAIN_TS,
        "stage",
        stage,
        "--config",
        `${this.dir}/pipeline.json`,
        "--server",
        this.url,
        "--checkpoints",
        `${this.dir}/checkpoints`,
        "--progress",
        "0",
      ],
      env: { NO_COLOR: "1", ...this.#env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const copy = async (stream: ReadableStream<Uint8Array>) => {
      for await (const chunk of stream) await log.write(chunk).catch(() => undefined);
    };
    const copied = Promise.all([copy(child.stdout), copy(child.stderr)]);
    const exited = child.status.then(async (status) => {
      await copied.catch(() => undefined);
      log.close();
      this.#processes.delete(process);
      return status.code;
    });
    const process: StageProcess = {
      stage,
      pid: child.pid,
      exited,
      async kill9() {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        await exited;
      },
      async stop() {
        try {
          child.kill("SIGTERM");
        } catch {
          // already gone
        }
        return await exited;
      },
    };
    this.#processes.add(process);
    let early: number | null = null;
    exited.then((code) => (early = code));
    await waitUntil(
      async () => {
        if (early !== null) {
          throw new Error(`${stage} exited with ${early}: ${await this.log(stage)}`);
        }
        return await this.status(stage).then(() => true, () => false);
      },
      timeoutMs,
      `the ${stage} process to answer`,
    );
    return process;
  }

  /** The newest log of a stage's processes (for failure messages). */
  async log(stage: StageName): Promise<string> {
    const names: string[] = [];
    for await (const entry of Deno.readDir(this.dir)) {
      if (entry.name.startsWith(`${stage}-`)) names.push(entry.name);
    }
    names.sort((a, b) => Number(a.split(/[-.]/)[1]) - Number(b.split(/[-.]/)[1]));
    const last = names.at(-1);
    return last ? (await Deno.readTextFile(`${this.dir}/${last}`)).slice(-4000) : "(no log)";
  }

  /** Every log line of every process of `stage` so far. */
  async logs(stage: StageName): Promise<string> {
    let text = "";
    for await (const entry of Deno.readDir(this.dir)) {
      if (entry.name.startsWith(`${stage}-`)) {
        text += await Deno.readTextFile(`${this.dir}/${entry.name}`);
      }
    }
    return text;
  }

  /** A stage's status through its control service (short timeout: the stage may be dead). */
  async status(stage: StageName): Promise<StageStatus> {
    const reply = await this.nc.request(
      `inspect.${this.config.line}.control.${stage}.status`,
      undefined,
      { timeout: 2_000 },
    );
    return JSON.parse(new TextDecoder().decode(reply.data)) as StageStatus;
  }

  /** A control request with the harness's usual timeout. */
  control<T>(stage: StageName, action: string): Promise<T> {
    return control<T>(this.nc, this.config.line, stage, action);
  }

  /** Kills a broker node (the only one by default) with SIGKILL. */
  async killBroker(node = 0): Promise<void> {
    await this.#nodes[node].handle.kill();
  }

  /** Starts a broker node again on the same port, store and cluster routes. */
  async restartBroker(node = 0): Promise<void> {
    const { port, storeDir, args } = this.#nodes[node];
    this.#nodes[node].handle = await startNatsServer({ storeDir, port, args });
  }

  /**
   * Publishes one image as a camera that wants the broker's acknowledgement: on success the
   * image is owed a verdict; a failure (broker down, stream full) is counted and not retried.
   */
  async publish(imageId: string, payload: Uint8Array): Promise<boolean> {
    const h = headers();
    h.set(IMAGE_ID_HEADER, imageId);
    h.set(CAPTURED_AT_HEADER, new Date().toISOString());
    this.attempted.push(imageId);
    try {
      await this.js.publish(imageSubject(this.config.line), payload, {
        headers: h,
        msgID: imageId,
        timeout: 2_000,
      });
      this.acked.push(imageId);
      return true;
    } catch {
      this.refused++;
      return false;
    }
  }

  /** Every verdict stored on the line, in stream order. */
  async verdicts(): Promise<Verdict[]> {
    const stored = await readStreamMessages(
      await this.jsm(),
      streamNames(this.config.line).verdicts,
    );
    return stored.map((message) => parseVerdict(message.data));
  }

  /** Waits until every acknowledged image has a verdict (throws after `timeoutMs`). */
  async waitForVerdicts(timeoutMs: number): Promise<Verdict[]> {
    let verdicts: Verdict[] = [];
    const owed = new Set(this.acked);
    await waitUntil(
      async () => {
        try {
          verdicts = await this.verdicts();
        } catch {
          return false; // broker restarting
        }
        const answered = new Set(verdicts.map((v) => v.imageId));
        return [...owed].every((id) => answered.has(id));
      },
      timeoutMs,
      `a verdict for each of the ${owed.size} acknowledged images`,
    ).catch((error) => {
      const answered = new Set(verdicts.map((v) => v.imageId));
      const missing = [...owed].filter((id) => !answered.has(id));
      throw new Error(`${error.message}; missing ${missing.slice(0, 10).join(", ")}`);
    });
    return verdicts;
  }

  /** The history of the line's model pointer (every version published, oldest first). */
  async versionHistory(): Promise<ModelVersionRecord[]> {
    const kv = await this.js.views.kv(MODEL_VERSIONS_BUCKET);
    const out: ModelVersionRecord[] = [];
    const iterator = await kv.history({ key: modelVersionKey(this.config.line) });
    for await (const entry of iterator) {
      if (entry.operation === "PUT") out.push(entry.json<ModelVersionRecord>());
    }
    return out;
  }

  /** The line's model store. */
  models(): Promise<ModelStore> {
    return ModelStore.open(this.js, this.config.line, this.config.streams.replicas);
  }

  /** Kills every stage process, stops the broker and removes the work directory. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all([...this.#processes].map((p) => p.kill9()));
    await this.#nc?.close().catch(() => undefined);
    await Promise.all(this.#nodes.map((node) => node.handle.stop()));
    if (!Deno.env.get("KEEP_CRASH_DIR")) {
      await Deno.remove(this.dir, { recursive: true }).catch(() => undefined);
    } else {
      console.log(`crash line kept in ${this.dir}`);
    }
  }
}

/** How a line kept its promise, counted. */
export interface DeliveryCount {
  /** Acknowledged images without a verdict. */
  lost: string[];
  /** Images with more than one verdict (one entry per extra verdict). */
  duplicated: string[];
  /** Verdicts of Image-Ids the camera never published. */
  unexpected: string[];
  /** The (first) verdict of each image by Image-Id. */
  byId: Map<string, Verdict>;
}

/**
 * Counts lost, duplicated and unexpected verdicts: every acknowledged image is owed exactly
 * one; an image whose acknowledgement was lost in a broker crash may have been stored and gets
 * at most one.
 */
export function countDelivery(
  acked: readonly string[],
  attempted: readonly string[],
  verdicts: readonly Verdict[],
): DeliveryCount {
  const published = new Set(attempted);
  const byId = new Map<string, Verdict>();
  const duplicated: string[] = [];
  const unexpected: string[] = [];
  for (const verdict of verdicts) {
    const id = verdict.imageId ?? `(seq ${verdict.imageSeq})`;
    if (!published.has(id)) unexpected.push(id);
    if (byId.has(id)) duplicated.push(id);
    else byId.set(id, verdict);
  }
  const lost = acked.filter((id) => !byId.has(id));
  return { lost, duplicated, unexpected, byId };
}

/**
 * Checks the line's promise (see {@link countDelivery}); throws naming what broke. Returns the
 * verdict of each image by Image-Id.
 */
export function exactlyOncePerImage(
  acked: readonly string[],
  attempted: readonly string[],
  verdicts: readonly Verdict[],
): Map<string, Verdict> {
  const { lost, duplicated, unexpected, byId } = countDelivery(acked, attempted, verdicts);
  const problems = [
    lost.length ? `${lost.length} without a verdict (${lost.slice(0, 5)})` : "",
    duplicated.length ? `${duplicated.length} extra verdicts (${duplicated.slice(0, 5)})` : "",
    unexpected.length
      ? `${unexpected.length} verdicts for images never published (${unexpected.slice(0, 5)})`
      : "",
  ].filter((p) => p !== "");
  if (problems.length > 0) throw new Error(`exactly once broken: ${problems.join("; ")}`);
  return byId;
}
