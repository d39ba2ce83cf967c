/**
 * Anomaly maps as small 8-bit greyscale PNGs (and back), and the coloured, translucent overlay
 * the dashboard lays over the part's photo. The scale is linear from 0: a byte `b` stands for
 * the map value `b / 255 · scaleMax` (values below 0 are stored as 0, above `scaleMax` as 255).
 *
 * @module
 */
import sharp from "sharp";

/** A heatmap PNG's decoded values. */
export interface DecodedHeatmap {
  /** Side of the square map. */
  size: number;
  /** Map values recovered from the bytes (`b / 255 · scaleMax`), row-major. */
  values: Float32Array;
}

/** Bytes of a map under the linear 0..`scaleMax` scale. */
export function quantiseMap(map: ArrayLike<number>, scaleMax: number): Uint8Array {
  if (!(scaleMax > 0) || !Number.isFinite(scaleMax)) {
    throw new RangeError(`heatmap scaleMax must be a positive finite number, got ${scaleMax}`);
  }
  const bytes = new Uint8Array(map.length);
  for (let i = 0; i < map.length; i++) {
    bytes[i] = Math.round(255 * Math.min(1, Math.max(0, map[i] / scaleMax)));
  }
  return bytes;
}

/** Encodes a row-major `size × size` map as an 8-bit greyscale PNG. */
export async function encodeHeatmapPng(
  map: ArrayLike<number>,
  size: number,
  scaleMax: number,
): Promise<Uint8Array> {
  if (map.length !== size * size) {
    throw new RangeError(`expected a ${size}×${size} map, got ${map.length} values`);
  }
  const png = await sharp(quantiseMap(map, scaleMax), {
    raw: { width: size, height: size, channels: 1 },
  }).png({ compressionLevel: 9 }).toBuffer();
  return new Uint8Array(png);
}

/** Decodes a heatmap PNG back to map values under `scaleMax`. */
export async function decodeHeatmapPng(png: Uint8Array, scaleMax: number): Promise<DecodedHeatmap> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({
    resolveWithObject: true,
  });
  if (info.width !== info.height) {
    throw new RangeError(`heatmap is ${info.width}×${info.height}, expected a square`);
  }
  const values = new Float32Array(data.length);
  for (let i = 0; i < data.length; i++) values[i] = (data[i] / 255) * scaleMax;
  return { size: info.width, values };
}

/**
 * The heatmap as a coloured RGBA PNG for overlays: transparent where the map is cold, blue
 * through yellow to red as it heats, opacity rising with the value; optionally resized.
 */
export async function heatmapOverlayPng(png: Uint8Array, size?: number): Promise<Uint8Array> {
  const { data, info } = await sharp(png).extractChannel(0).raw().toBuffer({
    resolveWithObject: true,
  });
  const rgba = new Uint8Array(info.width * info.height * 4);
  for (let i = 0; i < data.length; i++) {
    const [r, g, b] = heatColour(data[i] / 255);
    rgba.set([r, g, b, Math.round(200 * Math.min(1, (data[i] / 255) * 1.6))], i * 4);
  }
  let image = sharp(rgba, { raw: { width: info.width, height: info.height, channels: 4 } });
  if (size) image = image.resize(size, size, { kernel: "cubic" });
  return new Uint8Array(await image.png().toBuffer());
}

/** A blue → cyan → yellow → red ramp for t in [0, 1]. */
export function heatColour(t: number): [number, number, number] {
  const stops: [number, number, number][] = [
    [30, 60, 200],
    [0, 200, 220],
    [250, 220, 40],
    [230, 30, 30],
  ];
  const x = Math.min(1, Math.max(0, t)) * (stops.length - 1);
  const i = Math.min(stops.length - 2, Math.floor(x));
  const f = x - i;
  return [0, 1, 2].map((c) => Math.round(stops[i][c] + f * (stops[i + 1][c] - stops[i][c]))) as [
    number,
    number,
    number,
  ];
}
