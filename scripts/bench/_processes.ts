/**
 * The processes of a benchmark run: servers, clusters and child Deno
 * processes, always cleaned up (on failure and Ctrl-C too), and the
 * parent/child protocol of scenarios that run in a child.
 *
 * @module
 */
import { type ClusterHandle, startCluster } from "../../testing/cluster.ts";
import { type ServerHandle, startServer } from "../../testing/server.ts";
import { parseArgs } from "node:util";
import { settleWithin } from "../../src/async.ts";

const children = new Set<Deno.ChildProcess>();
const cleanups = new Set<() => Promise<void>>();

// Whatever happens (failure, Ctrl-C), no child or server outlives the bench.
globalThis.addEventListener("unload", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Runs every registered cleanup (servers, children); used on signals and at the end. */
export async function cleanupAll(): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    await fn().catch(() => {});
  }
}

/** A single nats-server on free loopback ports, stopped (and its dir removed) by `stop()`. */
export async function benchServer(): Promise<ServerHandle> {
  const s = await startServer();
  const stop = () => s.stop();
  cleanups.add(stop);
  const original = s.stop.bind(s);
  return Object.assign(s, {
    stop: async () => {
      cleanups.delete(stop);
      await original();
    },
  });
}

/** A 3-node JetStream cluster on free loopback ports. */
export async function benchCluster(): Promise<ClusterHandle> {
  const c = await startCluster({ size: 3 });
  const stop = () => c.stop();
  cleanups.add(stop);
  const original = c.stop.bind(c);
  return Object.assign(c, {
    stop: async () => {
      cleanups.delete(stop);
      await original();
    },
  });
}

/** A spawned process tracked for cleanup. */
export interface Spawned {
  /** The process. */
  child: Deno.ChildProcess;
  /** The last few KB the process wrote to stderr (for error messages). */
  stderrTail(): string;
  /** Kills it (SIGTERM, then SIGKILL after 3 s) and waits for its exit. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Spawns a long-running process (a server under test). Its stdout is
 * discarded; its stderr is drained continuously (a full pipe would block
 * it) and its tail kept for error messages.
 */
export function spawn(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Spawned {
  const child = new Deno.Command(cmd, {
    args,
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  children.add(child);
  let tail = "";
  const dec = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of child.stderr) {
      tail = (tail + dec.decode(chunk, { stream: true })).slice(-4096);
    }
  })().catch(() => {});
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      if (!await settleWithin(child.status, 3_000)) {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }
      await child.status;
      await drained;
      children.delete(child);
    })();
    return stopping;
  };
  return { child, stop, stderrTail: () => tail };
}

/** Path of the deno executable running the bench. */
export const DENO = Deno.execPath();
/** Repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Runs `deno run -A [flags] <module> <args>` to completion and returns the
 * JSON object printed on the last line of its stdout. Used for measurements
 * that need a fresh process (memory, RSS, JIT isolation).
 */
export async function runChild<T>(
  module: string,
  args: string[],
  options: { v8Flags?: string[]; env?: Record<string, string>; denoFlags?: string[] } = {},
): Promise<T> {
  const flags = ["run", "-A", "--config", `${ROOT}/deno.json`, ...(options.denoFlags ?? [])];
  if (options.v8Flags?.length) flags.push(`--v8-flags=${options.v8Flags.join(",")}`);
  const child = new Deno.Command(DENO, {
    args: [...flags, module, ...args],
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  try {
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      const stderr = new TextDecoder().decode(out.stderr).trim();
      throw new Error(
        `bench child ${module} ${args.join(" ")} failed (${out.code}): ${
          stderr.length > 3000 ? `${stderr.slice(0, 1500)} … ${stderr.slice(-1500)}` : stderr
        }`,
      );
    }
    const last = stdout.split("\n").pop() ?? "";
    return JSON.parse(last) as T;
  } finally {
    children.delete(child);
  }
}

/** Prints a child's result as the last stdout line (read by {@link runChild}). */
export function emit(value: unknown): void {
  console.log(JSON.stringify(value));
}

/**
 * Parses the `--name value` arguments a child is started with (a flag without
 * a value reads `"true"`); anything else is ignored.
 */
export function childArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const { tokens } = parseArgs({ args, strict: false, allowPositionals: true, tokens: true });
  let taken = -1; // the index of the value last taken
  for (const t of tokens) {
    if (t.index === taken || t.kind !== "option" || !t.rawName.startsWith("--")) continue;
    const name = args[t.index]!.slice(2);
    const next = args[t.index + 1];
    if (next !== undefined && !next.startsWith("--")) {
      out[name] = next;
      taken = t.index + 1;
    } else {
      out[name] = "true";
    }
  }
  return out;
}
