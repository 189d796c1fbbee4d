/**
 * kvedge in Cloudflare's runtime (the workerd binary from npm), next to the
 * same fetch handler under Deno (`deno serve examples/isolate/main.ts`), all
 * driven over HTTP on loopback against one nats-server's WebSocket port:
 *
 * - cold start: process spawn → first answer (a miss served from KV);
 * - a repeated read of one key (a hit in Deno and in the Durable Object; in
 *   the workerd isolate every request after the first opens its own
 *   connection, so it is a miss with a connect);
 * - a miss (a key not read before);
 * - put → visible: a raw client puts a key, the time until a watch stream
 *   (SSE) from the edge delivers it; one put at a time.
 *
 * Targets: Deno (baseline), the workerd isolate (plain handler), the workerd
 * Durable Object. Each repetition starts fresh processes.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import { connectNats } from "../../src/connect.ts";
import { freePort } from "../../host/free_port.ts";
import { startServer } from "../../testing/server.ts";
import { bundleWorker, workerdBinary, workerdConfig } from "../../testing/workerd.ts";
import { percentile, ratioRow, type Row, type Scenario, type Stat, stat } from "./_harness.ts";
import { benchBucket } from "./_helpers.ts";
import { delay } from "../../src/async.ts";
import { DENO, ROOT, spawn, type Spawned } from "./_processes.ts";

type Target = "deno" | "isolate" | "object";
const TARGETS: Target[] = ["deno", "isolate", "object"];
const NAMES: Record<Target, string> = {
  deno: "Deno isolate",
  isolate: "workerd isolate",
  object: "workerd Durable Object",
};
const enc = new TextEncoder();

interface Figures {
  coldMs: number;
  repeatP50Ms: number;
  missP50Ms: number;
  propP50Ms: number;
  propP99Ms: number;
}

/** The benchmark's workerd config: no write token, its own Durable Object namespace. */
function capnp(port: number, natsUrl: string, bucket: string, compatibilityDate: string): string {
  return workerdConfig({ port, natsUrl, bucket, compatibilityDate, uniqueKey: "kvedge-bench" });
}

/** GETs `url` until it answers 200 (connection refused while the process starts); ms taken. */
async function firstAnswer(url: string, t0: number, proc: Spawned): Promise<number> {
  const deadline = t0 + 60_000;
  while (performance.now() < deadline) {
    try {
      const res = await fetch(url);
      await res.body?.cancel();
      if (res.status === 200) return performance.now() - t0;
      throw new Error(`first answer ${res.status}: ${proc.stderrTail()}`);
    } catch (err) {
      if (!(err instanceof TypeError)) throw err; // not a refused connection
      await delay(2);
    }
  }
  throw new Error(`no answer from ${url} in 60 s: ${proc.stderrTail()}`);
}

async function timedGet(url: string): Promise<number> {
  const t = performance.now();
  const res = await fetch(url);
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return performance.now() - t;
}

/** Puts keys one at a time and times each until the edge's watch stream delivers it. */
async function propagation(
  watchUrl: string,
  kv: Awaited<ReturnType<Kvm["open"]>>,
  prefix: string,
  n: number,
): Promise<number[]> {
  const abort = new AbortController();
  const res = await fetch(watchUrl, { signal: abort.signal });
  if (res.status !== 200) throw new Error(`watch: ${res.status}`);
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  const seen = async (key: string, timeoutMs: number) => {
    const deadline = performance.now() + timeoutMs;
    while (!text.includes(`"${key}"`)) {
      if (performance.now() > deadline) throw new Error(`watch never delivered ${key}`);
      const { value, done } = await reader.read();
      if (done) throw new Error("watch stream ended");
      text = (text + value).slice(-4096);
    }
  };
  try {
    // The stream is live once it delivers a put made after it opened.
    for (let i = 0;; i++) {
      await kv.put(`${prefix}warm.${i}`, enc.encode("w"));
      try {
        await seen(`${prefix}warm.${i}`, 2_000);
        break;
      } catch (err) {
        if (i >= 10) throw err;
      }
    }
    const lat: number[] = [];
    for (let i = 0; i < n; i++) {
      const key = `${prefix}${i}`;
      const t = performance.now();
      await kv.put(key, enc.encode(String(i)));
      await seen(key, 10_000);
      lat.push(performance.now() - t);
    }
    return lat;
  } finally {
    abort.abort();
    await reader.cancel().catch(() => {});
  }
}

/** The workerd scenario. */
export const scenario: Scenario = {
  name: "workerd",
  title: "kvedge in workerd (isolate, Durable Object) vs Deno: cold start, reads, put → visible",
  async run(ctx) {
    const requests = ctx.quick ? 20 : 200;
    const writes = ctx.quick ? 20 : 200;
    const { path: binary, compatibilityDate } = await workerdBinary();
    const server = await startServer({ websocket: true });
    const dir = await Deno.makeTempDir({ prefix: "kvedge-bench-workerd-" });
    try {
      await bundleWorker(`${ROOT}/scripts/bench/_workerd_worker.ts`, `${dir}/worker.js`);
      const bucket = benchBucket("bench_wd");
      const nc = await connectNats({ servers: [server.tcpUrl] });
      const figures: Record<Target, Figures[]> = { deno: [], isolate: [], object: [] };
      try {
        const kv = await new Kvm(nc).create(bucket, { history: 1 });
        const keysPerRep = requests + 1;
        const total = keysPerRep * ctx.reps * TARGETS.length;
        const puts: Promise<unknown>[] = [];
        for (let i = 0; i < total; i++) puts.push(kv.put(`k.${i}`, enc.encode(String(i))));
        await Promise.all(puts);
        let next = 0;
        for (let r = 0; r < ctx.reps; r++) {
          const order = r % 2 === 0 ? TARGETS : [...TARGETS].reverse();
          for (const target of order) {
            ctx.log(`workerd: rep ${r + 1}/${ctx.reps} ${target}`);
            const port = freePort();
            let proc: Spawned;
            const t0 = performance.now();
            if (target === "deno") {
              proc = spawn(DENO, [
                "serve",
                "--quiet",
                "--allow-net",
                "--allow-env",
                "--port",
                String(port),
                `${ROOT}/examples/isolate/main.ts`,
              ], { env: { NATS_URL: server.wsUrl!, KVEDGE_BUCKETS: bucket } });
            } else {
              const config = `${dir}/config-${port}.capnp`;
              Deno.writeTextFileSync(
                config,
                capnp(port, server.wsUrl!, bucket, compatibilityDate),
              );
              proc = spawn(binary, ["serve", config]);
            }
            try {
              const base = `http://127.0.0.1:${port}${target === "object" ? "/do" : ""}` +
                `/v1/buckets/${bucket}`;
              const first = next++;
              const coldMs = await firstAnswer(`${base}/keys/k.${first}`, t0, proc);
              const repeat: number[] = [];
              for (let i = 0; i < requests; i++) {
                repeat.push(await timedGet(`${base}/keys/k.${first}`));
              }
              const miss: number[] = [];
              for (let i = 0; i < requests; i++) {
                miss.push(await timedGet(`${base}/keys/k.${next++}`));
              }
              const prop = await propagation(
                `${base}/watch?prefix=p.${r}.${target}.`,
                kv,
                `p.${r}.${target}.`,
                writes,
              );
              figures[target].push({
                coldMs,
                repeatP50Ms: percentile(repeat, 0.5),
                missP50Ms: percentile(miss, 0.5),
                propP50Ms: percentile(prop, 0.5),
                propP99Ms: percentile(prop, 0.99),
              });
            } finally {
              await proc.stop();
            }
          }
        }
      } finally {
        await nc.close();
      }
      const of = (k: keyof Figures) => (t: Target): Stat => stat(figures[t].map((f) => f[k]));
      const rows: Row[] = [];
      const add = (
        metric: string,
        k: keyof Figures,
        note: Partial<Record<Target, string>> = {},
      ) => {
        for (const t of ["isolate", "object"] as const) {
          rows.push(
            ratioRow(
              `${metric}, ${NAMES[t]}`,
              "ms",
              of(k)(t),
              NAMES.deno,
              of(k)("deno"),
              undefined,
              undefined,
              note[t] ?? "info",
            ),
          );
        }
      };
      add("cold start: process spawn → first answer (miss)", "coldMs");
      add("repeated read of one key p50", "repeatP50Ms", {
        isolate: "info: a connection per request there, so a miss; Deno and the object hit",
      });
      add("miss p50", "missP50Ms", { isolate: "info: includes the per-request connection" });
      add("put → visible (SSE watch) p50", "propP50Ms");
      add("put → visible (SSE watch) p99", "propP99Ms");
      return {
        name: "workerd",
        title: this.title,
        params: {
          reps: ctx.reps,
          requestsPerRep: requests,
          writesPerRep: writes,
          workerd: compatibilityDate,
          server: "one nats-server, `websocket { no_tls: true }` on loopback; HTTP on loopback",
        },
        rows,
        raw: { figures },
      };
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
};
