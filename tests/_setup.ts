/**
 * Test helpers: real `nats-server` processes on free loopback ports in
 * temporary directories and waiting without sleeps (both from `testing/`:
 * `server.ts`, `cluster.ts`, `regions.ts`, `wait_for.ts`, shared with the
 * bench harness, re-exported here), connections and hub-and-regions
 * topologies, plus unique bucket names and edge workers.
 *
 * @module
 */

import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { waitFor } from "../testing/wait_for.ts";

export { type ClusterHandle, startCluster, type StartClusterOptions } from "../testing/cluster.ts";
export {
  connectTo,
  type ServerHandle,
  startServer,
  type StartServerOptions,
  urlFor,
} from "../testing/server.ts";
export {
  HUB_DOMAIN,
  LEAF_PASSWORDS,
  leafConnected,
  type RegionHandle,
  type RegionsHandle,
  startRegions,
  type StartRegionsOptions,
  topologyConfig,
} from "../testing/regions.ts";
export { suiteTransport } from "../testing/transport.ts";
export { type Truthy, waitFor, type WaitForOptions } from "../testing/wait_for.ts";

/**
 * A bucket name no other test uses: `<prefix>_<8 hex digits>`.
 *
 * @example
 * ```ts ignore
 * const bucket = uniqueBucket(); // "t_ab12cd34"
 * ```
 */
export function uniqueBucket(prefix = "t"): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/**
 * Every present key of `bucket` with its value as text, read back from KV
 * (keys sorted), for comparing a bucket with what it should hold.
 *
 * @example
 * ```ts ignore
 * assert.deepEqual(await dumpBucket(nc, "orders"), new Map([["o.1", "{}"]]));
 * ```
 */
export async function dumpBucket(nc: NatsConnection, bucket: string): Promise<Map<string, string>> {
  const kv = await new Kvm(nc).open(bucket);
  const keys: string[] = [];
  for await (const k of await kv.keys()) keys.push(k);
  const out = new Map<string, string>();
  for (const k of keys.sort()) {
    const e = await kv.get(k);
    if (e && e.operation === "PUT") out.set(k, e.string());
  }
  return out;
}

/** Keeps the event loop busy for `ms` (a stand-in for a GC pause or a CPU-bound handler). */
export function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

/** The lines of a byte stream (a child process's stdout), without their newlines. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    let i;
    while ((i = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
}
// ---- edge workers --------------------------------------------------------------------------

/** A `deno task serve` worker started by {@linkcode spawnEdge}. */
export interface EdgeProcess extends AsyncDisposable {
  /** The child process. */
  child: Deno.ChildProcess;
  /** Every JSON line printed so far, stdout and stderr. */
  lines: Record<string, unknown>[];
  /** Raw stdout and stderr text so far. */
  output: () => string;
  /** Resolves once both streams ended and the process exited. */
  exited: Promise<Deno.CommandStatus>;
  /**
   * Waits for the `listening` line; resolves with the facade's and the NATS
   * URL, and the whole line. Fails at once, with the output, if the worker
   * exits first.
   */
  listening: (
    timeoutMs?: number,
  ) => Promise<{ url: string; nats: string; line: Record<string, unknown> }>;
}

/**
 * Starts `workers/edge.ts` (what `deno task serve` runs) in `cwd`, with `env`
 * added to an environment without `NATS_URL` and with `PORT=0`. Disposing it
 * stops it with SIGTERM (SIGKILL if it does not exit within 20 s).
 *
 * @example
 * ```ts ignore
 * await using edge = spawnEdge(dir);
 * const { url } = await edge.listening();
 * ```
 */
export function spawnEdge(cwd: string, env: Record<string, string> = {}, args: string[] = []) {
  const worker = new URL("../workers/edge.ts", import.meta.url).pathname;
  const child = new Deno.Command(Deno.execPath(), {
    // As `deno task serve` runs it (request.signal without Deno's legacy notice).
    args: ["run", "-A", "--unstable-no-legacy-abort", worker, ...args],
    cwd,
    env: { NATS_URL: "", PORT: "0", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  let text = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    const dec = new TextDecoder();
    let buf = "";
    for await (const chunk of stream) {
      const part = dec.decode(chunk, { stream: true });
      text += part;
      buf += part;
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        try {
          lines.push(JSON.parse(line));
        } catch {
          // Not a log line (usage text, a runtime warning): kept in output() only.
        }
      }
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const exited = pumps.then(() => child.status);
  let ended: Deno.CommandStatus | undefined;
  void exited.then((status) => ended = status);
  const edge: EdgeProcess = {
    child,
    lines,
    output: () => text,
    exited,
    async listening(timeoutMs = 60_000) {
      const found = () => lines.find((l) => l.msg === "listening");
      const line = await waitFor(() => found() ?? (ended && { exited: ended }), {
        timeoutMs,
        message: "the edge worker listens",
      }).catch((err) => {
        throw new Error(`${err.message}; output so far: ${text}`); // read now, not at the start
      });
      if ("exited" in line) {
        throw new Error(`the edge worker exited (code ${ended?.code}) before it listened: ${text}`);
      }
      return { url: String(line.url), nats: String(line.nats), line };
    },
    async [Symbol.asyncDispose]() {
      // SIGTERM first, so that the worker stops its embedded nats-server too.
      for (const signal of ["SIGTERM", "SIGKILL"] as const) {
        try {
          child.kill(signal);
        } catch {
          break; // Already exited.
        }
        const done = await Promise.race([
          exited.then(() => true),
          new Promise<false>((resolve) => {
            const timer = setTimeout(() => resolve(false), 20_000);
            exited.finally(() => clearTimeout(timer));
          }),
        ]);
        if (done) break;
      }
      await exited;
    },
  };
  return edge;
}
