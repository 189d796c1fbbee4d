/**
 * kvedge per JavaScript runtime, side by side on one machine and one
 * nats-server (TCP): Deno, Node 22, Node 24 and Bun (the last three from
 * `.runtimes/`, installed by `scripts/setup.sh`). Per repetition and runtime,
 * one fresh process (`_runtime_child.ts`, the same file under every runtime):
 *
 * - cold start: spawn → the first answer of a fresh `createFetchHandler()`
 *   (connect, open, a miss from KV), timed by this process; and inside the
 *   child, `createFetchHandler()` → first answer, and the second request (a hit);
 * - `get()` miss p50 and hit of a lazy cache;
 * - put → visible p50: a raw put on a resident key until `cache.changes()`
 *   yields it, one write at a time.
 *
 * Runtimes alternate order per repetition. The ratio column compares each
 * runtime with Deno. A runtime that is not installed is a skipped row.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import { RUNTIMES } from "../../host/runtimes.ts";
import { connectNats } from "../../src/connect.ts";
import { startServer } from "../../testing/server.ts";
import { infoRow, type Row, type Scenario, skippedRow, type Stat, stat } from "./_harness.ts";
import { benchBucket } from "./_helpers.ts";
import { DENO, ROOT } from "./_processes.ts";

const CHILD = `${ROOT}/scripts/bench/_runtime_child.ts`;

interface Figures {
  processToFirstMs: number;
  openToFirstMs: number;
  hitRequestMs: number;
  missP50Us: number;
  hitNs: number;
  visibleP50Ms: number;
}

/** How each runtime runs the child. */
function command(name: string): { cmd: string; args: string[] } {
  if (name === "deno") {
    return { cmd: DENO, args: ["run", "-A", "--config", `${ROOT}/deno.json`, CHILD] };
  }
  return { cmd: RUNTIMES[name]!, args: [CHILD] };
}

/** One fresh process of `name`: spawn → its `first` line, then its figures. */
async function once(name: string, args: string[]): Promise<Figures> {
  const { cmd, args: head } = command(name);
  const t0 = performance.now();
  const child = new Deno.Command(cmd, {
    args: [...head, ...args],
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).spawn();
  const stderr = new Response(child.stderr).text();
  let processToFirstMs = NaN;
  let last = "";
  let buffered = "";
  const dec = new TextDecoder();
  for await (const chunk of child.stdout) {
    buffered += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      if (line === '{"first":true}') processToFirstMs = performance.now() - t0;
      else if (line.startsWith("{")) last = line;
    }
  }
  const status = await child.status;
  if (!status.success || last === "") {
    throw new Error(`${name} child failed (${status.code}): ${(await stderr).slice(-2000)}`);
  }
  return { processToFirstMs, ...JSON.parse(last) } as Figures;
}

async function installed(name: string): Promise<boolean> {
  if (name === "deno") return true;
  try {
    await Deno.stat(RUNTIMES[name]!);
    return true;
  } catch {
    return false;
  }
}

/** The runtimes scenario. */
export const scenario: Scenario = {
  name: "runtimes",
  title: "per runtime (Deno, Node 22, Node 24, Bun): cold start, hit, miss, put → visible",
  async run(ctx) {
    const misses = ctx.quick ? 20 : 200;
    const writes = ctx.quick ? 20 : 200;
    const names = ["deno", ...Object.keys(RUNTIMES)];
    const present: string[] = [];
    for (const n of names) if (await installed(n)) present.push(n);
    const server = await startServer();
    try {
      const bucket = benchBucket("bench_rt");
      const total = 1 + misses * ctx.reps * present.length;
      const nc = await connectNats({ servers: [server.tcpUrl] });
      try {
        const kv = await new Kvm(nc).create(bucket, { history: 1 });
        const puts: Promise<unknown>[] = [kv.put("p.0", "0")];
        for (let i = 0; i < total; i++) puts.push(kv.put(`k.${i}`, String(i)));
        await Promise.all(puts);
      } finally {
        await nc.close();
      }
      const figures: Record<string, Figures[]> = Object.fromEntries(present.map((n) => [n, []]));
      let from = 1;
      for (let r = 0; r < ctx.reps; r++) {
        const order = r % 2 === 0 ? present : [...present].reverse();
        for (const name of order) {
          ctx.log(`runtimes: rep ${r + 1}/${ctx.reps} ${name}`);
          figures[name]!.push(
            await once(name, [server.tcpUrl, bucket, String(from), String(misses), String(writes)]),
          );
          from += misses;
        }
      }
      const of = (name: string, k: keyof Figures): Stat => stat(figures[name]!.map((f) => f[k]));
      const metrics: [keyof Figures, string, string][] = [
        ["processToFirstMs", "cold: process start → first answer (miss from KV)", "ms"],
        ["openToFirstMs", "cold: createFetchHandler() → first answer", "ms"],
        ["hitRequestMs", "cold: second request (hit)", "ms"],
        ["missP50Us", "get() miss p50", "µs"],
        ["hitNs", "get() hit", "ns/op"],
        ["visibleP50Ms", "put → visible p50", "ms"],
      ];
      const rows: Row[] = [];
      for (const [key, metric, unit] of metrics) {
        for (const name of names) {
          if (!present.includes(name)) {
            rows.push(skippedRow(`${metric}, ${name}`, "not installed (bash scripts/setup.sh)"));
          } else if (name === "deno") {
            rows.push(infoRow(`${metric}, deno`, unit, of(name, key)));
          } else {
            rows.push(infoRow(`${metric}, ${name}`, unit, of(name, key), {
              baselineName: "deno",
              baseline: of("deno", key),
            }));
          }
        }
      }
      return {
        name: "runtimes",
        title: this.title,
        params: {
          reps: ctx.reps,
          missesPerRep: misses,
          writesPerRep: writes,
          server: "one nats-server on loopback, TCP",
          runtimes: present,
        },
        rows,
        raw: { figures },
      };
    } finally {
      await server.stop();
    }
  },
};
