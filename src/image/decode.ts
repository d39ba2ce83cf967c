/**
 * Decoding and validation of line images with sharp: the one place where untrusted bytes
 * become pixels. Every rejection carries a stable error code that ends up in verdicts.
 *
 * @module
 */
import sharp from "sharp";

/** Why an image was refused; stable codes published in `rejected` verdicts. */
export type ImageErrorCode =
  | "empty"
  | "too_large"
  | "undecodable"
  | "unsupported_type"
  | "too_many_pixels";

/** An image that cannot enter the pipeline, with a machine-readable reason. */
export class ImageRejectedError extends Error {
  /** Stable machine-readable reason. */
  readonly code: ImageErrorCode;
  /** Creates the error with its code and a human-readable message. */
  constructor(code: ImageErrorCode, message: string) {
    super(message);
    this.name = "ImageRejectedError";
    this.code = code;
  }
}

/** Limits applied before any pixel is decoded. */
export interface DecodeLimits {
  /** Largest accepted encoded payload, in bytes. */
  maxBytes: number;
  /** Largest accepted width × height (decompression-bomb guard, passed to sharp too). */
  maxPixels: number;
}

/** Defaults: 20 MB payloads, 40 megapixels. */
export const DEFAULT_DECODE_LIMITS: DecodeLimits = { maxBytes: 20_000_000, maxPixels: 40_000_000 };

/** Encoded formats the product accepts. */
export type ImageFormat = "jpeg" | "png" | "webp";

/** A decoded, resized, normalised image. */
export interface DecodedImage {
  /** `size × size × 3` RGB values in [0, 1], row-major HWC. */
  pixels: Float32Array;
  /** Original width in pixels. */
  width: number;
  /** Original height in pixels. */
  height: number;
  /** Detected encoded format. */
  format: ImageFormat;
}

/** Recognises JPEG, PNG and WebP by their signatures; anything else is unsupported. */
export function sniffFormat(bytes: Uint8Array): ImageFormat | undefined {
  if (bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) {
    return "jpeg";
  }
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (bytes.length >= 8 && png.every((b, i) => bytes[i] === b)) return "png";
  const ascii = (from: number, to: number) => String.fromCharCode(...bytes.subarray(from, to));
  if (bytes.length >= 12 && ascii(0, 4) === "RIFF" && ascii(8, 12) === "WEBP") return "webp";
  return undefined;
}

/**
 * Validates and decodes one encoded image, resized (stretched, no crop, so a defect at the
 * border is never cut away) to `size × size` RGB in [0, 1].
 *
 * @throws {ImageRejectedError} with the code saying why.
 */
export async function decodeImage(
  bytes: Uint8Array,
  size: number,
  limits: DecodeLimits = DEFAULT_DECODE_LIMITS,
): Promise<DecodedImage> {
  if (bytes.length === 0) throw new ImageRejectedError("empty", "payload is empty");
  if (bytes.length > limits.maxBytes) {
    throw new ImageRejectedError(
      "too_large",
      `payload is ${bytes.length} bytes, above the limit of ${limits.maxBytes}`,
    );
  }
  const format = sniffFormat(bytes);
  if (!format) {
    throw new ImageRejectedError(
      "unsupported_type",
      "payload is not a JPEG, PNG or WebP image",
    );
  }
  let width: number | undefined;
  let height: number | undefined;
  try {
    ({ width, height } = await sharp(bytes, { limitInputPixels: false }).metadata());
  } catch (error) {
    throw new ImageRejectedError(
      "undecodable",
      `cannot read ${format} header: ${messageOf(error)}`,
    );
  }
  if (!width || !height) {
    throw new ImageRejectedError("undecodable", `${format} header has no dimensions`);
  }
  if (width * height > limits.maxPixels) {
    throw new ImageRejectedError(
      "too_many_pixels",
      `${width}×${height} is ${width * height} pixels, above the limit of ${limits.maxPixels}`,
    );
  }
  let raw: Uint8Array;
  try {
    raw = await sharp(bytes, { limitInputPixels: limits.maxPixels, failOn: "truncated" })
      .removeAlpha()
      .toColourspace("srgb")
      .resize(size, size, { fit: "fill", kernel: "lanczos3" })
      .raw()
      .toBuffer();
  } catch (error) {
    throw new ImageRejectedError("undecodable", `cannot decode ${format}: ${messageOf(error)}`);
  }
  if (raw.length !== size * size * 3) {
    throw new ImageRejectedError(
      "undecodable",
      `decoded ${raw.length} bytes, expected ${size * size * 3} (${size}×${size} RGB)`,
    );
  }
  const pixels = new Float32Array(raw.length);
  for (let i = 0; i < raw.length; i++) pixels[i] = raw[i] / 255;
  return { pixels, width, height, format };
}

/** Extensions `listImageFiles` picks up. */
export const IMAGE_EXTENSIONS: readonly string[] = [".jpg", ".jpeg", ".png", ".webp"];

/**
 * Image files directly inside `dir`, sorted by name. Files with other extensions are
 * returned in `skipped` so callers can report them.
 */
export async function listImageFiles(
  dir: string,
): Promise<{ images: string[]; skipped: string[] }> {
  const images: string[] = [];
  const skipped: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (!entry.isFile) continue;
    const lower = entry.name.toLowerCase();
    const path = `${dir.replace(/\/+$/, "")}/${entry.name}`;
    (IMAGE_EXTENSIONS.some((ext) => lower.endsWith(ext)) ? images : skipped).push(path);
  }
  images.sort();
  skipped.sort();
  return { images, skipped };
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
