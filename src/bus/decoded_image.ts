/**
 * The internal decoded-image message on `inspect.<line>.decoded`: RGB bytes (HWC, the
 * decoder's output quantised back to the 8 bits it came from, so nothing is lost) plus the
 * headers that carry the image's identity to the trainer and the scorer.
 *
 * @module
 */
import { headers, type MsgHdrs } from "nats";
import {
  CAPTURED_AT_HEADER,
  IMAGE_ID_HEADER,
  IMAGE_SEQ_HEADER,
  IMAGE_SHAPE_HEADER,
  ORIGINAL_SIZE_HEADER,
  RECEIVED_AT_HEADER,
  TRAIN_HEADER,
  TRAIN_HEADER_NO,
} from "./subjects.ts";

/** Identity of an image as it travels through the pipeline. */
export interface ImageIdentity {
  /** The camera's Image-Id. */
  imageId: string;
  /** Sequence of the original message in the image stream. */
  imageSeq: number;
  /** Valid Captured-At, or null. */
  capturedAt: string | null;
}

/** A decoded image with its identity. */
export interface DecodedImageMessage extends ImageIdentity {
  /** Side of the square image. */
  size: number;
  /** `size × size × 3` RGB values in [0, 1]. */
  pixels: Float32Array;
  /**
   * The image's size as the camera sent it, before ingest stretched it to `size × size`; null
   * when the producer did not say (an ingest older than the header).
   */
  original: { width: number; height: number } | null;
  /** When ingest received the image (null when the header is absent or invalid). */
  receivedAt?: Date | null;
  /** The camera sent `Image-Train: no`: score it, never train on it (absent: false). */
  heldOut?: boolean;
}

/** Whether a camera's {@link TRAIN_HEADER} value keeps its image out of training. */
export function isHeldOut(value: string | undefined | null): boolean {
  return value?.trim().toLowerCase() === TRAIN_HEADER_NO;
}

/** Encodes pixels in [0, 1] as bytes (exact for decoder output, which is `byte / 255`). */
export function pixelsToBytes(pixels: Float32Array): Uint8Array {
  const bytes = new Uint8Array(pixels.length);
  for (let i = 0; i < pixels.length; i++) {
    bytes[i] = Math.round(Math.min(1, Math.max(0, pixels[i])) * 255);
  }
  return bytes;
}

/** Decodes bytes back to pixels in [0, 1]. */
export function bytesToPixels(bytes: Uint8Array): Float32Array {
  const pixels = new Float32Array(bytes.length);
  for (let i = 0; i < bytes.length; i++) pixels[i] = bytes[i] / 255;
  return pixels;
}

/** Headers and payload of a decoded-image message. */
export function encodeDecodedImage(
  image: DecodedImageMessage,
  receivedAt: Date,
): { payload: Uint8Array; headers: MsgHdrs } {
  const expected = image.size * image.size * 3;
  if (image.pixels.length !== expected) {
    throw new RangeError(
      `expected ${expected} values for ${image.size}², got ${image.pixels.length}`,
    );
  }
  const h = headers();
  h.set(IMAGE_ID_HEADER, image.imageId);
  h.set(IMAGE_SEQ_HEADER, String(image.imageSeq));
  if (image.capturedAt) h.set(CAPTURED_AT_HEADER, image.capturedAt);
  h.set(IMAGE_SHAPE_HEADER, `${image.size}x${image.size}x3`);
  h.set(RECEIVED_AT_HEADER, receivedAt.toISOString());
  if (image.original) {
    h.set(ORIGINAL_SIZE_HEADER, `${image.original.width}x${image.original.height}`);
  }
  if (image.heldOut) h.set(TRAIN_HEADER, TRAIN_HEADER_NO);
  return { payload: pixelsToBytes(image.pixels), headers: h };
}

/** Why a decoded-image message could not be read (a producer/consumer mismatch). */
export class DecodedImageError extends Error {
  /** Whatever identity could be read, for the rejection verdict. */
  readonly identity: Partial<ImageIdentity>;
  /** Creates the error. */
  constructor(message: string, identity: Partial<ImageIdentity>) {
    super(message);
    this.name = "DecodedImageError";
    this.identity = identity;
  }
}

/** Reads a decoded-image message, checking it holds a `size × size` RGB image. */
export function decodeDecodedImage(
  payload: Uint8Array,
  hdrs: MsgHdrs | undefined,
  size: number,
): DecodedImageMessage {
  const imageId = hdrs?.get(IMAGE_ID_HEADER) ?? "";
  const imageSeq = Number(hdrs?.get(IMAGE_SEQ_HEADER) ?? NaN);
  const capturedAt = hdrs?.get(CAPTURED_AT_HEADER) || null;
  const identity = { imageId, imageSeq, capturedAt };
  if (!imageId || !Number.isInteger(imageSeq) || imageSeq < 1) {
    throw new DecodedImageError("decoded image lacks Image-Id or Image-Seq headers", identity);
  }
  const shape = hdrs?.get(IMAGE_SHAPE_HEADER) ?? "";
  if (shape !== `${size}x${size}x3` || payload.length !== size * size * 3) {
    throw new DecodedImageError(
      `decoded image is ${shape || "unshaped"} with ${payload.length} bytes; this stage ` +
        `expects ${size}x${size}x3 (do ingest and this stage use the same model.imageSize?)`,
      identity,
    );
  }
  const receivedAt = new Date(hdrs?.get(RECEIVED_AT_HEADER) ?? NaN);
  return {
    ...identity,
    size,
    pixels: bytesToPixels(payload),
    original: parseOriginalSize(hdrs?.get(ORIGINAL_SIZE_HEADER)),
    receivedAt: Number.isNaN(receivedAt.getTime()) ? null : receivedAt,
    heldOut: isHeldOut(hdrs?.get(TRAIN_HEADER)),
  };
}

/** `<width>x<height>` with positive integers, else null. */
export function parseOriginalSize(
  value: string | undefined,
): { width: number; height: number } | null {
  const match = /^(\d{1,6})x(\d{1,6})$/.exec(value ?? "");
  if (!match) return null;
  const [width, height] = [Number(match[1]), Number(match[2])];
  return width > 0 && height > 0 ? { width, height } : null;
}

/** Room left for the headers of a decoded-image message (Image-Id up to 256 bytes, ids, times). */
export const DECODED_HEADER_ALLOWANCE = 2048;

/** Largest size in bytes of a decoded-image message of `size × size` pixels, headers included. */
export function decodedMessageBytes(size: number): number {
  return size * size * 3 + DECODED_HEADER_ALLOWANCE;
}

/**
 * Throws a clear error when a decoded image of `size` px cannot be published on a server whose
 * `max_payload` is `maxPayload` bytes: every image of the line would fail otherwise.
 */
export function assertDecodedImageFits(size: number, maxPayload: number): void {
  const needed = decodedMessageBytes(size);
  if (needed <= maxPayload) return;
  const largest = Math.floor(Math.sqrt((maxPayload - DECODED_HEADER_ALLOWANCE) / 3) / 32) * 32;
  throw new Error(
    `model.imageSize ${size} does not fit this NATS server: a decoded image takes up to ` +
      `${needed} bytes, the server's max_payload is ${maxPayload}; use model.imageSize ≤ ` +
      `${largest} or raise max_payload in the server configuration`,
  );
}
