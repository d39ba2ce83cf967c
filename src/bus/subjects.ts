/**
 * Every NATS name the product uses, in one place: subjects, headers, JetStream streams and
 * consumers, KV buckets and keys, the object store, and the control service. Nothing else in
 * the code base spells a subject.
 *
 * The public image contract (`inspect.<line>.image`, `Image-Id`, `Captured-At`) is defined by
 * `src/streams/contract.ts`, which recordings share; it is re-exported here unchanged.
 *
 * @module
 */
import {
  assertLineName,
  CAPTURED_AT_HEADER,
  IMAGE_ID_HEADER,
  imageSubject,
} from "../streams/contract.ts";

export { assertLineName, CAPTURED_AT_HEADER, IMAGE_ID_HEADER, imageSubject };

/** Root token of every product subject. */
export const SUBJECT_ROOT = "inspect";

/** JetStream's de-duplication header (set through `msgID` on publish). */
export const MSG_ID_HEADER = "Nats-Msg-Id";
/** Internal header: the sequence of the original message in the line's image stream. */
export const IMAGE_SEQ_HEADER = "Image-Seq";
/** Internal header: `<height>x<width>x<channels>` of a decoded image payload. */
export const IMAGE_SHAPE_HEADER = "Image-Shape";
/** Internal header: RFC 3339 time the ingest stage received the image. */
export const RECEIVED_AT_HEADER = "Received-At";
/** Internal header: `<width>x<height>` of the image as the camera sent it (before resizing). */
export const ORIGINAL_SIZE_HEADER = "Image-Original-Size";
/**
 * Camera header (optional): `Image-Train: no` asks for a verdict without learning from the
 * image — the trainer never buffers it (reference, audit or benchmark test parts). Ingest carries
 * it onto the decoded message. Any other value, or none, leaves the image to training as usual.
 */
export const TRAIN_HEADER = "Image-Train";
/** The {@link TRAIN_HEADER} value that keeps an image out of training. */
export const TRAIN_HEADER_NO = "no";
/** Heatmap header: the map value a byte of 255 stands for (byte b = b / 255 · max, from 0). */
export const HEATMAP_SCALE_MAX_HEADER = "Heatmap-Scale-Max";
/** Heatmap header: the model version whose map it is. */
export const MODEL_VERSION_HEADER = "Model-Version";

/** Verdicts of `line` (public, JSON, see `verdict.ts`). */
export function verdictSubject(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.verdict`;
}

/** Training events of `line` (public, JSON, see `training_event.ts`). */
export function trainingSubject(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.training`;
}

/** Alarms of `line` (public, JSON, see `backlog_alarm.ts`): the line outruns the pipeline. */
export function alarmSubject(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.alarm`;
}

/**
 * Model versions of `line` a scorer or trainer refused (public, JSON, see
 * `model_refusal.ts`): core NATS, for operators and monitoring.
 */
export function modelRefusedSubject(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.model.refused`;
}

/**
 * The heatmap of one scored image of `line` (public, PNG, see `heatmap.ts`):
 * `inspect.<line>.heatmap.<key>`, the key being {@link imageIdKey} of its Image-Id, so a consumer
 * fetches it by Image-Id (last message on that subject) without scanning the stream.
 */
export function heatmapSubject(line: string, imageId: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.heatmap.${imageIdKey(imageId)}`;
}

/** Every heatmap subject of `line` (the heatmap stream captures this). */
export function heatmapSubjects(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.heatmap.*`;
}

/** Internal: images of `line` decoded, resized and validated by ingest (raw RGB bytes). */
export function decodedSubject(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.decoded`;
}

/** Root of the control service endpoints of `line`: `<root>.<stage>.<endpoint>`. */
export function controlSubjectRoot(line: string): string {
  assertLineName(line);
  return `${SUBJECT_ROOT}.${line}.control`;
}

/** The subject of one control endpoint, e.g. `inspect.demo.control.trainer.pause`. */
export function controlSubject(line: string, stage: string, endpoint: string): string {
  return `${controlSubjectRoot(line)}.${stage}.${endpoint}`;
}

/** The JetStream streams of one line. */
export interface LineStreamNames {
  /** Raw camera images (`inspect.<line>.image`). */
  images: string;
  /** Decoded images (`inspect.<line>.decoded`). */
  decoded: string;
  /** Verdicts (`inspect.<line>.verdict`). */
  verdicts: string;
  /** Training events (`inspect.<line>.training`). */
  training: string;
  /** Heatmaps of scored images (`inspect.<line>.heatmap.*`). */
  heatmaps: string;
}

/** Stream names of `line` (stream names cannot contain dots; line ids never do). */
export function streamNames(line: string): LineStreamNames {
  assertLineName(line);
  return {
    images: `INSPECT_${line}_IMAGES`,
    decoded: `INSPECT_${line}_DECODED`,
    verdicts: `INSPECT_${line}_VERDICTS`,
    training: `INSPECT_${line}_TRAINING`,
    heatmaps: `INSPECT_${line}_HEATMAPS`,
  };
}

/** Durable consumer of the image stream shared by every ingest process of a line. */
export const INGEST_CONSUMER = "ingest";
/** Durable consumer of the decoded stream shared by every scorer process of a line. */
export const SCORER_CONSUMER = "scorer";
/** Durable consumer of the decoded stream used by the line's trainer. */
export const TRAINER_CONSUMER = "trainer";

/** KV bucket holding the current model version of every line, one key per line. */
export const MODEL_VERSIONS_BUCKET = "inspect-model-versions";

/** The key naming the current model version of `line` in {@link MODEL_VERSIONS_BUCKET}. */
export function modelVersionKey(line: string): string {
  assertLineName(line);
  return line;
}

/** Object store bucket of `line`'s model versions. */
export function modelObjectBucket(line: string): string {
  assertLineName(line);
  return `inspect-models-${line}`;
}

/**
 * Object name prefix of version `version` in {@link modelObjectBucket} (each publication
 * appends its own suffix, so two trainers never write the same object).
 */
export function modelObjectName(version: number): string {
  return `model-v${version}`;
}

/** KV bucket reserving `line`'s Image-Ids (entries expire with the image stream's max age). */
export function imageIdBucket(line: string): string {
  assertLineName(line);
  return `inspect-image-ids-${line}`;
}

/** KV key of an Image-Id: base64url of its UTF-8 bytes, since ids may hold any character. */
export function imageIdKey(imageId: string): string {
  const bytes = new TextEncoder().encode(imageId);
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return "id_" + btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replaceAll("=", "");
}

/** `Nats-Msg-Id` of the verdict of an accepted image: one verdict per Image-Id. */
export function verdictMsgId(imageId: string): string {
  return `image:${imageId}`;
}

/**
 * `Nats-Msg-Id` of a rejection that cannot be keyed by Image-Id (missing or duplicate id):
 * keyed by the image message's stream sequence, so a redelivery never doubles it.
 */
export function rejectionMsgId(imageSeq: number): string {
  return `seq:${imageSeq}`;
}

/** `Nats-Msg-Id` of a heatmap: one per Image-Id, like the verdict. */
export function heatmapMsgId(imageId: string): string {
  return `heatmap:${imageId}`;
}

/** `Nats-Msg-Id` of a decoded image: ingest redeliveries never duplicate it downstream. */
export function decodedMsgId(imageId: string): string {
  return `decoded:${imageId}`;
}

/** Name of the control service (in `$SRV.INFO` / `$SRV.STATS`). */
export const CONTROL_SERVICE_NAME = "inspect-pipeline";
/** Version of the control service API (semver, required by the micro protocol). */
export const CONTROL_SERVICE_VERSION = "1.0.0";
