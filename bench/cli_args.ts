/**
 * Parsing helpers shared by the benchmark command lines; errors name the flag.
 *
 * @module
 */
import { FASHION_MNIST_CLASSES } from "../src/data/fashion_mnist.ts";

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

/** `--classes`: Fashion-MNIST class ids (0–9). */
export function classList(text: string): number[] {
  const classes = numberList(text, "classes");
  for (const c of classes) {
    if (!Number.isInteger(c) || c < 0 || c >= FASHION_MNIST_CLASSES.length) {
      throw new Error(`--classes: ${c} is not a Fashion-MNIST class id (0-9)`);
    }
  }
  return classes;
}

/** `--ratios`: noise ratios in [0, 1], returned ascending. */
export function ratioList(text: string): number[] {
  const ratios = numberList(text, "ratios");
  for (const r of ratios) {
    if (!(r >= 0 && r <= 1)) throw new Error(`--ratios: ${r} is not in [0, 1]`);
  }
  return ratios.sort((a, b) => a - b);
}
