/**
 * The `fashion-line` stream: Fashion-MNIST images as if a camera on a line published them.
 * One class is the normal product, the other classes are anomalies (the class name is the
 * defect). Built at test/benchmark time from the Debian dataset, never committed.
 *
 * @module
 */
import sharp from "sharp";
import { SeededRandom } from "../util/prng.ts";
import {
  FASHION_MNIST_CLASSES,
  FASHION_MNIST_DIR,
  FASHION_MNIST_SIDE,
  type FashionMnistSplitName,
  loadFashionMnist,
} from "../data/fashion_mnist.ts";
import { CAPTURED_AT_HEADER, IMAGE_ID_HEADER, imageSubject } from "./contract.ts";
import { type ManifestEntry, openStreamWriter, type StreamInfo } from "./format.ts";

/** Options of {@link buildFashionLineStream}. */
export interface FashionLineOptions {
  /** Class id (0–9) of the normal product. */
  normalClass: number;
  /** Fraction of anomalous images (exactly `round(count × ratio)`). */
  anomalyRatio: number;
  /** Number of images. */
  count: number;
  /** PRNG seed of the selection and order. */
  seed: number;
  /** Side in pixels of the published (upscaled RGB) images. */
  size: number;
  /** Dataset split drawn from (default `train`). */
  split?: FashionMnistSplitName;
  /** Encoding (default PNG: lossless, small for these flat images). */
  format?: "png" | "jpeg";
  /** Line name (default `fashion-line`). */
  line?: string;
  /** Time between images in ms (default 100). */
  intervalMs?: number;
  /** Dataset directory (default the Debian location). */
  datasetDir?: string;
}

/**
 * Writes a fashion-line stream to `dir`: a seeded selection of the normal class with
 * anomalies from the other classes mixed in at `anomalyRatio`, in seeded order.
 */
export async function buildFashionLineStream(
  dir: string,
  options: FashionLineOptions,
  writer: { force?: boolean; createdBy: string } = { createdBy: "buildFashionLineStream" },
): Promise<StreamInfo> {
  const {
    normalClass,
    anomalyRatio,
    count,
    seed,
    size,
    split = "train",
    format = "png",
    line = "fashion-line",
    intervalMs = 100,
    datasetDir = FASHION_MNIST_DIR,
  } = options;
  if (!(normalClass >= 0 && normalClass < FASHION_MNIST_CLASSES.length)) {
    throw new RangeError(`normalClass must be 0–9: ${normalClass}`);
  }
  if (!(anomalyRatio >= 0 && anomalyRatio <= 1)) {
    throw new RangeError(`anomalyRatio must be in [0, 1]: ${anomalyRatio}`);
  }
  const data = await loadFashionMnist(split, datasetDir);
  const normals: number[] = [];
  const anomalies: number[] = [];
  data.labels.forEach((label, i) => (label === normalClass ? normals : anomalies).push(i));
  const anomalyCount = Math.round(count * anomalyRatio);
  if (count - anomalyCount > normals.length) {
    throw new RangeError(`need ${count - anomalyCount} normal images, ${normals.length} exist`);
  }
  const rng = new SeededRandom(seed);
  const order = rng.shuffled([
    ...rng.sample(normals, count - anomalyCount),
    ...rng.sample(anomalies, anomalyCount),
  ]);

  const stream = await openStreamWriter(dir, {
    force: writer.force,
    description: {
      name: line,
      generator: "fashion-line/1",
      seed,
      createdBy: writer.createdBy,
      params: { normalClass, anomalyRatio, count, size, split, format, line, intervalMs },
    },
  });
  const subject = imageSubject(line);
  const start = Date.parse("2024-05-01T10:00:00.000Z");
  for (const [position, index] of order.entries()) {
    const imageId = `${line}-${split}-${index}`;
    const offsetMs = position * intervalMs;
    const seq = await stream.append({
      subject,
      offsetMs,
      headers: {
        [IMAGE_ID_HEADER]: [imageId],
        [CAPTURED_AT_HEADER]: [new Date(start + offsetMs).toISOString()],
      },
      payload: await encodeGreyAsRgb(data.images[index], size, format),
    });
    const label = data.labels[index];
    const entry: ManifestEntry = label === normalClass
      ? { seq, imageId, label: "normal" }
      : { seq, imageId, label: "anomalous", defect: FASHION_MNIST_CLASSES[label] };
    await stream.label(entry);
  }
  return await stream.close();
}

/** Upscales a 28×28 greyscale image to `size × size` RGB and encodes it. */
export async function encodeGreyAsRgb(
  grey: Uint8Array,
  size: number,
  format: "png" | "jpeg",
): Promise<Uint8Array> {
  const side = FASHION_MNIST_SIDE;
  if (grey.length !== side * side) throw new RangeError(`expected ${side * side} pixels`);
  // Expanded to three channels here so the output is RGB whatever libvips infers.
  const rgb = new Uint8Array(grey.length * 3);
  grey.forEach((v, i) => rgb.fill(v, i * 3, i * 3 + 3));
  const image = sharp(rgb, { raw: { width: side, height: side, channels: 3 } })
    .resize(size, size, { kernel: "cubic" });
  const encoded = format === "png"
    ? await image.png({ compressionLevel: 9 }).toBuffer()
    : await image.jpeg({ quality: 90 }).toBuffer();
  return new Uint8Array(encoded);
}
