/**
 * A wake-up call between a producer (message callbacks, control requests) and a loop that
 * sleeps while it has nothing to do.
 *
 * @module
 */

/** One-shot-per-wait notifier with a timeout. */
export class Wakeup {
  #resolve?: () => void;
  #pending = false;

  /** Wakes the waiter (or makes the next `wait` return at once). */
  notify(): void {
    if (this.#resolve) {
      this.#resolve();
      this.#resolve = undefined;
    } else {
      this.#pending = true;
    }
  }

  /** Resolves on the next `notify` or after `timeoutMs`, whichever comes first. */
  wait(timeoutMs: number): Promise<void> {
    if (this.#pending) {
      this.#pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#resolve = undefined;
        resolve();
      }, timeoutMs);
      this.#resolve = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }
}

/** Lets timers and I/O callbacks run between two synchronous compute steps. */
export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
