/**
 * A small seeded pseudo-random generator (mulberry32) so fixtures, samples and splits are
 * reproducible byte for byte: `Math.random` cannot be seeded.
 *
 * @module
 */

/** A seeded source of uniform numbers in [0, 1) with a few derived draws. */
export class SeededRandom {
  #state: number;

  /** Starts the sequence from `seed` (any integer; only its low 32 bits matter). */
  constructor(seed: number) {
    if (!Number.isInteger(seed)) throw new RangeError(`seed must be an integer, got ${seed}`);
    this.#state = seed >>> 0;
  }

  /** Next uniform number in [0, 1) (mulberry32 step). */
  next(): number {
    this.#state = (this.#state + 0x6d2b79f5) >>> 0;
    let t = this.#state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }

  /** Uniform number in [min, max). */
  uniform(min: number, max: number): number {
    return min + (max - min) * this.next();
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0) {
      throw new RangeError(`n must be a positive integer, got ${n}`);
    }
    return Math.floor(this.next() * n);
  }

  /** Standard normal draw (Box–Muller; one draw per call keeps the sequence simple). */
  normal(): number {
    const u = 1 - this.next(); // (0, 1]: log(0) is avoided
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** One element of a non-empty array. */
  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError("cannot pick from an empty array");
    return items[this.int(items.length)];
  }

  /** A shuffled copy (Fisher–Yates). */
  shuffled<T>(items: readonly T[]): T[] {
    const out = items.slice();
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }

  /** `count` distinct elements, in random order. */
  sample<T>(items: readonly T[], count: number): T[] {
    if (count > items.length) {
      throw new RangeError(`cannot sample ${count} of ${items.length} items without replacement`);
    }
    return this.shuffled(items).slice(0, count);
  }
}
