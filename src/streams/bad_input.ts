/**
 * The `bad-input` stream: good part images interleaved with inputs every consumer must
 * reject cleanly (truncated JPEG, zero bytes, a text file, a 100-megapixel PNG bomb, a
 * message without `Image-Id`, a reused `Image-Id`). Its manifest states the error code
 * expected for each bad message.
 *
 * @module
 */
import { deflateSync } from "node:zlib";
import { SeededRandom } from "../util/prng.ts";
import { CAPTURED_AT_HEADER, IMAGE_ID_HEADER, imageSubject } from "./contract.ts";
import {
  type ExpectedError,
  type ManifestEntry,
  type MessageHeaders,
  openStreamWriter,
  type StreamInfo,
} from "./format.ts";
import { mixSeed, type PartDefect, type PartImageFormat, renderPart } from "./synthetic_line.ts";

/** Options of the bad-input stream. */
export interface BadInputOptions {
  /** PRNG seed of the good images. */
  seed: number;
  /** Side of the good images. */
  size: number;
  /** Line name in the subject and image ids. */
  line: string;
  /** Side of the square PNG bomb (10 000 → 100 megapixels). */
  bombSide: number;
}

/** Defaults of the committed `fixtures/bad-input`. */
export const BAD_INPUT_DEFAULTS: BadInputOptions = {
  seed: 404,
  size: 128,
  line: "bad-input",
  bombSide: 10_000,
};

/** One planned message of the bad-input stream. */
type Step =
  | { kind: "good"; format: PartImageFormat; defect?: PartDefect }
  | { kind: "bad"; what: BadPayload; expected: ExpectedError }
  | { kind: "no_id"; expected: "missing_image_id" }
  | { kind: "reuse_id"; of: number; expected: "duplicate_image_id" };

type BadPayload = "truncated_jpeg" | "zero_bytes" | "text" | "png_bomb";

// Fixed order: each bad message sits between good ones, so a consumer that stalls or drops
// its neighbours on bad input is caught.
const PLAN: Step[] = [
  { kind: "good", format: "jpeg" },
  { kind: "good", format: "jpeg" },
  { kind: "bad", what: "truncated_jpeg", expected: "undecodable" },
  { kind: "good", format: "png" },
  { kind: "bad", what: "zero_bytes", expected: "empty" },
  { kind: "good", format: "jpeg" },
  { kind: "bad", what: "text", expected: "unsupported_type" },
  { kind: "good", format: "webp" },
  { kind: "bad", what: "png_bomb", expected: "too_many_pixels" },
  { kind: "good", format: "jpeg" },
  { kind: "no_id", expected: "missing_image_id" },
  { kind: "good", format: "jpeg", defect: "scratch" },
  { kind: "reuse_id", of: 0, expected: "duplicate_image_id" },
  { kind: "good", format: "jpeg" },
  { kind: "good", format: "jpeg", defect: "wrong_colour" },
  { kind: "good", format: "jpeg" },
];

/** Writes the bad-input stream to `dir`. */
export async function buildBadInputStream(
  dir: string,
  options: BadInputOptions,
  writer: { force?: boolean; createdBy: string },
): Promise<StreamInfo> {
  const stream = await openStreamWriter(dir, {
    force: writer.force,
    description: {
      name: options.line,
      generator: "bad-input/1",
      seed: options.seed,
      createdBy: writer.createdBy,
      params: { ...options },
    },
  });
  const subject = imageSubject(options.line);
  const start = Date.parse("2024-05-01T09:00:00.000Z");
  const idOf = (index: number) => `${options.line}-${String(index).padStart(5, "0")}`;
  const good = (index: number, format: PartImageFormat, defect?: PartDefect) =>
    renderPart(new SeededRandom(mixSeed(options.seed, index)), {
      size: options.size,
      format,
      defect,
    });

  for (const [index, step] of PLAN.entries()) {
    const offsetMs = index * 100;
    const capturedAt = new Date(start + offsetMs).toISOString();
    const headers: MessageHeaders = {
      [IMAGE_ID_HEADER]: [idOf(index)],
      [CAPTURED_AT_HEADER]: [capturedAt],
    };
    let payload: Uint8Array;
    let entry: ManifestEntry;
    if (step.kind === "good") {
      payload = await good(index, step.format, step.defect);
      entry = step.defect
        ? { seq: index, imageId: idOf(index), label: "anomalous", defect: step.defect }
        : { seq: index, imageId: idOf(index), label: "normal" };
    } else if (step.kind === "bad") {
      payload = await badPayload(step.what, index, options);
      entry = { seq: index, imageId: idOf(index), label: "invalid", expectedError: step.expected };
    } else if (step.kind === "no_id") {
      payload = await good(index, "jpeg");
      delete headers[IMAGE_ID_HEADER];
      entry = { seq: index, imageId: null, label: "invalid", expectedError: step.expected };
    } else {
      // A different, valid image under an id already used: only the id is wrong.
      payload = await good(index, "jpeg");
      headers[IMAGE_ID_HEADER] = [idOf(step.of)];
      entry = {
        seq: index,
        imageId: idOf(step.of),
        label: "invalid",
        expectedError: step.expected,
      };
    }
    await stream.append({ subject, offsetMs, headers, payload });
    await stream.label(entry);
  }
  return await stream.close();
}

async function badPayload(
  what: BadPayload,
  index: number,
  options: BadInputOptions,
): Promise<Uint8Array> {
  switch (what) {
    case "truncated_jpeg": {
      const rng = new SeededRandom(mixSeed(options.seed, index));
      const whole = await renderPart(rng, { size: options.size, format: "jpeg" });
      // Headers intact, entropy-coded data cut: the header parses, decoding fails.
      return whole.slice(0, Math.floor(whole.length * 0.6));
    }
    case "zero_bytes":
      return new Uint8Array(0);
    case "text":
      return new TextEncoder().encode(
        "This is a plain-text maintenance note, not an image.\nBelt 3 serviced at 08:55.\n",
      );
    case "png_bomb":
      return pngBomb(options.bombSide);
  }
}

/**
 * A valid, all-black `side × side` 1-bit greyscale PNG. It is tiny on disk (deflate packs
 * the zero rows about 1000:1) but claims side² pixels: a decompression bomb for any decoder
 * that allocates before checking dimensions.
 */
export function pngBomb(side: number): Uint8Array {
  if (!Number.isInteger(side) || side < 1 || side > 0x7fffffff) {
    throw new RangeError(`side must be a positive 31-bit integer: ${side}`);
  }
  const rowBytes = 1 + Math.ceil(side / 8); // filter byte + packed bits
  const raw = new Uint8Array(rowBytes * side); // all zero: filter 0, black pixels
  const ihdr = new Uint8Array(13);
  const view = new DataView(ihdr.buffer);
  view.setUint32(0, side);
  view.setUint32(4, side);
  ihdr.set([1, 0, 0, 0, 0], 8); // bit depth 1, greyscale, deflate, adaptive filter, no interlace
  const idat = new Uint8Array(deflateSync(raw, { level: 9 }));
  const signature = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  return concat([
    new Uint8Array(signature),
    pngChunk("IHDR", ihdr),
    pngChunk("IDAT", idat),
    pngChunk("IEND", new Uint8Array(0)),
  ]);
}

function pngChunk(type: string, data: Uint8Array): Uint8Array {
  const chunk = new Uint8Array(12 + data.length);
  const view = new DataView(chunk.buffer);
  view.setUint32(0, data.length);
  chunk.set(new TextEncoder().encode(type), 4);
  chunk.set(data, 8);
  view.setUint32(8 + data.length, crc32(chunk.subarray(4, 8 + data.length)));
  return chunk;
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

/** CRC-32 (ISO 3309), as PNG chunks require. */
export function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const byte of bytes) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, part) => n + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}
