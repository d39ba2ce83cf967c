/**
 * Parsing helpers shared by the benchmark command lines; errors name the flag.
 *
 * @module
 */

/** Comma-separated numbers, e.g. `--ratios 0,0.1`. */
export function numberList(text: string, flag: string): number[] {
  const list = text.split(",").map((part) => Number(part.trim()));
  if (list.length === 0 || list.some((n) => !Number.isFinite(n))) {
    throw new Error(`--${flag}: expected comma-separated numbers, got "${text}"`);
  }
  return list;
}

/** A positive integer flag, or `fallback` when it was not given. */
export function positiveInt(text: string | undefined, fallback: number, flag: string): number {
  if (text === undefined) return fallback;
  const n = Number(text);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${flag} must be a positive integer`);
  return n;
}
