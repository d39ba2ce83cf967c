/**
 * Training-set hygiene of the live trainer: which buffered images stop being trained on.
 *
 * An image leaves the replay buffer once ATDR has flagged it `flagsToReject` times, or (with
 * `rejectScoredAnomalous`) once the published model's verdict calls it anomalous. Two guards
 * keep this from feeding on itself:
 * - confirmation bias: at most `maxRejectedFraction` of the last `rateWindow` distinct images
 *   reviewed may be rejected — with `capPerDefectRate` > 0, at most that factor times the
 *   trainer's current defect-rate estimate, so a clean line loses few images; beyond the cap
 *   flags are only counted;
 * - drift: rejected images wait in a bounded quarantine and, every `readmitEverySteps` steps,
 *   the oldest one goes back into the buffer, so a genuinely new normal (a product change)
 *   that was rejected at first is trained on again once the model has caught up — if it is
 *   still an outlier, ATDR flags it again.
 *
 * Plain bookkeeping, no tensors: the trainer asks {@link RejectionPolicy.review} after each
 * step which of the batch's flagged images to remove, {@link RejectionPolicy.rejectScored}
 * whether an image the published model scored anomalous goes, and
 * {@link RejectionPolicy.readmit} which quarantined ones to add back.
 *
 * @module
 */

/** Flag counts remembered (least recently flagged forgotten first); far above any buffer. */
export const FLAG_MEMORY = 100_000;

/** Options of {@link RejectionPolicy} (the `trainer.hygiene` config section). */
export interface HygieneOptions {
  /** ATDR flags after which an image is rejected (1 = at once, the pre-hygiene behaviour). */
  flagsToReject: number;
  /** Largest share of recent decisions that may reject (1 = no cap). */
  maxRejectedFraction: number;
  /** Number of recent image decisions the cap is measured over. */
  rateWindow: number;
  /** Re-admit the oldest quarantined image every this many steps (0 = never). */
  readmitEverySteps: number;
  /** Most rejected images kept for re-admission (oldest dropped first). */
  quarantineSize: number;
  /** Whether anomalous verdicts of the published model reject (see {@link RejectionPolicy.rejectScored}). */
  rejectScoredAnomalous?: boolean;
  /** With a defect-rate estimate, the cap is min(maxRejectedFraction, this × estimate); 0 = off. */
  capPerDefectRate?: number;
}

/** A rejected image waiting for re-admission. */
export interface QuarantinedImage<T> {
  /** Camera Image-Id. */
  imageId: string;
  /** What the buffer held for it (its pixels). */
  item: T;
}

/** Counters of the policy, for status and training events. */
export interface HygieneStats {
  /** Images rejected so far. */
  rejected: number;
  /** Rejections refused because the rate cap was reached. */
  refusedByCap: number;
  /** Images re-admitted from quarantine. */
  readmitted: number;
  /** Images in quarantine now. */
  quarantined: number;
}

/** Decides which flagged images leave the buffer, with a rate cap and periodic re-admission. */
export class RejectionPolicy<T> {
  /** The options in force. */
  readonly options: Readonly<HygieneOptions>;
  readonly #flags = new Map<string, number>();
  /** The last `rateWindow` distinct images reviewed, in first-review order: true = rejected. */
  readonly #decisions = new Map<string, boolean>();
  #quarantine: QuarantinedImage<T>[] = [];
  #stats = { rejected: 0, refusedByCap: 0, readmitted: 0 };
  #steps = 0;
  #defectRate: number | null = null;

  /** Creates a policy; validates the options. */
  constructor(options: HygieneOptions) {
    const positiveInt = (n: number) => Number.isInteger(n) && n >= 1;
    if (!positiveInt(options.flagsToReject)) {
      throw new RangeError(`flagsToReject must be an integer >= 1, got ${options.flagsToReject}`);
    }
    if (!(options.maxRejectedFraction >= 0 && options.maxRejectedFraction <= 1)) {
      throw new RangeError(
        `maxRejectedFraction must be in [0, 1], got ${options.maxRejectedFraction}`,
      );
    }
    const perRate = options.capPerDefectRate ?? 0;
    if (!(Number.isFinite(perRate) && perRate >= 0)) {
      throw new RangeError(`capPerDefectRate must be a finite number >= 0, got ${perRate}`);
    }
    if (!positiveInt(options.rateWindow)) {
      throw new RangeError(`rateWindow must be an integer >= 1, got ${options.rateWindow}`);
    }
    if (!(Number.isInteger(options.readmitEverySteps) && options.readmitEverySteps >= 0)) {
      throw new RangeError(
        `readmitEverySteps must be an integer >= 0, got ${options.readmitEverySteps}`,
      );
    }
    if (!(Number.isInteger(options.quarantineSize) && options.quarantineSize >= 0)) {
      throw new RangeError(`quarantineSize must be an integer >= 0, got ${options.quarantineSize}`);
    }
    this.options = { ...options };
  }

  /** Counters so far. */
  get stats(): HygieneStats {
    return { ...this.#stats, quarantined: this.#quarantine.length };
  }

  /**
   * The rejected share allowed now: `maxRejectedFraction`, lowered to
   * `capPerDefectRate × defect rate` once an estimate was given (see {@link review}).
   */
  get cap(): number {
    const perRate = this.options.capPerDefectRate ?? 0;
    if (perRate === 0 || this.#defectRate === null) return this.options.maxRejectedFraction;
    return Math.min(this.options.maxRejectedFraction, perRate * this.#defectRate);
  }

  /** Share of the last `rateWindow` distinct images reviewed that were rejected. */
  get rejectedFraction(): number {
    const n = this.#decisions.size;
    return n === 0 ? 0 : countTrue(this.#decisions.values()) / n;
  }

  /**
   * Reviews one training batch: counts a flag for each image in `flagged`, and returns the
   * images to remove from the buffer now — those that reached `flagsToReject`, as long as the
   * rejection rate over the window stays within the cap (checked image by image, in order).
   * Rejected images go to quarantine.
   *
   * @param batch every image of the batch (id and buffered item), in batch order
   * @param flagged indices into `batch` that ATDR down-weighted
   * @param defectRate the trainer's defect-rate estimate after this step, if it keeps one
   */
  review(
    batch: readonly QuarantinedImage<T>[],
    flagged: readonly number[],
    defectRate: number | null = null,
  ): string[] {
    if (defectRate !== null) this.#defectRate = defectRate;
    const flaggedSet = new Set(flagged);
    const rejected: string[] = [];
    this.#steps += 1;
    batch.forEach(({ imageId, item }, index) => {
      let reject = false;
      if (flaggedSet.has(index)) {
        const flags = (this.#flags.get(imageId) ?? 0) + 1;
        this.#flags.delete(imageId); // re-insert: the map's order is then least recently flagged first
        this.#flags.set(imageId, flags);
        if (this.#flags.size > FLAG_MEMORY) this.#flags.delete(this.#flags.keys().next().value!);
        if (flags >= this.options.flagsToReject) {
          if (this.#wouldStayWithinCap(imageId)) reject = true;
          else this.#stats.refusedByCap += 1;
        }
      }
      this.#decide(imageId, reject);
      if (!reject) return;
      rejected.push(imageId);
      this.#reject({ imageId, item });
    });
    return rejected;
  }

  /**
   * An image still in the buffer got an anomalous verdict from the published model: true when
   * it is to leave the buffer now (the option is on and the rate cap allows it; it then goes to
   * quarantine like an ATDR rejection). Counts as a decision in the cap's window.
   */
  rejectScored(image: QuarantinedImage<T>): boolean {
    if (!this.options.rejectScoredAnomalous) return false;
    const reject = this.#wouldStayWithinCap(image.imageId);
    if (!reject) this.#stats.refusedByCap += 1;
    this.#decide(image.imageId, reject);
    if (reject) this.#reject(image);
    return reject;
  }

  #reject(image: QuarantinedImage<T>): void {
    this.#flags.delete(image.imageId);
    this.#stats.rejected += 1;
    if (this.options.quarantineSize > 0) {
      this.#quarantine.push(image);
      if (this.#quarantine.length > this.options.quarantineSize) this.#quarantine.shift();
    }
  }

  /**
   * The quarantined images due to re-enter the buffer after this step (the oldest one every
   * `readmitEverySteps` steps); they leave quarantine with a clean flag count.
   */
  readmit(): QuarantinedImage<T>[] {
    const every = this.options.readmitEverySteps;
    if (every === 0 || this.#steps % every !== 0 || this.#quarantine.length === 0) return [];
    const image = this.#quarantine.shift()!;
    this.#stats.readmitted += 1;
    return [image];
  }

  /** Whether rejecting `imageId` keeps the window's rejected share within the cap. */
  #wouldStayWithinCap(imageId: string): boolean {
    const others = [...this.#decisions].filter(([id]) => id !== imageId);
    // The window after this decision: the newest rateWindow − 1 others, plus this image.
    const window = others.slice(-(this.options.rateWindow - 1));
    const rejectedIfYes = countTrue(window.map(([, rejected]) => rejected)) + 1;
    return rejectedIfYes / (window.length + 1) <= this.cap;
  }

  /** Records a decision; an image keeps its place in the window (replays do not refresh it). */
  #decide(imageId: string, rejected: boolean): void {
    const known = this.#decisions.has(imageId);
    this.#decisions.set(imageId, (this.#decisions.get(imageId) ?? false) || rejected);
    if (!known && this.#decisions.size > this.options.rateWindow) {
      this.#decisions.delete(this.#decisions.keys().next().value!);
    }
  }
}

function countTrue(values: Iterable<boolean>): number {
  let n = 0;
  for (const v of values) if (v) n++;
  return n;
}

/** Precision and recall of training-time rejection against a ground-truth manifest. */
export interface RejectionQuality {
  /** Distinct images rejected. */
  rejected: number;
  /** Of those, anomalous per the manifest. */
  truePositives: number;
  /** Distinct anomalous images the trainer saw in a batch. */
  anomaliesSeen: number;
  /** truePositives / rejected (null when nothing was rejected). */
  precision: number | null;
  /** truePositives / anomaliesSeen (null when no anomaly was seen). */
  recall: number | null;
}

/**
 * Scores rejection decisions (e.g. the `rejected` and `batch` ids of a line's training events)
 * against a manifest: `isAnomalous(id)` is the ground truth; ids the manifest does not know
 * count as normal. Each image counts once however often it was seen or rejected.
 */
export function rejectionQuality(
  seenIds: Iterable<string>,
  rejectedIds: Iterable<string>,
  isAnomalous: (imageId: string) => boolean,
): RejectionQuality {
  const seen = new Set(seenIds);
  const rejected = new Set(rejectedIds);
  let truePositives = 0;
  for (const id of rejected) if (isAnomalous(id)) truePositives++;
  let anomaliesSeen = 0;
  for (const id of seen) if (isAnomalous(id)) anomaliesSeen++;
  return {
    rejected: rejected.size,
    truePositives,
    anomaliesSeen,
    precision: rejected.size === 0 ? null : truePositives / rejected.size,
    recall: anomaliesSeen === 0 ? null : truePositives / anomaliesSeen,
  };
}
