/**
 * The process's open-file limit and what it allows: reading and raising it,
 * and how many client connections fit in it, which sizes the connection
 * gate's cap.
 *
 * @module
 */
import { nativeServeOnConnection } from "./edge_handoff.ts";

/**
 * The process's open-file limits, from `/proc/self/limits` (Linux); `undefined`
 * elsewhere.
 */
export function openFileLimit(): { soft: number; hard: number } | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    if (m === null) return undefined;
    const n = (s: string) => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return undefined;
  }
}

/**
 * Raises the soft open-file limit to the hard one with `prlimit` (util-linux)
 * on this process, so that connections, not an accident of the shell's
 * `ulimit -n`, set the cap. Returns the limits after the attempt and why it
 * failed, if it did.
 */
export async function raiseOpenFileLimit(): Promise<
  { soft: number; hard: number; error?: string } | undefined
> {
  const before = openFileLimit();
  if (before === undefined || before.soft >= before.hard) return before;
  // Beyond ~1M descriptors nothing is gained and some kernels refuse.
  const target = Math.min(before.hard, 1 << 20);
  try {
    const out = await new Deno.Command("prlimit", {
      args: ["--pid", String(Deno.pid), `--nofile=${target}:${before.hard}`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return { ...before, error: new TextDecoder().decode(out.stderr).trim() || "prlimit failed" };
    }
  } catch (err) {
    return { ...before, error: `prlimit: ${err instanceof Error ? err.message : String(err)}` };
  }
  return openFileLimit() ?? before;
}

/**
 * Open files one client connection costs: its socket when connections are
 * handed to `Deno.serve`; three (client socket and both ends of the Unix
 * socket) for the byte pipe.
 */
export function descriptorsPerConnection(pipe = false): number {
  return pipe || nativeServeOnConnection() === undefined ? 3 : 1;
}

/**
 * How many client connections fit in `softLimit` open files, at
 * `perConnection` descriptors each, after `reserve` for NATS, files and the
 * runtime.
 *
 * @example
 * ```ts
 * import { connectionBudget } from "./open_files.ts";
 * console.log(connectionBudget(1024, 128, 1)); // 896
 * console.log(connectionBudget(1024, 128, 3)); // 298
 * ```
 */
export function connectionBudget(
  softLimit: number,
  reserve = 128,
  perConnection: number = descriptorsPerConnection(),
): number {
  return Math.max(1, Math.floor((softLimit - reserve) / perConnection));
}
