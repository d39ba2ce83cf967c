/**
 * Pipeline test fixtures: a tiny, quick configuration and camera images from the committed
 * synthetic line.
 *
 * @module
 */
import {
  type PipelineConfig,
  type PipelineConfigInput,
  PipelineSchema,
} from "../../src/config/schema.ts";
import { IMAGE_ID_HEADER } from "../../src/bus/subjects.ts";
import { firstHeader, readStream } from "../../src/streams/format.ts";

/**
 * A configuration that trains in seconds on 2 cores: 64 px, tiny student, random teacher,
 * batches of 4, first version after 2 steps, then every 2 steps. `overrides` replace whole
 * sections, except `training` and `trainer`, whose fields are merged into the tiny ones.
 */
export function tinyPipelineConfig(
  line: string,
  overrides: Partial<PipelineConfigInput> = {},
): PipelineConfig {
  const { training, trainer, ...sections } = overrides;
  return PipelineSchema.parse({
    line,
    model: {
      imageSize: 64,
      studentWidth: "tiny",
      teacher: { kind: "random_pdn", width: "tiny" },
      aeLatent: 16,
    },
    training: { batchSize: 4, ...training },
    trainer: {
      warmupSteps: 2,
      publishEverySteps: 2,
      publishEverySeconds: 3600,
      bufferSize: 32,
      statsImages: 8,
      normalisationImages: 8,
      ...trainer,
    },
    scorer: { batchSize: 4, threshold: { targetFalseAlarmRate: 0.1, window: 100, floor: 0 } },
    ...sections,
  });
}

/** A camera image: its id and encoded bytes. */
export interface CameraImage {
  /** Image-Id. */
  imageId: string;
  /** Encoded JPEG. */
  payload: Uint8Array;
}

/** The first `count` images of `fixtures/synthetic-line`. */
export async function syntheticImages(count: number): Promise<CameraImage[]> {
  const images: CameraImage[] = [];
  for await (const message of readStream("fixtures/synthetic-line")) {
    if (images.length >= count) break;
    images.push({
      imageId: firstHeader(message.headers, IMAGE_ID_HEADER)!,
      payload: message.payload,
    });
  }
  if (images.length < count) throw new Error(`fixture has only ${images.length} images`);
  return images;
}
