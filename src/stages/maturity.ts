/**
 * When is a model mature enough for its first publication, without labels? The trainer used to
 * publish after a fixed `warmupSteps`; with `trainer.maturity.criterion: "loss_plateau"` it
 * waits until the training loss stops falling: the mean loss of the last `window` steps is
 * no more than `tolerance` (relative) below the mean of the `window` steps before, at least
 * `trainer.warmupSteps` steps in, and at the latest at `maxSteps` (so a noisy loss cannot hold
 * the line in `warming_up` for ever).
 *
 * Pure bookkeeping over loss values: the trainer feeds it each step's total loss, and the
 * inspection benchmark replays its jobs' loss histories through it to see where it fires on
 * the learning curve.
 *
 * @module
 */

/** Options of {@link LossPlateau} (the `trainer.maturity` config section plus the minimum). */
export interface MaturityOptions {
  /** `steps`: mature after `minSteps` (the old fixed warm-up); `loss_plateau`: see the module doc. */
  criterion: "steps" | "loss_plateau";
  /** Steps never to publish before (`trainer.warmupSteps`). */
  minSteps: number;
  /** Steps of each of the two windows compared. */
  window: number;
  /** Largest relative fall of the windowed mean loss that still counts as a plateau. */
  tolerance: number;
  /** Mature at this step whatever the loss does. */
  maxSteps: number;
}

/** Tracks the loss and says when the model is mature. */
export class LossPlateau {
  readonly #options: MaturityOptions;
  readonly #losses: number[] = [];
  #steps = 0;
  #matureAt: number | null = null;

  /** Starts with no steps seen. */
  constructor(options: MaturityOptions) {
    if (!(options.window >= 1) || !(options.tolerance >= 0)) {
      throw new RangeError(`maturity window must be ≥ 1 and tolerance ≥ 0`);
    }
    this.#options = options;
  }

  /**
   * Records the loss of training step `step` (default: the step after the last one; a trainer
   * resumed at step N passes the model's own step count, so `minSteps`/`maxSteps` count the
   * model's steps). Non-finite losses count as steps but not as evidence.
   */
  add(loss: number, step: number = this.#steps + 1): void {
    this.#steps = step;
    if (Number.isFinite(loss)) {
      this.#losses.push(loss);
      if (this.#losses.length > 2 * this.#options.window) this.#losses.shift();
    }
    if (this.#matureAt === null && this.#decide()) this.#matureAt = this.#steps;
  }

  /** The last step recorded. */
  get steps(): number {
    return this.#steps;
  }

  /** Whether the model is mature (it stays so once it is). */
  get mature(): boolean {
    return this.#matureAt !== null;
  }

  /** The step at which it became mature, or null. */
  get matureAt(): number | null {
    return this.#matureAt;
  }

  /**
   * Relative fall of the windowed mean loss, (previous − last) / previous, or null before
   * two full windows were seen.
   */
  get recentImprovement(): number | null {
    const w = this.#options.window;
    if (this.#losses.length < 2 * w) return null;
    const previous = mean(this.#losses.slice(0, w));
    const last = mean(this.#losses.slice(w));
    return previous > 0 ? (previous - last) / previous : 0;
  }

  /** Marks the model mature now (a resumed trainer starts from a published, mature model). */
  markMature(): void {
    this.#matureAt ??= this.#steps;
  }

  #decide(): boolean {
    const o = this.#options;
    if (this.#steps < o.minSteps) return false;
    if (o.criterion === "steps" || this.#steps >= o.maxSteps) return true;
    const improvement = this.recentImprovement;
    return improvement !== null && improvement <= o.tolerance;
  }
}

/** Replays a loss history: the step at which `options` call the model mature, or null. */
export function matureStep(losses: readonly number[], options: MaturityOptions): number | null {
  const plateau = new LossPlateau(options);
  for (const loss of losses) {
    plateau.add(loss);
    if (plateau.mature) return plateau.matureAt;
  }
  return null;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
}
