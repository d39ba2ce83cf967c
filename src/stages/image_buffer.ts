/**
 * The trainer's bounded buffer of recent decoded images. New images push out the oldest, so a
 * trainer slower than the line samples it; batches take the newest untrained images first and
 * top up with random replays of buffered ones; ATDR outliers are removed.
 *
 * @module
 */
import { SeededRandom } from "../util/prng.ts";

/** A buffered image. */
export interface BufferedImage {
  /** Camera Image-Id. */
  imageId: string;
  /** `size × size × 3` pixels in [0, 1]. */
  pixels: Float32Array;
  /** Times it has been in a training batch. */
  trained: number;
}

/** Bounded FIFO of recent images with batch selection. */
export class ImageBuffer {
  /** Most images held. */
  readonly capacity: number;
  #images: BufferedImage[] = [];
  #evictedUntrained = 0;
  readonly #random: SeededRandom;

  /** Creates an empty buffer holding at most `capacity` images. */
  constructor(capacity: number, seed: number) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
    }
    this.capacity = capacity;
    this.#random = new SeededRandom(seed);
  }

  /** Images held. */
  get size(): number {
    return this.#images.length;
  }

  /** Images held that were never in a batch. */
  get untrained(): number {
    return this.#images.reduce((n, image) => n + (image.trained === 0 ? 1 : 0), 0);
  }

  /** Images pushed out before they were ever trained on (the line outran the trainer). */
  get skipped(): number {
    return this.#evictedUntrained;
  }

  /** Adds an image, evicting the oldest when full. */
  add(imageId: string, pixels: Float32Array): void {
    this.#images.push({ imageId, pixels, trained: 0 });
    while (this.#images.length > this.capacity) {
      const evicted = this.#images.shift()!;
      if (evicted.trained === 0) this.#evictedUntrained++;
    }
  }

  /**
   * A batch of `batchSize` images: the newest untrained ones first, topped up with random
   * already-trained ones. Null when fewer than `batchSize` images are held or none is new.
   * The chosen images count as trained.
   */
  takeBatch(batchSize: number): BufferedImage[] | null {
    if (this.#images.length < batchSize) return null;
    const fresh = this.#images.filter((image) => image.trained === 0).slice(-batchSize);
    if (fresh.length === 0) return null;
    const chosen = new Set(fresh);
    const others = this.#images.filter((image) => !chosen.has(image));
    const replay = this.#random.sample(others, batchSize - fresh.length);
    const batch = [...fresh, ...replay];
    for (const image of batch) image.trained++;
    return batch;
  }

  /**
   * A batch of `batchSize` images drawn at random from the whole buffer, fresh or not: what the
   * trainer replays while no new image arrives. Null when fewer than `batchSize` are held.
   */
  takeReplayBatch(batchSize: number): BufferedImage[] | null {
    if (this.#images.length < batchSize) return null;
    const batch = this.#random.sample(this.#images, batchSize);
    for (const image of batch) image.trained++;
    return batch;
  }

  /** The newest `count` images (all if fewer), oldest first. */
  recent(count: number): BufferedImage[] {
    return this.#images.slice(-count);
  }

  /** The buffered image with this id, if held. */
  get(imageId: string): BufferedImage | undefined {
    return this.#images.find((image) => image.imageId === imageId);
  }

  /** Removes the images with these ids; returns how many were removed. */
  remove(imageIds: Iterable<string>): number {
    const drop = new Set(imageIds);
    const before = this.#images.length;
    this.#images = this.#images.filter((image) => !drop.has(image.imageId));
    return before - this.#images.length;
  }
}
