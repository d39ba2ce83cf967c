/**
 * Loading a directory of image files for the offline commands: bad files are reported by
 * name and skipped, never fatal.
 *
 * @module
 */
import {
  decodeImage,
  DEFAULT_DECODE_LIMITS,
  ImageRejectedError,
  listImageFiles,
} from "./decode.ts";

/** A decoded file. */
export interface LoadedImage {
  /** Path of the file. */
  file: string;
  /** `size × size × 3` RGB in [0, 1]. */
  pixels: Float32Array;
}

/** A file that could not be used, and why. */
export interface SkippedFile {
  /** Path of the file. */
  file: string;
  /** Error code (`unsupported_extension` or an {@link ImageRejectedError} code). */
  code: string;
  /** Human-readable reason. */
  message: string;
}

/** Decodes every image in `dir` at `size`; returns the good ones and the skipped ones. */
export async function loadImageDirectory(
  dir: string,
  size: number,
  onSkip: (skipped: SkippedFile) => void = () => {},
): Promise<{ images: LoadedImage[]; skipped: SkippedFile[] }> {
  let listing;
  try {
    listing = await listImageFiles(dir);
  } catch (error) {
    throw new Error(`cannot read image directory ${dir}: ${(error as Error).message}`);
  }
  const skipped: SkippedFile[] = listing.skipped.map((file) => ({
    file,
    code: "unsupported_extension",
    message: "not a .jpg, .jpeg, .png or .webp file",
  }));
  skipped.forEach(onSkip);
  const images: LoadedImage[] = [];
  for (const file of listing.images) {
    try {
      const bytes = await Deno.readFile(file);
      const { pixels } = await decodeImage(bytes, size, DEFAULT_DECODE_LIMITS);
      images.push({ file, pixels });
    } catch (error) {
      const entry = error instanceof ImageRejectedError
        ? { file, code: error.code, message: error.message }
        : { file, code: "unreadable", message: (error as Error).message };
      skipped.push(entry);
      onSkip(entry);
    }
  }
  return { images, skipped };
}
