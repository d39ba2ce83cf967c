/**
 * End-to-end harness (the e2e tests and `bench:stream`): one line served as `deno task run`
 * serves it (`runPipeline`, every stage in its own Worker) against a private nats-server, fed
 * by replaying fixture streams, and read back from the line's verdict and training streams.
 * Ground truth comes from the stream's manifest, which is never published.
 *
 * @module
 */
import type { JetStreamManager, NatsConnection } from "nats";
import { connectNats, natsTargetOf } from "../bus/connection.ts";
import type { PipelineConfig, PipelineConfigInput } from "../config/schema.ts";
import { streamNames } from "../bus/subjects.ts";
import { parseVerdict, type Verdict } from "../bus/verdict.ts";
import { parseTrainingEvent, type TrainingEvent } from "../bus/training_event.ts";
import { loadPipelineConfig, parsePipelineConfig } from "../pipeline/config.ts";
import { type RunningPipeline, runPipeline } from "../pipeline/run.ts";
import type { StageStatus } from "../stages/stage.ts";
import type { ManifestEntry } from "../streams/format.ts";
import { replayStream } from "../streams/replay.ts";
import { startTestNatsServer, type TestNatsServer } from "./nats_server.ts";
import { control, readStreamMessages, waitForStreamCount, waitUntil } from "./bus.ts";

/** Longest wait for any one pipeline milestone; a lost message fails the test, never hangs it. */
export const MILESTONE_TIMEOUT_MS = 180_000;

/**
 * The shipped demo line (`pipelines/demo.json`) with test overrides merged section by section,
 * so the test runs the product's model and only changes what it states.
 */
export async function demoConfigWith(
  line: string,
  overrides: Partial<Record<keyof PipelineConfigInput, Record<string, unknown>>>,
): Promise<PipelineConfig> {
  const demo = await loadPipelineConfig("pipelines/demo.json");
  const merged: Record<string, unknown> = { ...demo, line };
  for (const [section, values] of Object.entries(overrides)) {
    merged[section] = { ...(merged[section] as Record<string, unknown>), ...values };
  }
  return parsePipelineConfig(merged, `pipelines/demo.json + test overrides (${line})`);
}

/** The Image-Id suffix of replay pass `pass` (1-based), as `simulate` names passes. */
export function passSuffix(pass: number): string {
  return pass === 1 ? "" : `-p${pass}`;
}

/** The recorded Image-Id behind a replayed one (`x-p3` → `x`). */
export function recordedImageId(imageId: string): string {
  return imageId.replace(/-p\d+$/, "");
}

/** A line served by a running pipeline on a private server, plus a client connection. */
export class E2eLine implements AsyncDisposable {
  /** The line's configuration. */
  readonly config: PipelineConfig;
  /** Test client connection. */
  readonly nc: NatsConnection;
  /** JetStream manager of {@link nc}. */
  readonly jsm: JetStreamManager;
  /** Image messages published so far (all passes). */
  published = 0;
  readonly #server: TestNatsServer;
  readonly #pipeline: RunningPipeline;
  readonly #checkpointDir: string;

  private constructor(
    config: PipelineConfig,
    server: TestNatsServer,
    nc: NatsConnection,
    jsm: JetStreamManager,
    pipeline: RunningPipeline,
    checkpointDir: string,
  ) {
    this.config = config;
    this.#server = server;
    this.nc = nc;
    this.jsm = jsm;
    this.#pipeline = pipeline;
    this.#checkpointDir = checkpointDir;
  }

  /** Starts a nats-server and the line's three stages, each in a Worker. */
  static async start(config: PipelineConfig): Promise<E2eLine> {
    const server = await startTestNatsServer();
    const checkpointDir = await Deno.makeTempDir({ prefix: "e2e-checkpoints-" });
    try {
      const pipeline = await runPipeline({
        config,
        natsUrl: server.url,
        workers: true,
        checkpointDir,
        progressIntervalMs: 0,
      });
      const nc = await connectNats(natsTargetOf(server.url), {
        name: `e2e-${config.line}-client`,
        reconnect: true,
      });
      return new E2eLine(config, server, nc, await nc.jetstreamManager(), pipeline, checkpointDir);
    } catch (error) {
      await server.stop();
      await Deno.remove(checkpointDir, { recursive: true }).catch(() => undefined);
      throw error;
    }
  }

  /**
   * Replays the stream in `dir` onto this line as fast as possible, pass `pass` (its Image-Ids
   * suffixed {@link passSuffix}), and resolves once every message has its verdict.
   * Returns the image-stream sequence of the pass's first message.
   */
  async replayPass(dir: string, pass: number): Promise<number> {
    const firstSeq = this.published + 1;
    const result = await replayStream({
      connection: this.nc,
      dir,
      line: this.config.line,
      idSuffix: passSuffix(pass),
      pacing: { kind: "recorded", speed: Infinity },
    });
    this.published += result.published;
    await waitForStreamCount(
      this.jsm,
      streamNames(this.config.line).verdicts,
      this.published,
      MILESTONE_TIMEOUT_MS,
    );
    return firstSeq;
  }

  /** Status of one stage, through the line's control service. */
  status(stage: "ingest" | "trainer" | "scorer"): Promise<StageStatus> {
    return control<StageStatus>(this.nc, this.config.line, stage, "status");
  }

  /** Waits until the trainer has received `images` images and trained on every one it holds. */
  async trainerCaughtUp(images: number): Promise<StageStatus> {
    let last: StageStatus | undefined;
    await waitUntil(
      async () => {
        last = await this.status("trainer");
        return last.imagesIn >= images && last.details.bufferedUntrained === 0;
      },
      MILESTONE_TIMEOUT_MS,
      `the trainer to train on all ${images} images`,
    );
    return last!;
  }

  /**
   * Pauses training and publishes the model as it is now; resolves once the scorer scores
   * with that version, so everything published afterwards is scored by one frozen model.
   */
  async freezeModel(): Promise<{ step: number; modelVersion: number }> {
    await control<StageStatus>(this.nc, this.config.line, "trainer", "pause");
    const snapshot = await control<{ step: number; modelVersion: number | null }>(
      this.nc,
      this.config.line,
      "trainer",
      "snapshot",
    );
    if (snapshot.modelVersion === null) throw new Error("the trainer is still warming up");
    const version = snapshot.modelVersion;
    await waitUntil(
      async () => ((await this.status("scorer")).modelVersion ?? 0) >= version,
      MILESTONE_TIMEOUT_MS,
      `the scorer to load model v${version}`,
    );
    return { step: snapshot.step, modelVersion: version };
  }

  /** Every verdict of the line, in stream order. */
  async verdicts(): Promise<Verdict[]> {
    const stored = await readStreamMessages(this.jsm, streamNames(this.config.line).verdicts);
    return stored.map((message) => parseVerdict(message.data));
  }

  /** Every training event of the line, in stream order. */
  async trainingEvents(): Promise<TrainingEvent[]> {
    const stored = await readStreamMessages(this.jsm, streamNames(this.config.line).training);
    return stored.map((message) => parseTrainingEvent(message.data));
  }

  /** Stops the pipeline (gracefully, as SIGINT does), the connection and the server. */
  async [Symbol.asyncDispose](): Promise<void> {
    try {
      await this.#pipeline.stop();
    } finally {
      await this.nc.close();
      await this.#server.stop();
      await Deno.remove(this.#checkpointDir, { recursive: true }).catch(() => undefined);
    }
  }
}

/**
 * Checks that the line answered every image message exactly once: one verdict per message
 * sequence `firstSeq .. firstSeq + count - 1`, none missing, none doubled, none extra.
 * Returns the verdicts by message position in the pass (0-based = the fixture's `seq`).
 */
export function oneVerdictPerMessage(
  verdicts: readonly Verdict[],
  firstSeq: number,
  count: number,
): Verdict[] {
  const byPosition: (Verdict | undefined)[] = new Array(count);
  for (const verdict of verdicts) {
    const position = verdict.imageSeq - firstSeq;
    if (position < 0 || position >= count) continue;
    if (byPosition[position]) {
      throw new Error(`image message ${verdict.imageSeq} has two verdicts`);
    }
    byPosition[position] = verdict;
  }
  const missing = byPosition.flatMap((v, i) => (v ? [] : [firstSeq + i]));
  if (missing.length > 0) throw new Error(`no verdict for image messages ${missing.join(", ")}`);
  return byPosition as Verdict[];
}

/** Ground-truth label of a manifest entry as the AUROC's boolean (true = anomalous). */
export function isAnomalous(entry: ManifestEntry | undefined, imageId: string): boolean {
  if (!entry || entry.label === "invalid") {
    throw new Error(`${imageId} has no normal/anomalous label in the manifest`);
  }
  return entry.label === "anomalous";
}

/** How often ATDR down-weighted images of each class, per appearance in a training batch. */
export interface DownWeightRates {
  /** Appearances of manifest-anomalous images in batches. */
  anomalousInBatches: number;
  /** Of those, how many were down-weighted. */
  anomalousDownWeighted: number;
  /** Appearances of normal images in batches. */
  normalInBatches: number;
  /** Of those, how many were down-weighted. */
  normalDownWeighted: number;
  /** `anomalousDownWeighted / anomalousInBatches`. */
  anomalousRate: number;
  /** `normalDownWeighted / normalInBatches`. */
  normalRate: number;
}

/** Down-weighting rates from training events, labelled through `labelOf(recorded Image-Id)`. */
export function downWeightRates(
  events: readonly TrainingEvent[],
  labelOf: (imageId: string) => boolean,
): DownWeightRates {
  const counts = { aIn: 0, aDown: 0, nIn: 0, nDown: 0 };
  for (const event of events) {
    const down = new Set(event.downWeighted);
    for (const id of event.batch) {
      const anomalous = labelOf(recordedImageId(id));
      if (anomalous) {
        counts.aIn++;
        if (down.has(id)) counts.aDown++;
      } else {
        counts.nIn++;
        if (down.has(id)) counts.nDown++;
      }
    }
  }
  return {
    anomalousInBatches: counts.aIn,
    anomalousDownWeighted: counts.aDown,
    normalInBatches: counts.nIn,
    normalDownWeighted: counts.nDown,
    anomalousRate: counts.aDown / counts.aIn,
    normalRate: counts.nDown / counts.nIn,
  };
}
