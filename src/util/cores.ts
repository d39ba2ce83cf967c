/**
 * The machine's core count, as the thread defaults read it.
 *
 * @module
 */

/** The cores of this machine (at least 1). */
export function availableCores(): number {
  return Math.max(1, navigator.hardwareConcurrency ?? 1);
}
