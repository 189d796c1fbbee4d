/**
 * How cost grows, on the two axes that matter for an edge cache:
 *
 * - keys: replica `ready()` time and peak RSS at 100k and 1M keys (3M with
 *   `--big`) against the raw `kv.watch()` + Map, fresh process each (the
 *   bootstrap scenario's measurement, over more sizes);
 * - edges: 1, 10, 100 and 1 000 caches on one bucket, spread over up to 4
 *   processes (one NATS connection each), against as many raw `kv.watch()`
 *   consumers: put → visible at the slowest edge (p50/p99 over the writes)
 *   and nats-server CPU per write (`/proc/<pid>/stat`, user + system).
 *
 * Each curve is also drawn as a small SVG next to the JSON results.
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { openCache } from "../../mod.ts";
import { serverVersion, versionAtLeast } from "../../src/server_version.ts";
import { keyOf, valueOf } from "./bootstrap.ts";
import {
  type BenchContext,
  infoRow,
  percentile,
  type Row,
  type Scenario,
  stat,
} from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket, until } from "./_helpers.ts";
import { delay, settleWithin } from "../../src/async.ts";
import { benchServer, childArgs, emit, runChild } from "./_processes.ts";
import { lineChart } from "./_chart.ts";
import { type Collected, keysAxis } from "./_scale_keys.ts";

const READY_SUBJECT = "bench.scale.ready";
const MAX_PROCESSES = 4;

/** Epoch ms with sub-ms precision, comparable across processes on one machine. */
function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** CPU time (user + system) a process used so far, in ms (Linux). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5) (utime, stime), in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

// ---- the scenario --------------------------------------------------------------------------

interface EdgeFigures {
  /** Per write (by sequence): the slowest of this process's edges, ms; null unless all of them saw it. */
  slowest: (number | null)[];
  /** Deliveries (edge × write) not seen before the child's deadline, and why edges ended early. */
  missing: number;
  errors: string[];
  /** Watcher restarts of this process's kvedge edges (0 for raw watchers, which hide theirs). */
  restarts: number;
}

/** Per rep, for one edge count and variant: latency p50/p99 (ms), server CPU per write (µs), lost deliveries. */
interface EdgeSeries {
  p50: number[];
  p99: number[];
  cpu: number[];
  lost: number[];
  /** Writes every edge saw (the latency percentiles are over these). */
  complete: number[];
  /** Watcher restarts (kvedge only). */
  restarts: number[];
  /** The first errors the edge processes reported. */
  errors: string[];
}

/** The edges axis parameters and where the figures go. */
interface EdgesAxisOptions {
  server: { url: string; pid: number };
  nc: NatsConnection;
  edgeCounts: number[];
  writes: number;
  writesPerSec: number;
  into: Collected;
}

/** The four rows of one edge count: p50, p99, server CPU and lost deliveries, kvedge against raw. */
function edgeRows(edges: number, writes: number, k: EdgeSeries, w: EdgeSeries): Row[] {
  const base = { baselineName: `${edges} raw kv.watch()` };
  // Percentiles are over the writes every edge saw: say how many, per rep,
  // when an edge missed some (fewer writes can flatter a latency).
  const over = k.complete.some((n) => n < writes) || w.complete.some((n) => n < writes)
    ? {
      note: `over writes seen by every edge, of ${writes}: kvedge ${k.complete.join(", ")}; raw ${
        w.complete.join(", ")
      }`,
    }
    : {};
  return [
    infoRow(`${edges} edges: put→visible p50, slowest edge`, "ms", stat(k.p50), {
      ...base,
      ...over,
      baseline: stat(w.p50),
    }),
    infoRow(`${edges} edges: put→visible p99, slowest edge`, "ms", stat(k.p99), {
      ...base,
      ...over,
      baseline: stat(w.p99),
    }),
    infoRow(`${edges} edges: nats-server CPU per write`, "µs", stat(k.cpu), {
      ...base,
      baseline: stat(w.cpu),
    }),
    infoRow(`${edges} edges: deliveries never seen, per rep`, "count", stat(k.lost), {
      note: `raw kv.watch(): ${w.lost.join(", ")}; kvedge watcher restarts: ${
        k.restarts.join(", ")
      }`,
    }),
  ];
}

/**
 * Every edge (and every raw watcher) is one consumer of the bucket's stream,
 * and nats-server 2.15 allows 1 000 per stream unless the stream says
 * otherwise: the bucket says so, as an operator running this many edges must
 * (docs/operations.md). Older servers have no default limit.
 */
async function roomForEdges(nc: NatsConnection, bucket: string, consumers: number) {
  if (!versionAtLeast(serverVersion(nc), "2.15.0")) return;
  const jsm = await jetstreamManager(nc);
  const { config } = await jsm.streams.info(`KV_${bucket}`);
  // nats.js types leave max_consumers out of an update (older servers refuse it).
  const next: typeof config = { ...config, max_consumers: consumers };
  await jsm.streams.update(`KV_${bucket}`, next);
}

/** The edges axis: rows, raw figures and the latency and CPU plots over `edgeCounts`. */
async function edgesAxis(ctx: BenchContext, options: EdgesAxisOptions): Promise<void> {
  const { server, nc, edgeCounts, writes, writesPerSec, into } = options;
  const bucket = benchBucket("bench_scale_edges");
  await fillBucket(nc, bucket, 100, keyOf, valueOf);
  await roomForEdges(nc, bucket, 10_000);
  const kv = await new Kvm(nc).open(bucket);
  await kv.put("probe", new TextEncoder().encode(JSON.stringify({ seq: -1 })));
  const curve: Record<"kvedge" | "raw", { p50: number[]; p99: number[]; cpu: number[] }> = {
    kvedge: { p50: [], p99: [], cpu: [] },
    raw: { p50: [], p99: [], cpu: [] },
  };
  for (const edges of edgeCounts) {
    for (const variant of ["kvedge", "raw"] as const) {
      const series: EdgeSeries = {
        p50: [],
        p99: [],
        cpu: [],
        lost: [],
        complete: [],
        restarts: [],
        errors: [],
      };
      for (let r = 0; r < ctx.reps; r++) {
        ctx.log(`scale: ${edges} ${variant} edges rep ${r + 1}/${ctx.reps}`);
        const f = await edgeRound(
          server.url,
          server.pid,
          nc,
          kv,
          bucket,
          variant,
          edges,
          writes,
          writesPerSec,
        );
        series.p50.push(f.p50);
        series.p99.push(f.p99);
        series.cpu.push(f.cpuUsPerWrite);
        series.lost.push(f.lost);
        series.complete.push(f.complete);
        series.restarts.push(f.restarts);
        for (const e of f.errors) if (series.errors.length < 5) series.errors.push(e);
      }
      into.raw[`edges_${edges}_${variant}`] = series;
      curve[variant].p50.push(stat(series.p50).median);
      curve[variant].p99.push(stat(series.p99).median);
      curve[variant].cpu.push(stat(series.cpu).median);
    }
    const k = into.raw[`edges_${edges}_kvedge`] as EdgeSeries;
    const w = into.raw[`edges_${edges}_raw`] as EdgeSeries;
    into.rows.push(...edgeRows(edges, writes, k, w));
  }
  const ep = (ys: number[]) => edgeCounts.map((n, i) => [n, ys[i]!] as [number, number]);
  into.plots["scale_edges_latency.svg"] = lineChart(
    "put→visible at the slowest edge",
    "edges on one bucket",
    "ms",
    [
      { name: "kvedge p50", points: ep(curve.kvedge.p50) },
      { name: "kvedge p99", points: ep(curve.kvedge.p99) },
      { name: "raw p50", points: ep(curve.raw.p50) },
      { name: "raw p99", points: ep(curve.raw.p99) },
    ],
  );
  into.plots["scale_edges_cpu.svg"] = lineChart(
    "nats-server CPU per write",
    "edges on one bucket",
    "µs",
    [
      { name: "kvedge", points: ep(curve.kvedge.cpu) },
      { name: "raw kv.watch()", points: ep(curve.raw.cpu) },
    ],
  );
}

/** Writes each plot as `<out>/<name>`. */
async function writePlots(out: string, plots: Record<string, string>): Promise<void> {
  await Deno.mkdir(out, { recursive: true });
  for (const [name, svg] of Object.entries(plots)) {
    await Deno.writeTextFile(`${out}/${name}`, svg);
  }
}

/** The scale scenario. */
export const scenario: Scenario = {
  name: "scale",
  title: "how cost grows: keys (bootstrap time, peak RSS) and edges (put→visible, server CPU)",
  async run(ctx) {
    const keySizes = ctx.keys ??
      (ctx.quick
        ? [1_000, 2_000]
        : ctx.big
        ? [100_000, 1_000_000, 3_000_000]
        : [100_000, 1_000_000]);
    // `--keys` asks for the keys axis alone (a 10M point takes long enough).
    const edgeCounts = ctx.keys ? [] : ctx.quick ? [1, 10] : [1, 10, 100, 1_000];
    const writes = ctx.quick ? 20 : 400;
    const writesPerSec = ctx.quick ? 100 : 100;
    const server = await benchServer();
    const into: Collected = { rows: [], raw: {}, plots: {} };
    try {
      const nc = await connectRaw(server.url);
      await keysAxis(ctx, { nc, url: server.url, keySizes, into });
      await edgesAxis(ctx, { server, nc, edgeCounts, writes, writesPerSec, into });
      await nc.close();
    } finally {
      await server.stop();
    }
    if (ctx.out !== undefined) await writePlots(ctx.out, into.plots);
    return {
      name: "scale",
      title: this.title,
      params: {
        keySizes,
        edgeCounts,
        processes: `min(edges, ${MAX_PROCESSES}), one NATS connection each`,
        writes,
        writesPerSec,
        reps: ctx.reps,
        plots: Object.keys(into.plots),
        cpu: "nats-server utime + stime over the write phase / writes (10 ms ticks)",
        latency: "writer's send time (in the value) → change seen, max over all edges, per write",
      },
      rows: into.rows,
      raw: into.raw,
    };
  },
};

/** One round: start the edges, write, collect; p50/p99 of the slowest edge and server CPU. */
async function edgeRound(
  url: string,
  serverPid: number,
  nc: Awaited<ReturnType<typeof connectRaw>>,
  kv: Awaited<ReturnType<Kvm["open"]>>,
  bucket: string,
  variant: "kvedge" | "raw",
  edges: number,
  writes: number,
  writesPerSec: number,
): Promise<
  {
    p50: number;
    p99: number;
    cpuUsPerWrite: number;
    lost: number;
    complete: number;
    restarts: number;
    errors: string[];
  }
> {
  const processes = Math.min(edges, MAX_PROCESSES);
  const round = crypto.randomUUID().slice(0, 8);
  let ready = 0;
  const sub = nc.subscribe(`${READY_SUBJECT}.${round}`, {
    callback: () => {
      ready++;
    },
  });
  const children = Array.from({ length: processes }, (_, p) => {
    const mine = Math.floor(edges / processes) + (p < edges % processes ? 1 : 0);
    return runChild<EdgeFigures>(import.meta.filename!, [
      "--child",
      variant,
      "--url",
      url,
      "--bucket",
      bucket,
      "--edges",
      String(mine),
      "--writes",
      String(writes),
      "--round",
      round,
    ]);
  });
  const failed = Promise.all(children).then(() => {
    throw new Error("an edge process ended before the writes");
  });
  await Promise.race([until(() => ready === processes, 600_000, "edge processes ready"), failed]);
  sub.unsubscribe();
  failed.catch(() => {});
  const enc = new TextEncoder();
  const cpu0 = cpuMs(serverPid);
  const gap = 1000 / writesPerSec;
  const t0 = performance.now();
  for (let seq = 0; seq < writes; seq++) {
    const wait = t0 + seq * gap - performance.now();
    if (wait > 0) await delay(wait);
    await kv.put("probe", enc.encode(JSON.stringify({ seq, round, t: nowMs() })));
  }
  const results = await Promise.all(children);
  const cpu1 = cpuMs(serverPid);
  // A delivery an edge never saw is reported (the `lost` figure), not hidden:
  // latency percentiles are over the writes every edge saw.
  const lost = results.reduce((n, r) => n + r.missing, 0);
  const slowest: number[] = [];
  for (let seq = 0; seq < writes; seq++) {
    let max = 0;
    let seenByAll = true;
    for (const r of results) {
      const v = r.slowest[seq];
      if (v === null || v === undefined) seenByAll = false;
      else if (v > max) max = v;
    }
    if (seenByAll) slowest.push(max);
  }
  if (slowest.length === 0) {
    const why = results.flatMap((r) => r.errors).slice(0, 3).join("; ");
    throw new Error(`${variant}, ${edges} edges: no write was seen by every edge (${why})`);
  }
  return {
    p50: percentile(slowest, 0.5),
    p99: percentile(slowest, 0.99),
    cpuUsPerWrite: ((cpu1 - cpu0) * 1000) / writes,
    lost,
    complete: slowest.length,
    restarts: results.reduce((n, r) => n + (r.restarts ?? 0), 0),
    errors: [...new Set(results.flatMap((r) => r.errors))].slice(0, 3),
  };
}

// ---- child: one process holding several edges ----------------------------------------------

async function childEdges(a: Record<string, string>): Promise<void> {
  const edges = Number(a.edges);
  const writes = Number(a.writes);
  const round = a.round!;
  const slowest: (number | null)[] = new Array(writes).fill(null);
  const seen = new Array(writes).fill(0);
  let complete = 0;
  const done = Promise.withResolvers<void>();
  const record = (value: { seq?: number; round?: string; t?: number } | undefined) => {
    if (value?.round !== round || value.seq === undefined || value.t === undefined) return;
    const ms = nowMs() - value.t;
    const s = value.seq;
    if (slowest[s] === null || ms > slowest[s]!) slowest[s] = ms;
    if (++seen[s] === edges && ++complete === writes) done.resolve();
  };
  const nc = await connectRaw(a.url!);
  const errors: string[] = [];
  const failed = (err: unknown) => errors.push(String(err));
  let restarts = 0;
  if (a.child === "kvedge") {
    for (let e = 0; e < edges; e++) {
      const cache = await openCache<{ seq: number; round: string; t: number }>({
        connection: nc,
        bucket: a.bucket!,
        mode: "replica",
        local: { maxItems: 10_000 },
        onEvent: (e) => {
          if (e.type === "watcher_restart") restarts++;
          else if (e.type === "error" && errors.length < 3) errors.push(e.message);
        },
      });
      await cache.ready({ timeoutMs: 300_000 });
      const it = cache.changes();
      (async () => {
        for await (const c of it) if (c.key === "probe") record(c.value);
      })().catch(failed);
    }
  } else {
    const kv = await new Kvm(nc).open(a.bucket!);
    for (let e = 0; e < edges; e++) {
      // The watcher's consumer is created in the background: the key's
      // current value (written before the round) arriving proves it is live.
      const live = Promise.withResolvers<void>();
      const w = await kv.watch({ key: "probe" });
      (async () => {
        for await (const entry of w) {
          live.resolve();
          if (entry.operation === "PUT") record(entry.json());
        }
      })().catch(failed);
      await live.promise;
    }
  }
  // Live consumers exist: tell the writer, then wait for every write at every edge.
  nc.publish(`${READY_SUBJECT}.${round}`);
  await nc.flush();
  await settleWithin(done.promise, 120_000);
  const missing = seen.reduce((n: number, k: number) => n + (edges - Math.min(k, edges)), 0);
  // Exiting closes the consumers' connection; a graceful close of hundreds
  // of caches would only add time to the round.
  // A write some edge of this process never saw has no "slowest edge": it
  // counts in `missing`, not in the latency percentiles.
  for (let s = 0; s < writes; s++) if (seen[s] < edges) slowest[s] = null;
  emit({ slowest, missing, errors, restarts } satisfies EdgeFigures);
}

if (import.meta.main) {
  await childEdges(childArgs(Deno.args));
  Deno.exit(0);
}
