/**
 * The pipeline's progress line: images/s in and out, training step and loss, model version
 * and backlog, from two consecutive status samples.
 *
 * @module
 */
import type { StageName, StageStatus } from "../stages/stage.ts";

/** Statuses of the stages a process runs, taken at one moment. */
export interface StatusSample {
  /** `performance.now()` when taken. */
  atMs: number;
  /** Status per stage run by this process. */
  stages: Partial<Record<StageName, StageStatus>>;
}

/** Images that entered the pipeline (ingest input), or, without ingest, the scorer's input. */
function imagesIn(sample: StatusSample): number {
  return sample.stages.ingest?.imagesIn ?? sample.stages.scorer?.imagesIn ??
    sample.stages.trainer?.imagesIn ?? 0;
}

/** Verdicts that left: scorer verdicts plus ingest rejections. */
function verdictsOut(sample: StatusSample): number {
  const rejected = Number(sample.stages.ingest?.details.rejected ?? 0);
  return (sample.stages.scorer?.imagesOut ?? 0) + rejected;
}

/** One progress line, rates measured between `previous` and `current`. */
export function progressLine(line: string, previous: StatusSample, current: StatusSample): string {
  const seconds = Math.max(1e-3, (current.atMs - previous.atMs) / 1000);
  const rate = (now: number, before: number) => ((now - before) / seconds).toFixed(1);
  const parts = [
    `in ${rate(imagesIn(current), imagesIn(previous))}/s`,
    `out ${rate(verdictsOut(current), verdictsOut(previous))}/s`,
  ];
  const { trainer, scorer } = current.stages;
  if (trainer) {
    const loss = trainer.loss === null ? "-" : trainer.loss.toPrecision(4);
    parts.push(
      `step ${trainer.step} loss ${loss}${trainer.paused ? " (paused)" : ""}` +
        ` model v${trainer.modelVersion ?? "-"}${trainer.warm ? "" : " (warming up)"}`,
    );
  }
  if (scorer) parts.push(`scoring with v${scorer.modelVersion ?? "-"}`);
  const backlog = Object.values(current.stages)
    .map((status) => `${status.stage} ${status.backlog ?? "?"}`)
    .join(", ");
  parts.push(`backlog ${backlog}`);
  return `[${line}] ${parts.join(" | ")}`;
}
