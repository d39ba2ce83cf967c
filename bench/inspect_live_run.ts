/**
 * One live cell of the inspection benchmark (`deno task bench:inspect --live`): a surface's
 * polluted camera stream served to a line from a cold start as `deno task run` serves it
 * (`runPipeline`, every stage in its own Worker, a private nats-server with JetStream), with
 * the line's own configuration.
 *
 * Protocol:
 * - t = 0 is the first camera image; the camera publishes distinct renders (PNG or JPEG,
 *   `Image-Id` `cam-<k>`) at `rate` images/s for `durationSeconds`, each rendered just before it
 *   is due, so the stream never stops for an evaluation.
 * - At each evaluation point (seconds since t = 0) the held-out test set is published at once
 *   with `Image-Train: no` (Image-Ids `test-<i>-t<point>`): the line's scorer scores it with the
 *   version it holds, the trainer never buffers it. Training is never paused, so wall time is
 *   the line's own. The point's AUROC comes from those verdicts (`scored` only; a point with
 *   `warming_up` verdicts says so).
 * - Ground truth stays here: only images and Image-Ids travel.
 *
 * @module
 */
import sharp from "sharp";
import type { NatsConnection, Subscription } from "nats";
import type { PipelineConfig } from "../src/config/schema.ts";
import { parsePipelineConfig } from "../src/pipeline/config.ts";
import { trainingSubject, verdictSubject } from "../src/bus/subjects.ts";
import { parseTrainingEvent } from "../src/bus/training_event.ts";
import { parseVerdict, type Verdict } from "../src/bus/verdict.ts";
import type { StageStatus } from "../src/stages/stage.ts";
import {
  type InspectSample,
  inspectSplitPlan,
  renderSplitSample,
  type SampleSpec,
} from "../src/data/inspect_split.ts";
import type { GreyImage, Surface } from "../src/data/inspect_surfaces.ts";
import { auroc } from "../src/metrics/auroc.ts";
import { E2eLine, MILESTONE_TIMEOUT_MS } from "../src/harness/line.ts";
import { publishImage, waitUntil } from "../src/harness/bus.ts";
import { type CellAuroc, cellAurocs } from "./inspect_job.ts";
import { median, secondsSince } from "./timing.ts";
import { ACCURACY_VARIANTS, type VariantName } from "./accuracy_variants.ts";

/** The line every live cell is served as (each cell gets its own server). */
export const LIVE_LINE = "inspect-live";

/** Image encodings a camera may send. */
export type CameraFormat = "png" | "jpeg";

/** Settings shared by every live cell of a run. */
export interface LiveInspectConfig {
  /** Side of the camera images in pixels. */
  side: number;
  /** Camera images per second. */
  rate: number;
  /** How long the camera publishes, in seconds (the last point is at most this). */
  durationSeconds: number;
  /** Evaluation points, seconds since the first camera image (ascending). */
  points: number[];
  /** Defective test images per (kind, size). */
  testPerCell: number;
  /** Normal test images. */
  testNormal: number;
  /** Encoding of camera and test images. */
  format: CameraFormat;
  /** Seed of the data. */
  seed: number;
}

/** One live cell: a surface at a pollution ratio, with the line's training or a variant's. */
export interface LiveInspectJob {
  surface: Surface;
  ratio: number;
  /** A benchmark variant's training fields over the line's (absent: the line as configured). */
  variant?: VariantName;
}

/** `brick r=0.1` or `brick r=0.1 baseline (EfficientAD)`. */
export function describeLiveJob(job: LiveInspectJob): string {
  const variant = job.variant ? ` ${ACCURACY_VARIANTS[job.variant].label}` : "";
  return `${job.surface} r=${job.ratio}${variant}`;
}

/** What the trainer reported at an evaluation point. */
export interface TrainerAtPoint {
  /** Decoded images it received (camera and held-out). */
  imagesIn: number;
  /** Training steps taken. */
  step: number;
  /** Version it last published (null: still warming up). */
  modelVersion: number | null;
  /** Held-out images it saw and did not buffer. */
  heldOut: number;
  /** Images in its buffer. */
  buffered: number;
  /**
   * The autoencoder's explained variance and its map's weight at the last publication (null
   * before the first; absent in results from before they were recorded).
   */
  aeExplained?: number | null;
  aeMapWeight?: number | null;
}

/** Verdict statuses of one batch of images. */
export interface StatusCounts {
  scored: number;
  warming_up: number;
  rejected: number;
  /** Images whose verdict never came back. */
  missing: number;
}

/** One evaluation point. */
export interface LivePoint {
  /** Planned time, seconds since the first camera image. */
  atSeconds: number;
  /** When the test set was published (same clock). */
  publishedSeconds: number;
  /** When its last verdict came back (null: some never did). */
  answeredSeconds: number | null;
  /** Camera images published before the test set. */
  imagesSeen: number;
  /** The trainer's status right after the test set was published (null: no answer). */
  trainer: TrainerAtPoint | null;
  /** Statuses of the test set's verdicts. */
  verdicts: StatusCounts;
  /** Model versions that scored the test set (ascending). */
  modelVersions: number[];
  /** Smallest and largest `modelStep` of those verdicts (null: none scored). */
  modelSteps: [number, number] | null;
  /** Image AUROC of the test set's scores (null unless every test image was scored). */
  auroc: number | null;
  /** The same with the student–teacher and autoencoder parts alone. */
  aurocSt: number | null;
  aurocAe: number | null;
  /** AUROC per defect kind × size (empty unless every test image was scored). */
  cells: CellAuroc[];
  /**
   * AUROC of the camera images published since the previous point (their own verdicts,
   * `scored` only; null when both classes are not there): what the line's verdicts did on
   * the production stream, images the trainer may also learn from.
   */
  streamAuroc: number | null;
  /** Camera verdicts of that window by status. */
  streamVerdicts: StatusCounts;
}

/** Result of one live cell. */
export interface LiveInspectResult extends LiveInspectJob {
  /** The line's training method (`training.method`). */
  method: string;
  /** Evaluation points in order. */
  points: LivePoint[];
  /** Camera images published. */
  cameraImages: number;
  /** Of those, defective. */
  injected: number;
  /** Camera cost and punctuality: median render+encode ms, largest lateness ms. */
  camera: { renderMs: number; lateMs: number; bytesMean: number };
  /** Seconds from starting the server to the line ready (before t = 0). */
  startupSeconds: number;
  /**
   * The first camera image (in publication order) with a `scored` verdict: its Image-Id, when
   * that verdict came back (seconds since t = 0) and its model step (null: none).
   */
  firstScored: { imageId: string; seconds: number; modelStep: number } | null;
  /** The trainer's status after the last point. */
  finalTrainer: TrainerAtPoint | null;
  /** The scorer's delivery counters after the last point (null: no answer). */
  finalScorer: { retried: number; alreadyAnswered: number; processingFailed: number } | null;
  /**
   * Camera image published → its verdict back, seconds (median, 99th percentile, largest):
   * whether the line kept up with the camera.
   */
  cameraLatency: { p50: number; p99: number; max: number };
  /**
   * Held-out test images that appeared in a training batch (the line's training events): the
   * protocol's own check, 0 unless `Image-Train: no` failed.
   */
  testImagesTrainedOn: number;
  /** Seconds from server start to everything read back. */
  wallSeconds: number;
}

/**
 * The line's configuration for a live cell: `base` under {@link LIVE_LINE}, metrics off, and
 * with `variant` its training fields (and hygiene, when it has one) over the line's.
 */
export function liveLineConfig(base: PipelineConfig, variant?: VariantName): PipelineConfig {
  const v = variant ? ACCURACY_VARIANTS[variant] : undefined;
  // Metrics off: a benchmark must not fight the machine's own line for port 9464.
  return parsePipelineConfig(
    {
      ...base,
      line: LIVE_LINE,
      metrics: { ...base.metrics, enabled: false },
      training: { ...base.training, ...v?.training },
      trainer: { ...base.trainer, hygiene: v?.hygiene ?? base.trainer.hygiene },
    },
    `${base.line} as ${LIVE_LINE}${variant ? ` (${variant})` : ""}`,
  );
}

/** Image-Id of camera image `k`. */
export function cameraImageId(k: number): string {
  return `cam-${k}`;
}

/** Image-Id of test image `i` published at point `atSeconds`. */
export function testImageIdAt(i: number, atSeconds: number): string {
  return `test-${i}-t${atSeconds}`;
}

/** Encodes a rendered sample (RGB in [0, 1]) as the camera sends it. */
export async function encodeSample(
  sample: InspectSample,
  format: CameraFormat,
): Promise<Uint8Array> {
  const bytes = new Uint8Array(sample.pixels.length);
  for (let i = 0; i < bytes.length; i++) {
    bytes[i] = Math.round(Math.min(1, Math.max(0, sample.pixels[i])) * 255);
  }
  const image = sharp(bytes, { raw: { width: sample.side, height: sample.side, channels: 3 } });
  const encoded = format === "png"
    ? await image.png().toBuffer()
    : await image.jpeg({ quality: 95 }).toBuffer();
  return new Uint8Array(encoded);
}

/** Counts verdict statuses of `ids` (missing when none came back). */
export function statusCounts(
  ids: readonly string[],
  verdicts: ReadonlyMap<string, Verdict>,
): StatusCounts {
  const counts: StatusCounts = { scored: 0, warming_up: 0, rejected: 0, missing: 0 };
  for (const id of ids) {
    const verdict = verdicts.get(id);
    if (verdict) counts[verdict.status]++;
    else counts.missing++;
  }
  return counts;
}

/** AUROC of scores against labels, or null when either class is missing. */
function aurocOrNull(scores: number[], labels: boolean[]): number | null {
  return labels.some((l) => l) && labels.some((l) => !l) ? auroc(scores, labels) : null;
}

/**
 * The AUROCs of one test set's verdicts (in test-set order): null unless every image was
 * scored, so a point never mixes a partly warming line into an AUROC.
 */
export function testSetScores(
  test: readonly InspectSample[],
  verdicts: readonly (Verdict | undefined)[],
): Pick<LivePoint, "auroc" | "aurocSt" | "aurocAe" | "cells" | "modelVersions" | "modelSteps"> {
  const scored = verdicts.flatMap((v) => v?.status === "scored" ? [v] : []);
  const versions = [...new Set(scored.map((v) => v.modelVersion))].sort((a, b) => a - b);
  const steps = scored.map((v) => v.modelStep);
  const modelSteps: [number, number] | null = steps.length
    ? [Math.min(...steps), Math.max(...steps)]
    : null;
  if (scored.length !== test.length) {
    return {
      auroc: null,
      aurocSt: null,
      aurocAe: null,
      cells: [],
      modelVersions: versions,
      modelSteps,
    };
  }
  const labels = test.map((s) => s.anomalous);
  const all = verdicts as Extract<Verdict, { status: "scored" }>[];
  const score = all.map((v) => v.score);
  return {
    auroc: aurocOrNull(score, labels),
    aurocSt: aurocOrNull(all.map((v) => v.stScore), labels),
    aurocAe: aurocOrNull(all.map((v) => v.aeScore), labels),
    cells: cellAurocs(test, score),
    modelVersions: versions,
    modelSteps,
  };
}

/** Reads the trainer's status as the point records it. */
function trainerAtPoint(status: StageStatus): TrainerAtPoint {
  const detail = (key: string) => Number(status.details[key] ?? NaN);
  return {
    imagesIn: status.imagesIn,
    step: status.step ?? 0,
    modelVersion: status.modelVersion,
    heldOut: detail("heldOut"),
    buffered: detail("buffered"),
    aeExplained: status.details.aeExplained === null ? null : detail("aeExplained"),
    aeMapWeight: status.details.aeMapWeight === null ? null : detail("aeMapWeight"),
  };
}

/** What {@link runLiveInspectCell} needs. */
export interface LiveInspectCellOptions {
  job: LiveInspectJob;
  config: LiveInspectConfig;
  /** The line's configuration (e.g. `pipelines/demo.json`); served as {@link LIVE_LINE}. */
  pipeline: PipelineConfig;
  /** The surface's photograph, for photographic surfaces. */
  photo?: GreyImage;
  /** Progress lines. */
  log: (line: string) => void;
}

/** Runs one live cell (see the module documentation). */
export async function runLiveInspectCell(
  options: LiveInspectCellOptions,
): Promise<LiveInspectResult> {
  const { job, config, photo, log } = options;
  const started = performance.now();
  const cameraCount = Math.round(config.rate * config.durationSeconds);
  const plan = inspectSplitPlan({
    surface: job.surface,
    photo,
    side: config.side,
    trainCount: cameraCount,
    ratio: job.ratio,
    testPerCell: config.testPerCell,
    testNormal: config.testNormal,
    seed: config.seed,
  });
  const render = (spec: SampleSpec) =>
    renderSplitSample({ surface: job.surface, photo, side: config.side }, spec);
  const test = plan.test.map(render);
  const testPayloads = await Promise.all(test.map((s) => encodeSample(s, config.format)));

  const pipeline = liveLineConfig(options.pipeline, job.variant);
  await using line = await E2eLine.start(pipeline);
  const startupSeconds = secondsSince(started);
  const name = describeLiveJob(job);
  log(`live ${name}: line ready (${startupSeconds} s)`);

  const verdicts = new Map<string, Verdict>();
  const arrivedAt = new Map<string, number>();
  let t0 = 0;
  const subscription = collectVerdicts(line.nc, verdicts, arrivedAt, () => t0);
  const trainedOnTest = new Set<string>();
  const training = line.nc.subscribe(trainingSubject(LIVE_LINE), {
    callback: (error, message) => {
      if (error) return;
      for (const id of parseTrainingEvent(message.data).batch) {
        if (id.startsWith("test-")) trainedOnTest.add(id);
      }
    },
  });

  const points: LivePoint[] = [];
  const evaluations: Promise<void>[] = [];
  const cameraIds: string[] = [];
  const cameraPublishedAt: number[] = [];
  let windowStart = 0;
  const evaluate = (atSeconds: number): Promise<void> => {
    const imagesSeen = cameraIds.length;
    const windowIds = cameraIds.slice(windowStart);
    windowStart = imagesSeen;
    const ids = test.map((_, i) => testImageIdAt(i, atSeconds));
    const publishedSeconds = (performance.now() - t0) / 1000;
    ids.forEach((id, i) => publishImage(line.nc, LIVE_LINE, id, testPayloads[i], undefined, true));
    line.published += ids.length;
    return (async () => {
      const trainer = await line.status("trainer").then(trainerAtPoint, () => null);
      let answered = true;
      await waitUntil(() => ids.every((id) => verdicts.has(id)), MILESTONE_TIMEOUT_MS, "")
        .catch(() => answered = false);
      const scores = testSetScores(test, ids.map((id) => verdicts.get(id)));
      const windowVerdicts = windowIds.map((id) => verdicts.get(id));
      const streamScored = windowIds.flatMap((id, k) => {
        const v = windowVerdicts[k];
        return v?.status === "scored"
          ? [{ score: v.score, anomalous: !!plan.train[Number(id.slice(4))].defect }]
          : [];
      });
      const point: LivePoint = {
        atSeconds,
        publishedSeconds: round(publishedSeconds),
        answeredSeconds: answered ? round(Math.max(...ids.map((id) => arrivedAt.get(id)!))) : null,
        imagesSeen,
        trainer,
        verdicts: statusCounts(ids, verdicts),
        ...scores,
        streamAuroc: aurocOrNull(
          streamScored.map((s) => s.score),
          streamScored.map((s) => s.anomalous),
        ),
        streamVerdicts: statusCounts(windowIds, verdicts),
      };
      points.push(point);
      log(
        `live ${name} t=${atSeconds} s: AUROC ${
          point.auroc?.toFixed(3) ?? "—"
        } (${point.verdicts.scored} scored, ${point.verdicts.warming_up} warming up; model step ${
          point.modelSteps?.join("–") ?? "—"
        }; trainer step ${trainer?.step ?? "?"}, ${imagesSeen} images seen)`,
      );
    })();
  };

  // The camera: image k is due at t0 + k / rate; rendered ahead, published on time.
  const renderMs: number[] = [];
  let lateMs = 0;
  let bytes = 0;
  const pending = [...config.points].sort((a, b) => a - b);
  t0 = performance.now();
  for (let k = 0; k < cameraCount; k++) {
    const r0 = performance.now();
    const payload = await encodeSample(render(plan.train[k]), config.format);
    renderMs.push(performance.now() - r0);
    bytes += payload.length;
    const due = t0 + (k * 1000) / config.rate;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    else lateMs = Math.max(lateMs, -wait);
    while (pending.length && pending[0] * 1000 <= k * (1000 / config.rate)) {
      evaluations.push(evaluate(pending.shift()!));
    }
    const id = cameraImageId(k);
    publishImage(line.nc, LIVE_LINE, id, payload);
    cameraPublishedAt.push((performance.now() - t0) / 1000);
    cameraIds.push(id);
    line.published++;
  }
  for (const at of pending) {
    const wait = t0 + at * 1000 - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    evaluations.push(evaluate(at));
  }
  await line.nc.flush();
  await Promise.all(evaluations);
  const finalTrainer = await line.status("trainer").then(trainerAtPoint, () => null);
  const finalScorer = await line.status("scorer").then((status) => ({
    retried: Number(status.details.retried ?? NaN),
    alreadyAnswered: Number(status.details.alreadyAnswered ?? NaN),
    processingFailed: Number(status.details.processingFailed ?? NaN),
  }), () => null);
  const latencies = cameraIds.flatMap((id, k) =>
    arrivedAt.has(id) ? [arrivedAt.get(id)! - cameraPublishedAt[k]] : []
  ).sort((a, b) => a - b);
  const quantile = (q: number) =>
    latencies.length
      ? round(latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))])
      : NaN;
  subscription.unsubscribe();
  training.unsubscribe();

  const firstScored = cameraIds.map((id) => verdicts.get(id))
    .find((v): v is Extract<Verdict, { status: "scored" }> => v?.status === "scored");
  return {
    ...job,
    method: pipeline.training.method,
    points: points.sort((a, b) => a.atSeconds - b.atSeconds),
    cameraImages: cameraIds.length,
    injected: plan.train.filter((s) => s.defect).length,
    camera: {
      renderMs: Math.round(median(renderMs)),
      lateMs: Math.round(lateMs),
      bytesMean: Math.round(bytes / Math.max(1, cameraIds.length)),
    },
    startupSeconds,
    firstScored: firstScored
      ? {
        imageId: firstScored.imageId,
        seconds: round(arrivedAt.get(firstScored.imageId)!),
        modelStep: firstScored.modelStep,
      }
      : null,
    finalTrainer,
    finalScorer,
    cameraLatency: { p50: quantile(0.5), p99: quantile(0.99), max: round(latencies.at(-1) ?? NaN) },
    testImagesTrainedOn: trainedOnTest.size,
    wallSeconds: secondsSince(started),
  };
}

/** Follows the line's verdicts (core NATS), keeping each by Image-Id with its arrival time. */
function collectVerdicts(
  nc: NatsConnection,
  verdicts: Map<string, Verdict>,
  arrivedAt: Map<string, number>,
  t0: () => number,
): Subscription {
  return nc.subscribe(verdictSubject(LIVE_LINE), {
    callback: (error, message) => {
      if (error) return;
      const verdict = parseVerdict(message.data);
      if (verdict.imageId === null || verdicts.has(verdict.imageId)) return;
      verdicts.set(verdict.imageId, verdict);
      arrivedAt.set(verdict.imageId, (performance.now() - t0()) / 1000);
    },
  });
}

function round(seconds: number): number {
  return Math.round(seconds * 10) / 10;
}
