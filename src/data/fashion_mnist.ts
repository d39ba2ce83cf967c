/**
 * Reader of Fashion-MNIST as shipped by Debian's `dataset-fashion-mnist` package: four
 * gzipped IDX files under `/usr/share/datasets/fashion-mnist/`.
 *
 * @module
 */

/** Where the Debian package installs the files. */
export const FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist";

/** Class names by label (0–9), snake_case so they can serve as defect names. */
export const FASHION_MNIST_CLASSES = [
  "t_shirt_top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle_boot",
] as const;

/** Image side of Fashion-MNIST. */
export const FASHION_MNIST_SIDE = 28;

/** The two splits of the dataset. */
export type FashionMnistSplitName = "train" | "test";

/** One split: greyscale images and their class labels. */
export interface FashionMnistSplit {
  /** 28×28 greyscale images, row-major, 0 = background (views into one buffer). */
  images: Uint8Array[];
  /** Class label 0–9 of each image. */
  labels: Uint8Array;
}

/** The dataset files are not installed. */
export class DatasetMissingError extends Error {
  /** Creates the error for the missing `path`. */
  constructor(path: string) {
    super(
      `Fashion-MNIST not found (${path} is missing). Install it with: ` +
        `apt-get install dataset-fashion-mnist`,
    );
    this.name = "DatasetMissingError";
  }
}

const FILES: Record<FashionMnistSplitName, { images: string; labels: string }> = {
  train: { images: "train-images-idx3-ubyte.gz", labels: "train-labels-idx1-ubyte.gz" },
  test: { images: "t10k-images-idx3-ubyte.gz", labels: "t10k-labels-idx1-ubyte.gz" },
};

/** True when all four dataset files are present in `dir`. */
export async function fashionMnistAvailable(dir: string = FASHION_MNIST_DIR): Promise<boolean> {
  for (const split of Object.values(FILES)) {
    for (const name of [split.images, split.labels]) {
      try {
        await Deno.stat(`${dir}/${name}`);
      } catch {
        return false;
      }
    }
  }
  return true;
}

// Splits are immutable once read: cache them so benchmarks do not re-inflate 26 MB per run.
const cache = new Map<string, Promise<FashionMnistSplit>>();

/**
 * Loads one split (cached per directory and split).
 *
 * @throws {DatasetMissingError} when the Debian package is not installed.
 */
export function loadFashionMnist(
  split: FashionMnistSplitName,
  dir: string = FASHION_MNIST_DIR,
): Promise<FashionMnistSplit> {
  const key = `${dir}\0${split}`;
  let loading = cache.get(key);
  if (!loading) {
    loading = readSplit(split, dir);
    cache.set(key, loading);
    loading.catch(() => cache.delete(key)); // a later install must be picked up
  }
  return loading;
}

async function readSplit(split: FashionMnistSplitName, dir: string): Promise<FashionMnistSplit> {
  const [imageBytes, labelBytes] = await Promise.all([
    gunzipFile(`${dir}/${FILES[split].images}`),
    gunzipFile(`${dir}/${FILES[split].labels}`),
  ]);
  const images = parseIdx(imageBytes, `${split} images`);
  const labels = parseIdx(labelBytes, `${split} labels`);
  if (images.dims.length !== 3 || labels.dims.length !== 1 || images.dims[0] !== labels.dims[0]) {
    throw new Error(
      `Fashion-MNIST ${split}: shapes [${images.dims}] and [${labels.dims}] do not match`,
    );
  }
  const [count, rows, cols] = images.dims;
  const pixels = rows * cols;
  return {
    images: Array.from(
      { length: count },
      (_, i) => images.data.subarray(i * pixels, (i + 1) * pixels),
    ),
    labels: labels.data,
  };
}

/** A parsed IDX array of unsigned bytes. */
export interface IdxArray {
  /** Dimension sizes, outermost first. */
  dims: number[];
  /** The values, row-major. */
  data: Uint8Array;
}

/**
 * Parses an (uncompressed) IDX file of unsigned bytes: magic `0x0000 08 <ndims>`, big-endian
 * 32-bit dimension sizes, then the data.
 */
export function parseIdx(bytes: Uint8Array, what = "IDX file"): IdxArray {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (bytes.length < 4 || view.getUint16(0) !== 0 || bytes[2] !== 0x08) {
    throw new Error(`${what}: not an unsigned-byte IDX file (bad magic)`);
  }
  const ndims = bytes[3];
  const header = 4 + 4 * ndims;
  if (ndims === 0 || bytes.length < header) throw new Error(`${what}: truncated IDX header`);
  const dims = Array.from({ length: ndims }, (_, i) => view.getUint32(4 + 4 * i));
  const size = dims.reduce((a, b) => a * b, 1);
  if (bytes.length !== header + size) {
    throw new Error(`${what}: expected ${header + size} bytes for [${dims}], got ${bytes.length}`);
  }
  return { dims, data: bytes.subarray(header) };
}

async function gunzipFile(path: string): Promise<Uint8Array> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(path, { read: true });
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) throw new DatasetMissingError(path);
    throw error;
  }
  const inflated = file.readable.pipeThrough(new DecompressionStream("gzip"));
  return new Uint8Array(await new Response(inflated).arrayBuffer());
}
