/**
 * The `synthetic-line` generator: procedurally rendered photos of a manufactured part (a
 * bolted metal bracket carrying a blue clip, on a conveyor belt), about 10 % of them with a
 * structural or logical defect, under varying pose, lighting and sensor noise.
 *
 * Each image is an SVG scene rendered by sharp (librsvg), then lit and noised in plain
 * TypeScript from a seeded PRNG and JPEG-encoded, so the same seed gives the same bytes.
 *
 * @module
 */
import sharp from "sharp";
import { SeededRandom } from "../util/prng.ts";
import { CAPTURED_AT_HEADER, IMAGE_ID_HEADER, imageSubject } from "./contract.ts";
import { type ManifestEntry, openStreamWriter, type StreamInfo } from "./format.ts";

/** Defects of the part's material (MVTec LOCO "structural anomalies"). */
export const STRUCTURAL_DEFECTS = ["scratch", "crack", "missing_piece", "contamination"] as const;
/** Defects of the part's composition (MVTec LOCO "logical anomalies"). */
export const LOGICAL_DEFECTS = ["wrong_count", "wrong_colour", "misplaced_part"] as const;
/** Every defect the generator can draw. */
export const PART_DEFECTS: readonly PartDefect[] = [...STRUCTURAL_DEFECTS, ...LOGICAL_DEFECTS];
/** A defect kind. */
export type PartDefect =
  | (typeof STRUCTURAL_DEFECTS)[number]
  | (typeof LOGICAL_DEFECTS)[number];

/** Encoded output formats of {@link renderPart}. */
export type PartImageFormat = "jpeg" | "png" | "webp";

/** How to render one part image. */
export interface PartRenderOptions {
  /** Side of the square image in pixels. */
  size: number;
  /** Defect to draw; none means a normal part. */
  defect?: PartDefect;
  /** Encoding (default JPEG). */
  format?: PartImageFormat;
  /** JPEG/WebP quality 1–100 (default 82). */
  quality?: number;
}

// Scene geometry in a 128-unit view box (scaled to any output size).
const PLATE_W = 76;
const PLATE_H = 54;
const BOLT_INSET = 9;
const CLIP = { x: 0, y: 4, w: 20, h: 11 };
const CLIP_BLUE = [42, 111, 219] as const;

/**
 * The SVG scene of one part. Pure: all variation comes from `rng`, so the scene (and the
 * order of draws) is fixed by the seed.
 */
export function partSvg(rng: SeededRandom, size: number, defect?: PartDefect): string {
  const f = (n: number) => n.toFixed(2);
  const cx = 64 + rng.uniform(-5, 5);
  const cy = 64 + rng.uniform(-5, 5);
  const angle = rng.uniform(-4, 4);
  const lightAngle = rng.uniform(0, 360);
  const beltPhase = rng.uniform(0, 8);
  const plateTone = Math.round(rng.uniform(172, 196));
  const hw = PLATE_W / 2;
  const hh = PLATE_H / 2;

  // Belt: dark with faint ribs, the part's drop shadow on it.
  const ribs: string[] = [];
  for (let y = -8 + beltPhase; y < 136; y += 8) {
    ribs.push(`<rect x="0" y="${f(y)}" width="128" height="1.4" fill="#3b3f44"/>`);
  }

  let bolts: [number, number][] = [
    [-hw + BOLT_INSET, -hh + BOLT_INSET],
    [hw - BOLT_INSET, -hh + BOLT_INSET],
    [-hw + BOLT_INSET, hh - BOLT_INSET],
    [hw - BOLT_INSET, hh - BOLT_INSET],
  ];
  if (defect === "wrong_count") {
    if (rng.next() < 0.5) bolts.splice(rng.int(4), 1);
    else bolts = [...bolts, [rng.pick([-1, 1]) * (hw - BOLT_INSET), 0]];
  }
  const boltSvg = bolts.map(([x, y]) =>
    `<circle cx="${f(x)}" cy="${f(y)}" r="4.6" fill="#4a4d52"/>` +
    `<circle cx="${f(x - 0.9)}" cy="${f(y - 0.9)}" r="2.2" fill="#8d9299"/>`
  ).join("");

  let clipColour: readonly number[] = CLIP_BLUE.map((c) => clampByte(c + rng.uniform(-10, 10)));
  if (defect === "wrong_colour") {
    clipColour = rng.pick([[200, 48, 40], [222, 182, 30], [40, 160, 70]]);
  }
  let clip = { x: CLIP.x, y: CLIP.y, rotate: 0 };
  if (defect === "misplaced_part") {
    clip = rng.pick([
      { x: -CLIP.x - CLIP.w, y: CLIP.y, rotate: 0 },
      { x: CLIP.x, y: -CLIP.y - CLIP.h, rotate: 0 },
      { x: -6, y: -22, rotate: 90 },
    ]);
  }
  const clipSvg =
    `<g transform="rotate(${clip.rotate} ${f(clip.x + CLIP.w / 2)} ${
      f(clip.y + CLIP.h / 2)
    })"><rect x="${f(clip.x)}" y="${f(clip.y)}" width="${CLIP.w}" height="${CLIP.h}" rx="2" ` +
    `fill="rgb(${clipColour.map(Math.round).join(",")})"/>` +
    `<rect x="${f(clip.x + 3)}" y="${f(clip.y + 3)}" width="${CLIP.w - 6}" height="${
      CLIP.h - 6
    }" ` +
    `fill="#000" opacity="0.25"/></g>`;

  let defectSvg = "";
  let mask = "";
  if (defect === "scratch") {
    const x0 = rng.uniform(-hw + 6, hw - 30);
    const y0 = rng.uniform(-hh + 6, hh - 6);
    const len = rng.uniform(22, 40);
    const dir = rng.uniform(-0.6, 0.6);
    defectSvg =
      `<path d="M ${f(x0)} ${f(y0)} q ${f(len / 2)} ${f(rng.uniform(-4, 4))} ${f(len)} ${
        f(len * dir)
      }" stroke="#f2f4f6" stroke-width="${f(rng.uniform(0.8, 1.3))}" ` +
      `fill="none" stroke-linecap="round" opacity="0.9"/>`;
  } else if (defect === "crack") {
    const side = rng.pick([-1, 1]);
    let x = side * hw;
    let y = rng.uniform(-hh + 8, hh - 8);
    const points = [`${f(x)} ${f(y)}`];
    for (let i = 0; i < 6; i++) {
      x -= side * rng.uniform(3, 7);
      y += rng.uniform(-4, 4);
      points.push(`${f(x)} ${f(y)}`);
    }
    defectSvg = `<polyline points="${points.join(" ")}" stroke="#15171a" stroke-width="${
      f(rng.uniform(1.0, 1.6))
    }" fill="none" stroke-linejoin="round"/>`;
  } else if (defect === "missing_piece") {
    // A chunk broken off one corner: masked out, so the belt shows through.
    const sx = rng.pick([-1, 1]);
    const sy = rng.pick([-1, 1]);
    const a = rng.uniform(18, 28);
    const b = rng.uniform(14, 22);
    const jag = rng.uniform(-3, 3);
    const poly = [
      [sx * (hw + 2), sy * (hh + 2)],
      [sx * (hw + 2), sy * (hh - b)],
      [sx * (hw - a / 2), sy * (hh - b / 2 + jag)],
      [sx * (hw - a), sy * (hh + 2)],
    ].map(([x, y]) => `${f(x)},${f(y)}`).join(" ");
    mask = `<mask id="broken"><rect x="-80" y="-80" width="160" height="160" fill="#fff"/>` +
      `<polygon points="${poly}" fill="#000"/></mask>`;
  } else if (defect === "contamination") {
    const x = rng.uniform(-hw + 8, hw - 8);
    const y = rng.uniform(-hh + 8, hh - 8);
    const r = rng.uniform(3, 6);
    const blobs: string[] = [];
    for (let i = 0; i < 4; i++) {
      blobs.push(
        `<ellipse cx="${f(x + rng.uniform(-r, r) / 2)}" cy="${f(y + rng.uniform(-r, r) / 2)}" ` +
          `rx="${f(r * rng.uniform(0.6, 1))}" ry="${f(r * rng.uniform(0.4, 0.9))}" ` +
          `fill="#5b4428" opacity="0.75"/>`,
      );
    }
    defectSvg = blobs.join("");
  }

  const t = plateTone;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size}" height="${size}" ` +
    `viewBox="0 0 128 128"><defs>` +
    `<linearGradient id="light" gradientTransform="rotate(${f(lightAngle)} 0.5 0.5)">` +
    `<stop offset="0" stop-color="rgb(${t + 30},${t + 30},${t + 32})"/>` +
    `<stop offset="1" stop-color="rgb(${t - 40},${t - 40},${t - 37})"/></linearGradient>` +
    mask + `</defs>` +
    `<rect width="128" height="128" fill="#2e3236"/>${ribs.join("")}` +
    `<g transform="translate(${f(cx)} ${f(cy)}) rotate(${f(angle)})">` +
    `<g${mask ? ' mask="url(#broken)"' : ""}>` +
    `<rect x="${-hw + 2.5}" y="${-hh + 3.5}" width="${PLATE_W}" height="${PLATE_H}" rx="6" ` +
    `fill="#000" opacity="0.35"/>` +
    `<rect x="${-hw}" y="${-hh}" width="${PLATE_W}" height="${PLATE_H}" rx="6" fill="url(#light)"/>` +
    `<circle cx="-10" cy="-4" r="7" fill="#2e3236"/>` +
    `<circle cx="-10" cy="-4" r="7" fill="none" stroke="#6c7077" stroke-width="1.2"/>` +
    boltSvg + clipSvg + defectSvg + `</g></g></svg>`;
}

/**
 * Renders one part image: the SVG scene, then a global gain and white balance (lighting)
 * and Gaussian sensor noise, encoded as JPEG (default), PNG or WebP.
 */
export async function renderPart(
  rng: SeededRandom,
  options: PartRenderOptions,
): Promise<Uint8Array> {
  const { size, defect, format = "jpeg", quality = 82 } = options;
  const svg = partSvg(rng, size, defect);
  const { data, info } = await sharp(new TextEncoder().encode(svg))
    .removeAlpha()
    .raw()
    .toBuffer({ resolveWithObject: true });
  const gain = rng.uniform(0.82, 1.15);
  const balance = [rng.uniform(0.96, 1.04), 1, rng.uniform(0.96, 1.04)];
  const sigma = rng.uniform(1.5, 4);
  const pixels = new Uint8Array(data.length);
  for (let i = 0; i < data.length; i++) {
    pixels[i] = clampByte(data[i] * gain * balance[i % 3] + sigma * rng.normal());
  }
  const image = sharp(pixels, {
    raw: { width: info.width, height: info.height, channels: 3 },
  });
  const encoded = format === "png"
    ? await image.png({ compressionLevel: 9 }).toBuffer()
    : format === "webp"
    ? await image.webp({ quality }).toBuffer()
    : await image.jpeg({ quality }).toBuffer();
  return new Uint8Array(encoded);
}

/** Options of the synthetic line stream. */
export interface SyntheticLineOptions {
  /** Number of images. */
  count: number;
  /** PRNG seed: same seed, same bytes. */
  seed: number;
  /** Fraction of anomalous images (exactly `round(count × ratio)` of them). */
  anomalyRatio: number;
  /** Image side in pixels. */
  size: number;
  /** Line name in the subject and image ids. */
  line: string;
  /** Mean time between images in ms. */
  intervalMs: number;
  /** Capture time of the first image (RFC 3339). */
  startTime: string;
}

/** Defaults of the committed `fixtures/synthetic-line`. */
export const SYNTHETIC_LINE_DEFAULTS: SyntheticLineOptions = {
  count: 300,
  seed: 20240501,
  anomalyRatio: 0.1,
  size: 128,
  line: "synthetic-line",
  intervalMs: 200,
  startTime: "2024-05-01T08:00:00.000Z",
};

/** One generated image with its ground truth. */
export interface SyntheticImage {
  /** Position in the stream. */
  index: number;
  /** `Image-Id` header value. */
  imageId: string;
  /** Milliseconds since the first image. */
  offsetMs: number;
  /** Encoded JPEG. */
  payload: Uint8Array;
  /** The drawn defect; none for a normal part. */
  defect?: PartDefect;
}

/**
 * Generates the images of a synthetic line in order. Anomalous positions and their defects
 * (cycling through every kind) are drawn first from `seed`; each image then gets its own
 * PRNG derived from `seed` and its index.
 */
export async function* generateSyntheticLine(
  options: SyntheticLineOptions,
): AsyncGenerator<SyntheticImage> {
  const { count, seed, anomalyRatio, size, intervalMs } = options;
  if (!Number.isInteger(count) || count < 0) throw new RangeError(`count must be ≥ 0: ${count}`);
  if (!(anomalyRatio >= 0 && anomalyRatio <= 1)) {
    throw new RangeError(`anomalyRatio must be in [0, 1]: ${anomalyRatio}`);
  }
  const plan = new SeededRandom(seed);
  const anomalous = plan.sample([...Array(count).keys()], Math.round(count * anomalyRatio));
  const defects = new Map<number, PartDefect>();
  const kinds = plan.shuffled(PART_DEFECTS);
  anomalous.sort((a, b) => a - b).forEach((index, k) =>
    defects.set(index, kinds[k % kinds.length])
  );
  let offsetMs = 0;
  for (let index = 0; index < count; index++) {
    const rng = new SeededRandom(mixSeed(seed, index));
    if (index > 0) offsetMs += Math.round(intervalMs * rng.uniform(0.9, 1.1));
    const defect = defects.get(index);
    const payload = await renderPart(rng, { size, defect });
    yield {
      index,
      imageId: `${options.line}-${String(index).padStart(5, "0")}`,
      offsetMs,
      payload,
      defect,
    };
  }
}

/** Writes a synthetic line stream (messages + manifest + metadata) to `dir`. */
export async function buildSyntheticLineStream(
  dir: string,
  options: SyntheticLineOptions,
  writer: { force?: boolean; createdBy: string; onProgress?: (done: number) => void },
): Promise<StreamInfo> {
  const start = Date.parse(options.startTime);
  if (Number.isNaN(start)) throw new Error(`startTime is not a date: ${options.startTime}`);
  const stream = await openStreamWriter(dir, {
    force: writer.force,
    description: {
      name: options.line,
      generator: "synthetic-line/1",
      seed: options.seed,
      createdBy: writer.createdBy,
      params: { ...options },
    },
  });
  const subject = imageSubject(options.line);
  for await (const image of generateSyntheticLine(options)) {
    const seq = await stream.append({
      subject,
      offsetMs: image.offsetMs,
      headers: {
        [IMAGE_ID_HEADER]: [image.imageId],
        [CAPTURED_AT_HEADER]: [new Date(start + image.offsetMs).toISOString()],
      },
      payload: image.payload,
    });
    const entry: ManifestEntry = image.defect
      ? { seq, imageId: image.imageId, label: "anomalous", defect: image.defect }
      : { seq, imageId: image.imageId, label: "normal" };
    await stream.label(entry);
    writer.onProgress?.(seq + 1);
  }
  return await stream.close();
}

/** Derives an independent per-item seed (a 32-bit integer hash of seed and index). */
export function mixSeed(seed: number, index: number): number {
  let h = Math.imul((seed >>> 0) ^ 0x9e3779b9, 0x85ebca6b) ^ Math.imul(index + 1, 0xc2b2ae35);
  h = Math.imul(h ^ (h >>> 16), 0x7feb352d);
  h = Math.imul(h ^ (h >>> 15), 0x846ca68b);
  return (h ^ (h >>> 16)) >>> 0;
}

function clampByte(value: number): number {
  return value < 0 ? 0 : value > 255 ? 255 : Math.round(value);
}
