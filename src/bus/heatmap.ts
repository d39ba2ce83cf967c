/**
 * The public heatmap message (`inspect.<line>.heatmap.<key>`, stream `INSPECT_<line>_HEATMAPS`):
 * one 8-bit greyscale PNG of the combined anomaly map per scored image, keyed by Image-Id.
 * Headers: `Image-Id`, `Image-Seq`, `Model-Version`, `Heatmap-Scale-Max` (byte b stands for the
 * map value b / 255 · max). The verdict names the subject and repeats the scale, so a consumer
 * can fetch it with {@link fetchHeatmap} or any JetStream "last message by subject" request.
 *
 * @module
 */
import { headers, type JetStreamClient, type JetStreamManager, type PubAck } from "nats";
import {
  HEATMAP_SCALE_MAX_HEADER,
  heatmapMsgId,
  heatmapSubject,
  IMAGE_ID_HEADER,
  IMAGE_SEQ_HEADER,
  MODEL_VERSION_HEADER,
  streamNames,
} from "./subjects.ts";
import { isNotFound } from "./streams.ts";

/** A heatmap as published. */
export interface HeatmapMessage {
  /** Line id. */
  line: string;
  /** Image-Id of the scored image. */
  imageId: string;
  /** Sequence of the image message in the image stream. */
  imageSeq: number;
  /** Model version whose map it is. */
  modelVersion: number;
  /** The map value a byte of 255 stands for. */
  scaleMax: number;
  /** 8-bit greyscale PNG. */
  png: Uint8Array;
}

/** Publishes a heatmap and waits for JetStream to store it (or drop a re-published copy). */
export async function publishHeatmap(
  js: JetStreamClient,
  heatmap: HeatmapMessage,
): Promise<PubAck> {
  const h = headers();
  h.set(IMAGE_ID_HEADER, heatmap.imageId);
  h.set(IMAGE_SEQ_HEADER, String(heatmap.imageSeq));
  h.set(MODEL_VERSION_HEADER, String(heatmap.modelVersion));
  h.set(HEATMAP_SCALE_MAX_HEADER, String(heatmap.scaleMax));
  return await js.publish(heatmapSubject(heatmap.line, heatmap.imageId), heatmap.png, {
    headers: h,
    msgID: heatmapMsgId(heatmap.imageId),
  });
}

/** The heatmap of `imageId` on `line`, or null when there is none (not scored, or aged out). */
export async function fetchHeatmap(
  jsm: JetStreamManager,
  line: string,
  imageId: string,
): Promise<HeatmapMessage | null> {
  try {
    const message = await jsm.streams.getMessage(streamNames(line).heatmaps, {
      last_by_subj: heatmapSubject(line, imageId),
    });
    const scaleMax = Number(message.header.get(HEATMAP_SCALE_MAX_HEADER));
    return {
      line,
      imageId: message.header.get(IMAGE_ID_HEADER) || imageId,
      imageSeq: Number(message.header.get(IMAGE_SEQ_HEADER)),
      modelVersion: Number(message.header.get(MODEL_VERSION_HEADER)),
      scaleMax,
      png: message.data,
    };
  } catch (error) {
    if (isNotFound(error) || /no message found/i.test(String(error))) return null;
    throw error;
  }
}
