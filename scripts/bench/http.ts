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
import { Kvm } from "@nats-io/kv";
import { Redis } from "ioredis";
import type { BenchContext, Scenario } from "./_harness.ts";
import { benchBucket, connectRaw } from "./_helpers.ts";
import { benchServer } from "./_processes.ts";
import { KEY, valueJson } from "./_bare_http.ts";
import { hasWrk, wrk } from "./_wrk.ts";
import { clockTicks, cpuSeconds, rssMb } from "./_proc_stat.ts";
import {
  BARES,
  HttpServers,
  REDIS_URL,
  redisUp,
  sameHeaders,
  type Variant,
} from "./_http_servers.ts";
import { type HttpFigures, httpRows } from "./_http_rows.ts";

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
    let servers: HttpServers | undefined;
    const redisKey = `kvedge_bench:${benchBucket("k")}:${KEY}`;
    try {
      const nc = await connectRaw(server.url);
      const bucket = benchBucket("bench_http");
      const kv = await new Kvm(nc).create(bucket, { history: 1 });
      await kv.put(KEY, new TextEncoder().encode(valueJson()));
      await nc.close();

      servers = new HttpServers(`/v1/buckets/${bucket}/keys/${KEY}`);
      await servers.startEdges(server.url, bucket);
      await servers.startBares(bucket);
      const variants: Variant[] = ["edge", ...BARES, "edge_w2", "bare_w2", "bare_headers_w2"];
      if (redis) {
        await servers.startHonoRedis(redisKey);
        variants.push("hono_redis");
      }
      await sameHeaders(servers.urls.edge, servers.urls.bare_headers);

      ctx.log(`http: warm-up, then ${ctx.reps} reps × ${variants.length} variants × ${seconds} s`);
      if (!ctx.quick) { for (const v of variants) await wrk(servers.urls[v], 2); }
      const fig = await measure(servers, { ctx, variants, seconds });
      const rows = httpRows(fig, redis);
      return { ...base, params: { ...base.params, redis }, rows, raw: fig };
    } finally {
      await servers?.stop();
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
 * `ctx.reps` rounds of one wrk run per variant, rotated per round, each with
 * the server's CPU time per request and its memory after the run.
 */
async function measure(
  servers: HttpServers,
  run: { ctx: BenchContext; variants: Variant[]; seconds: number },
): Promise<HttpFigures> {
  const { ctx, variants, seconds } = run;
  const { urls, pids } = servers;
  const fig = {} as HttpFigures;
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
  return fig;
}
