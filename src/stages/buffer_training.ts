/**
 * One live training step from the trainer's buffer: take a batch, train, let the hygiene policy
 * decide which ATDR-flagged images leave the buffer and which quarantined ones come back.
 * Shared by the trainer stage and the drift tests, so both run exactly this bookkeeping.
 *
 * @module
 */
import type { Detector, TrainStepReport } from "../model/detector.ts";
import type { ImageBuffer } from "./image_buffer.ts";
import type { RejectionPolicy } from "./hygiene.ts";
import { TfjsTrainingEngine, type TrainingEngine } from "./model_port.ts";

/** What one buffered training step did. */
export interface BufferStepResult {
  /** The detector's step report. */
  report: TrainStepReport;
  /** Image-Ids of the batch, in batch order. */
  batch: string[];
  /** Images of the batch never trained on before this step. */
  fresh: number;
  /** Image-Ids ATDR down-weighted in this step. */
  downWeighted: string[];
  /** Image-Ids that left the buffer. */
  rejected: string[];
  /** Image-Ids put back into the buffer from quarantine. */
  readmitted: string[];
}

/**
 * Trains one step on a batch from `buffer` (null when the buffer has no batch ready), then
 * applies `hygiene`: rejected images are removed, re-admitted ones added back as untrained.
 * `engine` computes the step (`src/model/training_engine.ts`: ONNX Runtime, or tfjs with the
 * teacher's features from ORT); without one, `Detector.trainStep` with tfjs's own teacher.
 * With `replay`, the batch is drawn at random from the whole buffer
 * ({@link ImageBuffer.takeReplayBatch}) and hygiene is left out: a step while no new image has
 * arrived.
 */
export async function trainStepFromBuffer(
  detector: Detector,
  buffer: ImageBuffer,
  hygiene: RejectionPolicy<Float32Array>,
  engine?: TrainingEngine | null,
  replay = false,
): Promise<BufferStepResult | null> {
  const { batchSize } = detector.training;
  const batch = replay ? buffer.takeReplayBatch(batchSize) : buffer.takeBatch(batchSize);
  if (!batch) return null;
  const pixels = batch.map((image) => image.pixels);
  const report = await (engine ?? new TfjsTrainingEngine(detector, null)).step(pixels);
  // Hygiene judges images on the steps that bring them in. Replays only train (ATDR still
  // down-weights each batch's outlier): the same hard images, flagged again on every replay,
  // would otherwise drain the buffer one image per step while the line is quiet.
  const rejected = replay ? [] : hygiene.review(
    batch.map((image) => ({ imageId: image.imageId, item: image.pixels })),
    report.outliers,
    report.defectRate,
  );
  buffer.remove(rejected);
  const readmitted = replay ? [] : hygiene.readmit();
  for (const image of readmitted) buffer.add(image.imageId, image.item);
  return {
    report,
    batch: batch.map((image) => image.imageId),
    fresh: batch.filter((image) => image.trained === 1).length,
    downWeighted: report.outliers.map((index) => batch[index].imageId),
    rejected,
    readmitted: readmitted.map((image) => image.imageId),
  };
}
