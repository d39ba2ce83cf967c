/**
 * The PyTorch peer: `pdn_torch.py` times EfficientAD's PDN student–teacher step (or a teacher
 * forward pass) in PyTorch on the CPU, the stack a user would otherwise pick. It prints one
 * line: `torch<version> threads=<n> <mode> <width> size=<S> batch=<B> median=<ms> ms`.
 *
 * @module
 */
import type { PdnWidth } from "../src/config/schema.ts";

/** Default location of the peer script and interpreter. */
export const DEFAULT_PEER = {
  script: "/work/shared/peer/pdn_torch.py",
  python: "/usr/bin/python3",
};

/** What the peer times: a teacher forward pass or a student training step. */
export type PeerMode = "fwd" | "train";

/** A peer timing, or why there is none. */
export type PeerTiming =
  | { ok: true; medianMs: number; torch: string; threads: number; wallSeconds: number }
  | { ok: false; reason: string };

/**
 * Makes sure the peer's interpreter can import torch: when it cannot and this is a Debian
 * machine run as root, installs `python3-torch` with apt-get (the issue asks the bench to).
 * Returns null when torch imports, else why the peer cannot run; never throws.
 */
export async function ensureTorch(
  log: (line: string) => void,
  python: string = DEFAULT_PEER.python,
): Promise<string | null> {
  const imports = async () => {
    try {
      const probe = await new Deno.Command(python, {
        args: ["-c", "import torch"],
        stdout: "null",
        stderr: "null",
      }).output();
      return probe.success;
    } catch {
      return false;
    }
  };
  if (await imports()) return null;
  if (Deno.uid() !== 0) {
    return `${python} cannot import torch; as root: apt-get install python3-torch`;
  }
  log("PyTorch peer: torch is missing; installing python3-torch with apt-get (a few minutes)");
  try {
    const env = { DEBIAN_FRONTEND: "noninteractive" };
    for (const args of [["update", "-qq"], ["install", "-y", "-qq", "python3-torch"]]) {
      const step = await new Deno.Command("apt-get", { args, env, stdout: "null" }).output();
      if (!step.success) {
        return `apt-get ${args.join(" ")} failed: ${new TextDecoder().decode(step.stderr).trim()}`;
      }
    }
  } catch (error) {
    return `cannot run apt-get: ${describe(error)}`;
  }
  return await imports() ? null : `python3-torch installed but ${python} still cannot import torch`;
}

/** Runs the peer once for `mode`, `width`, `size`, `batch`; never throws. */
export async function runTorchPeer(
  mode: PeerMode,
  width: PdnWidth,
  size: number,
  batch: number,
  peer: { script: string; python: string } = DEFAULT_PEER,
): Promise<PeerTiming> {
  const start = performance.now();
  let output: Deno.CommandOutput;
  try {
    output = await new Deno.Command(peer.python, {
      args: [peer.script, mode, width, String(size), String(batch)],
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (error) {
    return { ok: false, reason: `cannot start ${peer.python}: ${describe(error)}` };
  }
  const wallSeconds = Math.round((performance.now() - start) / 100) / 10;
  const stdout = new TextDecoder().decode(output.stdout);
  if (!output.success) {
    const stderr = new TextDecoder().decode(output.stderr).trim().split("\n").slice(-3).join(" ");
    return { ok: false, reason: `peer exited with code ${output.code}: ${stderr}` };
  }
  const parsed = parsePeerLine(stdout);
  return parsed ? { ok: true, ...parsed, wallSeconds } : {
    ok: false,
    reason: `unexpected peer output: ${stdout.trim().slice(0, 200)}`,
  };
}

/** Parses the peer's result line; `undefined` when it is not there. */
export function parsePeerLine(
  text: string,
): { medianMs: number; torch: string; threads: number } | undefined {
  const match = text.match(/torch(\S+) threads=(\d+) .* median=([\d.]+) ms/);
  if (!match) return undefined;
  return { torch: match[1], threads: Number(match[2]), medianMs: Number(match[3]) };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
