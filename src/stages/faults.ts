/**
 * Test-only fault injection, off unless an environment variable sets it: lets the crash
 * tests send a poison message (which no well-formed image is) and run a scorer slower than its
 * ack_wait through the real stage processes (`main.ts stage …`). Production never sets them.
 *
 * @module
 */

/** Environment variable: comma-separated Image-Ids whose scoring throws. */
export const FAIL_SCORING_ENV = "INSPECT_TEST_FAIL_SCORING";

/** Image-Ids whose scoring must throw (empty unless {@link FAIL_SCORING_ENV} is set). */
export function failingImageIds(): ReadonlySet<string> {
  let value: string | undefined;
  try {
    value = Deno.env.get(FAIL_SCORING_ENV);
  } catch {
    value = undefined; // no env permission: no faults
  }
  return new Set((value ?? "").split(",").map((id) => id.trim()).filter((id) => id !== ""));
}

/** The error a failing image raises. */
export class InjectedFault extends Error {
  /** Creates the error for `imageId`. */
  constructor(imageId: string) {
    super(`injected fault for Image-Id ${imageId} (${FAIL_SCORING_ENV})`);
    this.name = "InjectedFault";
  }
}

/** Environment variable: milliseconds every scored batch blocks its thread (a slow model). */
export const SCORING_DELAY_ENV = "INSPECT_TEST_SCORING_DELAY_MS";

/** The injected per-batch delay in ms (0 unless {@link SCORING_DELAY_ENV} is set). */
export function scoringDelayMs(): number {
  let value: string | undefined;
  try {
    value = Deno.env.get(SCORING_DELAY_ENV);
  } catch {
    value = undefined;
  }
  const ms = Number(value ?? 0);
  return Number.isFinite(ms) && ms > 0 ? ms : 0;
}

/** Blocks the thread for `ms` as a long synchronous model step does (no timers run). */
export function blockThread(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // busy: like tfjs compute, nothing else runs on this thread meanwhile
  }
}
