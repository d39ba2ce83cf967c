/**
 * Thread CPU priority (Linux nice values per thread, through libc over FFI).
 *
 * On a line the verdicts are the product and online training is best-effort: the trainer's
 * thread runs at a higher nice value, so when ingest, scorer and training compete for the
 * cores the kernel gives the verdict path the CPU first, and training takes what is left
 * (all of it while the line is idle). Linux keeps a nice value per thread, so this lowers
 * only the calling thread (a stage's Worker, with the ORT or wasm work it runs inline) and the
 * threads it starts afterwards; lowering priority needs no privilege.
 *
 * @module
 */

/** The outcome of a priority change: done, or the one-line reason it was not. */
export type PriorityChange = { ok: true; niceness: number } | { ok: false; reason: string };

/** Highest nice value Linux allows (lowest priority). */
export const MAX_NICENESS = 19;

/**
 * Sets the calling thread's nice value to `niceness` (0–19). Never throws: without FFI
 * permission, off Linux or where libc refuses, it says why.
 *
 * @throws RangeError if `niceness` is not an integer in [0, 19]
 */
export function setThreadNiceness(niceness: number): PriorityChange {
  if (!Number.isInteger(niceness) || niceness < 0 || niceness > MAX_NICENESS) {
    throw new RangeError(`niceness must be an integer in [0, ${MAX_NICENESS}], got ${niceness}`);
  }
  return withLibc((libc) => {
    const tid = libc.symbols.gettid();
    if (libc.symbols.setpriority(PRIO_PROCESS, tid, niceness) !== 0) {
      return { ok: false, reason: `setpriority(${niceness}) failed for thread ${tid}` };
    }
    return { ok: true, niceness };
  });
}

/** The calling thread's nice value, or the one-line reason it cannot be read. */
export function threadNiceness(): PriorityChange {
  return withLibc((libc) => {
    // getpriority returns the nice value itself (its −1 error return cannot happen for the
    // calling thread's own id).
    const value = libc.symbols.getpriority(PRIO_PROCESS, libc.symbols.gettid());
    return { ok: true, niceness: value };
  });
}

/** `which` argument of get/setpriority: a thread id is a "process" id to them on Linux. */
const PRIO_PROCESS = 0;

const LIBC_SYMBOLS = {
  gettid: { parameters: [], result: "i32" },
  setpriority: { parameters: ["i32", "u32", "i32"], result: "i32" },
  getpriority: { parameters: ["i32", "u32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof LIBC_SYMBOLS>;

function withLibc(use: (libc: Libc) => PriorityChange): PriorityChange {
  if (Deno.build.os !== "linux") {
    return { ok: false, reason: `thread priorities are Linux-only (this is ${Deno.build.os})` };
  }
  let libc: Libc;
  try {
    libc = Deno.dlopen("libc.so.6", LIBC_SYMBOLS);
  } catch (error) {
    const text = error instanceof Error ? error.message.split("\n")[0] : String(error);
    return error instanceof Deno.errors.NotCapable
      ? { ok: false, reason: `no FFI permission (run Deno with --allow-ffi): ${text}` }
      : { ok: false, reason: `cannot load libc: ${text}` };
  }
  try {
    return use(libc);
  } finally {
    libc.close();
  }
}
