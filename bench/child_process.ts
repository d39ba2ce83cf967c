/**
 * Running one benchmark measurement in a separate Deno process: its own memory (RSS, wasm
 * heap), its own failure, and a timeout that really stops it (a worker cannot be interrupted in
 * the middle of a long wasm kernel; a process can be killed).
 *
 * Protocol: the child script gets its job as JSON in `Deno.args[0]` and prints its result as
 * one line `RESULT <json>` on stdout (see {@link serveChildJob}); every other line it prints is
 * passed through to our console.
 *
 * @module
 */

/** Outcome of {@link runChild}. */
export type ChildOutcome<Result> =
  | { ok: true; result: Result; seconds: number }
  | { ok: false; error: string; timedOut: boolean; seconds: number };

/** Marks the result line on the child's stdout. */
const RESULT_PREFIX = "RESULT ";

/**
 * Permissions the measurement children get: reading modules and data, env, system info, and
 * FFI for ONNX Runtime's native library.
 */
const CHILD_PERMISSIONS = ["--allow-read", "--allow-env", "--allow-sys", "--allow-ffi"];

/**
 * Runs `script` (which calls {@link serveChildJob}) with `job` in a new Deno process from the
 * repository root (so deno.json's import map applies); kills it after `timeoutMs`.
 */
export async function runChild<Job, Result>(
  script: URL,
  job: Job,
  timeoutMs: number,
): Promise<ChildOutcome<Result>> {
  const start = performance.now();
  const seconds = () => Math.round((performance.now() - start) / 100) / 10;
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...CHILD_PERMISSIONS, script.pathname, JSON.stringify(job)],
    cwd: new URL("..", import.meta.url).pathname,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, timeoutMs);
  let result: { value: Result } | undefined;
  const stderrText = new Response(child.stderr).text();
  try {
    for await (const line of lines(child.stdout)) {
      if (line.startsWith(RESULT_PREFIX)) {
        result = { value: JSON.parse(line.slice(RESULT_PREFIX.length)) as Result };
      } else if (line.trim() !== "") console.log(line);
    }
    const status = await child.status;
    if (timedOut) {
      return {
        ok: false,
        timedOut: true,
        error: `not finished after ${Math.round(timeoutMs / 1000)} s (stopped)`,
        seconds: seconds(),
      };
    }
    if (result) return { ok: true, result: result.value, seconds: seconds() };
    const stderrLines = (await stderrText).trim().split("\n").filter((l) => l.trim());
    // The stack's last lines say where; the first error line says what (e.g. out of memory).
    const what = stderrLines.find((l) => /error|abort/i.test(l) && !/^\s+at /.test(l));
    const shown = [...new Set([...(what ? [what.trim()] : []), ...stderrLines.slice(-2)])];
    return {
      ok: false,
      timedOut: false,
      error: `child exited with code ${status.code} without a result: ${shown.join(" / ")}`,
      seconds: seconds(),
    };
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Called once in a child script: runs `handle` on the job in `Deno.args[0]` and prints the
 * result line. Exceptions propagate (the child exits non-zero and the parent reports stderr).
 */
export async function serveChildJob<Job, Result>(
  handle: (job: Job) => Promise<Result>,
): Promise<void> {
  const text = Deno.args[0];
  if (text === undefined) throw new Error("expected the job as JSON in the first argument");
  const result = await handle(JSON.parse(text) as Job);
  console.log(RESULT_PREFIX + JSON.stringify(result));
}

async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let pending = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop()!;
    yield* parts;
  }
  if (pending) yield pending;
}
