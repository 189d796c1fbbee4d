/**
 * HTTP hit: `wrk -t2 -c64 -d10s --latency` GETs of one resident key from the
 * edge worker (`deno task serve`, i.e. `workers/edge.ts`, replica mode, the
 * shipped defaults), on one isolate and on two (`KVEDGE_WORKERS=2`), against
 * a bare `Deno.serve` returning the value from a
 * Map with one header (`content-type`), the same bare server sending the six
 * headers kvedge sends (`content-type`, `etag`, `last-modified`, `x-cache`,
 * `cache-control`, `kv-bookmark`) built the fastest way known here (a copy of
 * a ready `Response`, as kvedge does), that server reading `If-None-Match`
 * as well (information: what reading one request header costs in Deno), and
 * Hono + `ioredis` cache-aside against the local Redis on 127.0.0.1:6379
 * (row skipped if Redis is absent). All servers run for the whole scenario
 * and take turns under load; variants rotate per repetition. The bare
 * servers are `deno serve` of `_bare_http.ts`, on one isolate and (one header,
 * six headers) on two with `--parallel`; each run also reads the server
 * process's CPU time and, after it, its resident memory (all isolates).
 *
 * @module
 */
import { Hono } from "hono";
import { Redis } from "ioredis";
import { Kvm } from "@nats-io/kv";
import { freePort } from "../../host/free_port.ts";
import { absRow, infoRow, ratioRow, type Row, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw } from "./_helpers.ts";
import { delay } from "../../src/async.ts";
import { benchServer, childArgs, DENO, ROOT, spawn, type Spawned } from "./_processes.ts";
import { type BareKind, KEY, valueJson } from "./_bare_http.ts";

const REDIS_URL = "redis://127.0.0.1:6379";

interface WrkFigures {
  rps: number;
  /** Requests answered in the run. */
  requests: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

function toMs(text: string): number {
  const m = /^([\d.]+)(us|ms|s|m)$/.exec(text.trim());
  if (!m) return NaN;
  const v = Number(m[1]);
  return m[2] === "us" ? v / 1000 : m[2] === "ms" ? v : m[2] === "s" ? v * 1000 : v * 60_000;
}

/** Parses wrk's report (with `--latency`). */
export function parseWrk(out: string): WrkFigures {
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(out)?.[1]);
  const requests = Number(/(\d+) requests in/.exec(out)?.[1]);
  const p50 = /^\s+50%\s+(\S+)/m.exec(out)?.[1];
  const p99 = /^\s+99%\s+(\S+)/m.exec(out)?.[1];
  const non2xx = Number(/Non-2xx or 3xx responses:\s+(\d+)/.exec(out)?.[1] ?? 0);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
  const errors = non2xx + (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0);
  if (!Number.isFinite(rps) || !p50 || !p99) throw new Error(`Cannot parse wrk output:\n${out}`);
  return { rps, requests, p50Ms: toMs(p50), p99Ms: toMs(p99), errors };
}

async function wrk(url: string, seconds: number): Promise<WrkFigures> {
  const out = await new Deno.Command("wrk", {
    args: ["-t2", "-c64", `-d${seconds}s`, "--latency", url],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) throw new Error(`wrk failed: ${new TextDecoder().decode(out.stderr)}`);
  return parseWrk(text);
}

/**
 * CPU seconds (user + system) process `pid` has used so far, from
 * `/proc/<pid>/stat`; undefined where there is no such file. Per request, it
 * is less disturbed than rps by other jobs on the machine.
 */
function cpuSeconds(pid: number, ticksPerSecond: number): number | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // After "(comm) ": state is field 3, utime field 14, stime field 15.
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return (Number(f[11]) + Number(f[12])) / ticksPerSecond;
  } catch {
    return undefined;
  }
}

/** The kernel's clock ticks per second (`getconf CLK_TCK`), 100 if unknown. */
async function clockTicks(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return Number.isFinite(n) && n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

async function hasWrk(): Promise<boolean> {
  try {
    await new Deno.Command("wrk", { args: ["--version"], stdout: "null", stderr: "null" }).output();
    return true;
  } catch {
    return false;
  }
}

async function redisUp(): Promise<boolean> {
  const r = new Redis(REDIS_URL, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  try {
    await r.connect();
    return (await r.ping()) === "PONG";
  } catch {
    return false;
  } finally {
    r.disconnect();
  }
}

/** Waits until `url` answers 200 with the expected body. */
async function waitServing(url: string, proc: Spawned, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  let last = "";
  while (Date.now() < deadline) {
    const status = await Promise.race([proc.child.status, delay(0).then(() => undefined)]);
    if (status) {
      throw new Error(`${what} exited (${status.code}) before serving: ${proc.stderrTail()}`);
    }
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      const body = await res.text();
      if (res.status === 200 && JSON.parse(body).id === 1) return;
      last = `${res.status} ${body.slice(0, 200)}`;
    } catch (err) {
      last = String(err);
    }
    await delay(100);
  }
  throw new Error(`${what} did not serve ${url} within 60 s (last: ${last})`);
}

type Variant =
  | "edge"
  | "bare"
  | "bare_headers"
  | "bare_headers_inm"
  | "hono_redis"
  | "edge_w2"
  | "bare_w2"
  | "bare_headers_w2";

/** The servers run on two isolates, and the one-isolate server each is compared with. */
const TWO_ISOLATES = [
  ["edge_w2", "edge", "kvedge"],
  ["bare_w2", "bare", "bare Deno.serve + Map"],
  ["bare_headers_w2", "bare_headers", "bare, six headers"],
] as const;

/** Resident memory of process `pid` (all its isolates), in MB; undefined where unknown. */
function rssMb(pid: number): number | undefined {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1]);
    return Number.isFinite(kb) ? kb / 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** The HTTP-hit scenario. */
export const scenario: Scenario = {
  name: "http",
  title: "wrk -t2 -c64 GET of a resident key: edge worker vs bare Deno.serve and Hono+ioredis",
  async run(ctx) {
    const seconds = ctx.quick ? 1 : 10;
    const base = {
      name: "http",
      title: this.title,
      params: { wrk: `-t2 -c64 -d${seconds}s --latency`, reps: ctx.reps, key: KEY },
    };
    if (!(await hasWrk())) {
      return { ...base, rows: [], skipped: "wrk is not installed (scripts/setup.sh --bench)" };
    }
    const redis = await redisUp();
    const server = await benchServer();
    const procs: Spawned[] = [];
    const redisKey = `kvedge_bench:${benchBucket("k")}:${KEY}`;
    try {
      const nc = await connectRaw(server.url);
      const bucket = benchBucket("bench_http");
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      await kv.put(KEY, new TextEncoder().encode(valueJson()));
      await nc.close();

      const urls = {} as Record<Variant, string>;
      const pids = {} as Record<Variant, number>;
      const path = `/v1/buckets/${bucket}/keys/${KEY}`;
      /** Starts variant `v` on a free port and waits until it serves; another port if that one was taken. */
      const start = async (v: Variant, what: string, run: (port: number) => Spawned) => {
        for (let attempt = 1;; attempt++) {
          const port = freePort();
          const proc = run(port);
          procs.push(proc);
          try {
            await waitServing(`http://127.0.0.1:${port}${path}`, proc, what);
          } catch (err) {
            // The port was free when picked; a connection of another process may have taken it since.
            if (attempt < 3 && /AddrInUse/.test(String(err))) continue;
            throw err;
          }
          pids[v] = proc.child.pid;
          urls[v] = `http://127.0.0.1:${port}${path}`;
          return;
        }
      };
      for (const v of ["edge", "edge_w2"] as const) {
        await start(
          v,
          v === "edge" ? "edge worker" : "edge worker, 2 isolates",
          (port) =>
            spawn(DENO, [
              "run",
              "-A",
              "--config",
              `${ROOT}/deno.json`,
              `${ROOT}/workers/edge.ts`,
            ], {
              env: {
                NATS_URL: server.url,
                KVEDGE_BUCKETS: `${bucket}:replica`,
                PORT: String(port),
                KVEDGE_WORKERS: v === "edge" ? "1" : "2",
              },
            }),
        );
      }
      // Every bare server is `deno serve` of one module, on one isolate or
      // (`--parallel`, DENO_JOBS=2) on two, whose isolates share the port as
      // the edge worker's do: the same code and the same way to run it.
      const bares: BareKind[] = ["bare", "bare_headers", "bare_headers_inm"];
      const bareRuns = [
        ...bares.map((kind) => [kind, kind, 1] as const),
        ["bare_w2", "bare", 2] as const,
        ["bare_headers_w2", "bare_headers", 2] as const,
      ];
      for (const [v, kind, jobs] of bareRuns) {
        await start(v, `${v} server`, (port) =>
          spawn(DENO, [
            "serve",
            ...(jobs > 1 ? ["--parallel"] : []),
            "-A",
            "--config",
            `${ROOT}/deno.json`,
            "--host",
            "127.0.0.1",
            "--port",
            String(port),
            new URL("./_bare_http.ts", import.meta.url).pathname,
          ], {
            env: { DENO_JOBS: String(jobs), KVEDGE_BENCH_BARE: kind, KVEDGE_BENCH_BUCKET: bucket },
          }));
      }

      const variants: Variant[] = ["edge", ...bares, "edge_w2", "bare_w2", "bare_headers_w2"];
      if (redis) {
        const r = new Redis(REDIS_URL);
        await r.set(redisKey, valueJson());
        r.disconnect();
        await start("hono_redis", "Hono+ioredis server", (port) =>
          spawn(DENO, [
            "run",
            "-A",
            "--config",
            `${ROOT}/deno.json`,
            import.meta.filename!,
            "--child",
            "hono",
            "--port",
            String(port),
            "--redis-key",
            redisKey,
          ]));
        variants.push("hono_redis");
      }
      await sameHeaders(urls.edge, urls.bare_headers);

      ctx.log(`http: warm-up, then ${ctx.reps} reps × ${variants.length} variants × ${seconds} s`);
      if (!ctx.quick) { for (const v of variants) await wrk(urls[v], 2); }
      const fig = {} as Record<
        Variant,
        {
          rps: number[];
          p50: number[];
          p99: number[];
          errors: number[];
          cpuUs: number[];
          rssMb: number[];
        }
      >;
      for (const v of variants) {
        fig[v] = { rps: [], p50: [], p99: [], errors: [], cpuUs: [], rssMb: [] };
      }
      const ticks = await clockTicks();
      for (let r = 0; r < ctx.reps; r++) {
        for (let j = 0; j < variants.length; j++) {
          const v = variants[(j + r) % variants.length]!;
          const cpu0 = cpuSeconds(pids[v], ticks);
          const w = await wrk(urls[v], seconds);
          const cpu1 = cpuSeconds(pids[v], ticks);
          if (cpu0 !== undefined && cpu1 !== undefined && w.requests > 0) {
            fig[v].cpuUs.push((cpu1 - cpu0) * 1e6 / w.requests);
          }
          const rss = rssMb(pids[v]);
          if (rss !== undefined) fig[v].rssMb.push(rss);
          fig[v].rps.push(w.rps);
          fig[v].p50.push(w.p50Ms);
          fig[v].p99.push(w.p99Ms);
          fig[v].errors.push(w.errors);
        }
      }
      const errors = variants.map((v) => fig[v].errors.reduce((a, b) => a + b, 0));
      const rows: Row[] = [
        ratioRow(
          "GET hit throughput",
          "rps",
          stat(fig.edge.rps),
          "bare Deno.serve + Map",
          stat(fig.bare.rps),
          "ge",
          0.85,
        ),
      ];
      rows.push(
        ratioRow(
          "GET hit throughput",
          "rps",
          stat(fig.edge.rps),
          "bare Deno.serve + Map, kvedge's six headers",
          stat(fig.bare_headers.rps),
          "ge",
          0.95,
        ),
        infoRow("GET hit throughput", "rps", stat(fig.edge.rps), {
          baselineName: "bare, six headers, reads If-None-Match",
          baseline: stat(fig.bare_headers_inm.rps),
          note: "info: what reading a request header costs",
        }),
      );
      if (redis) {
        rows.push(
          ratioRow(
            "GET hit throughput",
            "rps",
            stat(fig.edge.rps),
            "Hono + ioredis cache-aside",
            stat(fig.hono_redis.rps),
            "ge",
            1.2,
          ),
        );
      } else {
        rows.push({
          metric: "GET hit throughput vs Hono + ioredis",
          unit: "rps",
          kvedge: null,
          note: "skipped: Redis is not reachable on 127.0.0.1:6379",
        });
      }
      if (fig.edge.cpuUs.length > 0) {
        // The server's own CPU per request: the figure other jobs on the machine disturb least.
        for (
          const [v, name] of [["bare", "bare Deno.serve + Map"], [
            "bare_headers",
            "bare, six headers",
          ]] as const
        ) {
          rows.push(
            infoRow("server CPU per GET hit", "µs", stat(fig.edge.cpuUs), {
              baselineName: name,
              baseline: stat(fig[v].cpuUs),
              note: "info: CPU time of the server process / requests; lower is better",
            }),
          );
        }
      }
      // More than one core: each server on two isolates against itself on one,
      // and kvedge on two against the bare servers on two.
      for (const [two, one, name] of TWO_ISOLATES) {
        rows.push(
          infoRow("GET hit throughput, 2 isolates vs 1", "rps", stat(fig[two].rps), {
            baselineName: `${name}, 1 isolate`,
            baseline: stat(fig[one].rps),
            note: `info: ${name} on 2 isolates (KVEDGE_WORKERS=2 / deno serve --parallel)`,
          }),
        );
      }
      for (
        const [v, name] of [["bare_w2", "bare, 2 isolates"], [
          "bare_headers_w2",
          "bare, six headers, 2 isolates",
        ]] as const
      ) {
        rows.push(
          infoRow("GET hit throughput, kvedge on 2 isolates", "rps", stat(fig.edge_w2.rps), {
            baselineName: name,
            baseline: stat(fig[v].rps),
            note: "info: both on 2 isolates",
          }),
        );
      }
      if (fig.edge_w2.cpuUs.length > 0) {
        rows.push(
          infoRow("server CPU per GET hit, 2 isolates", "µs", stat(fig.edge_w2.cpuUs), {
            baselineName: "bare, six headers, 2 isolates",
            baseline: stat(fig.bare_headers_w2.cpuUs),
            note: "info: CPU time of the server process (all isolates) / requests",
          }),
          infoRow("server CPU per GET hit, 2 isolates vs 1", "µs", stat(fig.edge_w2.cpuUs), {
            baselineName: "kvedge, 1 isolate",
            baseline: stat(fig.edge.cpuUs),
            note: "info",
          }),
        );
      }
      if (fig.edge.rssMb.length > 0) {
        for (const [two, one, name] of TWO_ISOLATES) {
          rows.push(
            infoRow("server RSS after a run, 2 isolates vs 1", "MB", stat(fig[two].rssMb), {
              baselineName: `${name}, 1 isolate`,
              baseline: stat(fig[one].rssMb),
              note: `info: ${name}, whole process (one cache per isolate for kvedge)`,
            }),
          );
        }
      }
      rows.push(
        infoRow("GET hit p99 latency", "ms", stat(fig.edge.p99), {
          baselineName: "bare Deno.serve + Map",
          baseline: stat(fig.bare.p99),
          note: "info",
        }),
      );
      if (redis) {
        rows.push(
          infoRow("GET hit p99 latency", "ms", stat(fig.edge.p99), {
            baselineName: "Hono + ioredis cache-aside",
            baseline: stat(fig.hono_redis.p99),
            note: "info",
          }),
        );
      }
      rows.push(
        infoRow("GET hit p50 latency", "ms", stat(fig.edge.p50), {
          baselineName: "bare Deno.serve + Map",
          baseline: stat(fig.bare.p50),
          note: "info",
        }),
      );
      if (errors.some((e) => e > 0)) {
        rows.push(absRow("wrk errors (non-2xx, socket)", "errors", stat(fig.edge.errors), "eq", 0));
      }
      return { ...base, params: { ...base.params, redis }, rows, raw: fig };
    } finally {
      for (const p of procs) await p.stop();
      if (redis) {
        const r = new Redis(REDIS_URL);
        await r.del(redisKey).catch(() => {});
        r.disconnect();
      }
      await server.stop();
    }
  },
};

/**
 * The edge and the bare server with six headers must send the same header
 * names (values differ: revision, dates), or the second ratio compares unlike
 * answers.
 */
async function sameHeaders(edgeUrl: string, bareUrl: string): Promise<void> {
  const names = async (url: string) => {
    const res = await fetch(url);
    await res.body?.cancel();
    return [...res.headers.keys()].filter((k) => k !== "date" && k !== "content-length").join();
  };
  const [edge, bare] = [await names(edgeUrl), await names(bareUrl)];
  if (edge !== bare) {
    throw new Error(`the bare server sends headers ${bare}, the edge ${edge}: update bareServer()`);
  }
}

// ---- child servers -------------------------------------------------------------------------

function honoRedisServer(port: number, redisKey: string): void {
  const redis = new Redis(REDIS_URL);
  // The origin behind the cache; never reached while the key is in Redis.
  const origin = new Map<string, string>([[KEY, valueJson()]]);
  const app = new Hono();
  app.get("/v1/buckets/:bucket/keys/:key", async (c) => {
    const key = c.req.param("key");
    const cacheKey = redisKey.slice(0, redisKey.length - KEY.length) + key;
    let value = await redis.get(cacheKey);
    if (value === null) {
      value = origin.get(key) ?? null;
      if (value === null) return c.text("not found", 404);
      await redis.set(cacheKey, value, "EX", 300);
    }
    return c.body(value, 200, { "content-type": "application/json" });
  });
  Deno.serve({ port, hostname: "127.0.0.1", onListen() {} }, app.fetch);
}

if (import.meta.main) {
  const a = childArgs(Deno.args);
  const port = Number(a.port);
  if (a.child === "hono") honoRedisServer(port, a["redis-key"]!);
}
