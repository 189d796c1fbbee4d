/**
 * The edges axis of the scale scenario: 1, 10, 100 and 1 000 caches on one
 * bucket, spread over up to 4 processes (one NATS connection each, children
 * in `_scale_edge_child.ts`), against as many raw `kv.watch()` consumers.
 *
 * Per round: put → visible at the slowest edge (p50/p99 over the writes
 * every edge saw), nats-server CPU per write, and whether the edges are
 * late or lost: after the writes stop every edge must hold the key's last
 * revision; the time until the slowest edge does (or how many did not
 * within a bounded wait), the deliveries edges never saw, and the server's
 * and the client's view of slow consumers (`_server_view.ts`, the child's
 * status events and event-loop lag).
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { serverVersion, versionAtLeast } from "../../src/server_version.ts";
import { keyOf, valueOf } from "./bootstrap.ts";
import { type BenchContext, infoRow, percentile, type Row, skippedRow, stat } from "./_harness.ts";
import { benchBucket, fillBucket } from "./_helpers.ts";
import { waitFor } from "../../testing/wait_for.ts";
import { delay } from "../../src/async.ts";
import { runChild } from "./_processes.ts";
import { lineChart } from "./_chart.ts";
import type { Collected } from "./_scale_keys.ts";
import {
  CONVERGE_WAIT_MS,
  type EdgeFigures,
  FINAL_SUBJECT,
  type FinalState,
  nowMs,
  PROBE_KEY,
  READY_SUBJECT,
} from "./_scale_edge_child.ts";
import { pendingSampler, slowCounts } from "./_server_view.ts";

/** Edge processes per round at most (one NATS connection each). */
export const MAX_PROCESSES = 4;
const CHILD = new URL("./_scale_edge_child.ts", import.meta.url).pathname;

/** CPU time (user + system) a process used so far, in ms (Linux). */
function cpuMs(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of stat(5) (utime, stime), in clock ticks of 10 ms.
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** One round's figures. */
export interface RoundFigures {
  p50: number;
  p99: number;
  cpuUsPerWrite: number;
  /** Writes every edge saw (the latency percentiles are over these). */
  complete: number;
  /** Last write sent → the slowest converged edge held it, ms. */
  convergedMs: number;
  /** Edges that did not hold the last revision {@link CONVERGE_WAIT_MS} after it was sent. */
  unconverged: number;
  /** Deliveries missing from converged edges (skipped for good) and from the others. */
  skipped: number;
  missingUnconverged: number;
  maxLatencyMs: number;
  /** The longest a child's edges were live before the first write (the old window ran from there). */
  readyWaitMs: number;
  maxLoopLagMs: number;
  /** Server: Δ `/varz` slow_consumers, connections closed as slow consumers, largest pending bytes. */
  slowConsumers: number;
  closedSlow: number;
  maxPendingBytes: number;
  /** Client: status events by type (summed over processes), restarts, resyncs, resets. */
  status: Record<string, number>;
  restarts: number;
  resyncs: number;
  resets: number;
  maxIteratorPending: number;
  /** Consumers on the stream when the round started (earlier rounds' linger until inactive). */
  consumersAtStart: number;
  reasons: string[];
  errors: string[];
}

/** The edges axis parameters and where the figures go. */
export interface EdgesAxisOptions {
  server: { url: string; pid: number; monitorPort: number };
  nc: NatsConnection;
  edgeCounts: number[];
  writes: number;
  writesPerSec: number;
  /** The bucket's history (1 for a KV bucket's default). */
  history: number;
  into: Collected;
}

type Series = { [K in keyof RoundFigures]: RoundFigures[K][] };

const list = (xs: unknown[]) => xs.join(", ");

/** The rows of one edge count: latency, CPU, convergence and slow consumers, kvedge against raw. */
function edgeRows(edges: number, writes: number, k: Series, w: Series): Row[] {
  const vs = (y: number[]) => ({ baselineName: `${edges} raw kv.watch()`, baseline: stat(y) });
  const over = k.complete.some((n) => n < writes) || w.complete.some((n) => n < writes)
    ? `over writes seen by every edge, of ${writes}: kvedge ${list(k.complete)}; raw ${
      list(w.complete)
    }`
    : undefined;
  const counts = (s: Series) =>
    `unconverged edges ${list(s.unconverged)}, skipped by converged edges ${
      list(s.skipped)
    }, missing at unconverged edges ${list(s.missingUnconverged)}`;
  const events = (s: Series) => {
    const all: Record<string, number> = {};
    for (const m of s.status) for (const [t, n] of Object.entries(m)) all[t] = (all[t] ?? 0) + n;
    return Object.entries(all).map(([t, n]) => `${t} ${n}`).join(", ") || "none";
  };
  const row = (metric: string, unit: string, x: number[], extra: Partial<Row>) => {
    // NaN: no edge of the rep converged (the note says how many did not).
    const seen = x.filter(Number.isFinite);
    if (seen.length === 0) return skippedRow(`${edges} edges: ${metric}`, extra.note ?? "");
    const r = infoRow(`${edges} edges: ${metric}`, unit, stat(seen), extra);
    if (!Number.isFinite(r.ratio)) delete r.ratio; // 0 against 0 (or NaN) is no ratio
    return r;
  };
  const lost = k.skipped.map((n, i) => n + k.missingUnconverged[i]!);
  return [
    row("put→visible p50, slowest edge", "ms", k.p50, { ...vs(w.p50), note: over }),
    row("put→visible p99, slowest edge", "ms", k.p99, { ...vs(w.p99), note: over }),
    row("nats-server CPU per write", "µs", k.cpuUsPerWrite, vs(w.cpuUsPerWrite)),
    row(
      "converged after writes stopped (last write → slowest edge holds it)",
      "ms",
      k.convergedMs,
      {
        ...vs(w.convergedMs),
        note:
          `edges not holding the last revision ${CONVERGE_WAIT_MS / 1000} s after it, per rep: ` +
          `kvedge ${list(k.unconverged)}; raw ${list(w.unconverged)}`,
      },
    ),
    row("deliveries never seen (after convergence or the wait), per rep", "count", lost, {
      note: `kvedge: ${counts(k)}, watcher restarts ${list(k.restarts)}, resyncs ${
        list(k.resyncs)
      }; raw: ${counts(w)}, ordered-consumer resets ${list(w.resets)}`,
    }),
    row("slow consumers (server /varz Δ), per rep", "count", k.slowConsumers, {
      note: `raw ${list(w.slowConsumers)}; connections closed as slow consumers: kvedge ${
        list(k.closedSlow)
      }, raw ${list(w.closedSlow)}; client status events: kvedge ${events(k)}; raw ${events(w)}`,
    }),
    row(
      "largest server pending bytes to one edge process",
      "KB",
      k.maxPendingBytes.map((b) => b / 1024),
      {
        ...vs(w.maxPendingBytes.map((b) => b / 1024)),
        note: `/connz, sampled every 250 ms; client side, the longest backlog of one raw ` +
          `watcher's iterator: ${list(w.maxIteratorPending)} entries`,
      },
    ),
    row("longest event-loop lag in an edge process", "ms", k.maxLoopLagMs, vs(w.maxLoopLagMs)),
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
export async function edgesAxis(ctx: BenchContext, options: EdgesAxisOptions): Promise<void> {
  const { nc, edgeCounts, writes, into } = options;
  const bucket = benchBucket("bench_scale_edges");
  await fillBucket(nc, bucket, 100, keyOf, valueOf, { history: options.history });
  await roomForEdges(nc, bucket, 10_000);
  const kv = await new Kvm(nc).open(bucket);
  await kv.put(PROBE_KEY, new TextEncoder().encode(JSON.stringify({ seq: -1 })));
  const curve = { kvedge: { p50: [] as number[], p99: [] as number[], cpu: [] as number[] } };
  const rawCurve = { p50: [] as number[], p99: [] as number[], cpu: [] as number[] };
  for (const edges of edgeCounts) {
    const bySeries: Record<string, Series> = {};
    for (const variant of ["kvedge", "raw"] as const) {
      const series = {} as Record<string, unknown[]>;
      for (let r = 0; r < ctx.reps; r++) {
        ctx.log(`scale: ${edges} ${variant} edges rep ${r + 1}/${ctx.reps}`);
        const f = await edgeRound({ ...options, kv, bucket, variant, edges });
        ctx.log(`scale: ${edges} ${variant}: ${summary(f)}`);
        for (const [key, v] of Object.entries(f)) (series[key] ??= []).push(v);
      }
      const s = series as unknown as Series;
      s.reasons = [[...new Set(s.reasons.flat())].slice(0, 5)];
      s.errors = [[...new Set(s.errors.flat())].slice(0, 5)];
      into.raw[`edges_${edges}_${variant}`] = s;
      bySeries[variant] = s;
      const c = variant === "kvedge" ? curve.kvedge : rawCurve;
      c.p50.push(stat(s.p50).median);
      c.p99.push(stat(s.p99).median);
      c.cpu.push(stat(s.cpuUsPerWrite).median);
    }
    into.rows.push(...edgeRows(edges, writes, bySeries.kvedge!, bySeries.raw!));
  }
  const ep = (ys: number[]) => edgeCounts.map((n, i) => [n, ys[i]!] as [number, number]);
  into.plots["scale_edges_latency.svg"] = lineChart(
    "put→visible at the slowest edge",
    "edges on one bucket",
    "ms",
    [
      { name: "kvedge p50", points: ep(curve.kvedge.p50) },
      { name: "kvedge p99", points: ep(curve.kvedge.p99) },
      { name: "raw p50", points: ep(rawCurve.p50) },
      { name: "raw p99", points: ep(rawCurve.p99) },
    ],
  );
  into.plots["scale_edges_cpu.svg"] = lineChart(
    "nats-server CPU per write",
    "edges on one bucket",
    "µs",
    [
      { name: "kvedge", points: ep(curve.kvedge.cpu) },
      { name: "raw kv.watch()", points: ep(rawCurve.cpu) },
    ],
  );
}

/** A progress line for the log. */
function summary(f: RoundFigures): string {
  return `converged ${
    f.convergedMs.toFixed(0)
  } ms, unconverged ${f.unconverged}, skipped ${f.skipped}, ` +
    `missing ${f.missingUnconverged}, slow consumers ${f.slowConsumers}, pending ${f.maxPendingBytes} B, ` +
    `loop lag ${f.maxLoopLagMs.toFixed(0)} ms, ready wait ${f.readyWaitMs.toFixed(0)} ms, ` +
    `restarts ${f.restarts}, resets ${f.resets}, status ${JSON.stringify(f.status)}`;
}

/** What one round needs. */
interface RoundOptions extends EdgesAxisOptions {
  kv: KV;
  bucket: string;
  variant: "kvedge" | "raw";
  edges: number;
}

/** Starts the children of a round; resolves once every one says its edges are live. */
async function startEdges(o: RoundOptions, round: string): Promise<Promise<EdgeFigures>[]> {
  const processes = Math.min(o.edges, MAX_PROCESSES);
  let ready = 0;
  const sub = o.nc.subscribe(`${READY_SUBJECT}.${round}`, { callback: () => void ready++ });
  const children = Array.from({ length: processes }, (_, p) => {
    const mine = Math.floor(o.edges / processes) + (p < o.edges % processes ? 1 : 0);
    return runChild<EdgeFigures>(CHILD, [
      ...["--child", o.variant, "--url", o.server.url, "--bucket", o.bucket],
      ...["--edges", String(mine), "--writes", String(o.writes), "--round", round],
    ]);
  });
  const failed = Promise.all(children).then(() => {
    throw new Error("an edge process ended before the writes");
  });
  await Promise.race([
    waitFor(() => ready === processes, {
      timeoutMs: 600_000,
      intervalMs: 10,
      message: "edge processes ready",
    }),
    failed,
  ]);
  sub.unsubscribe();
  failed.catch(() => {});
  return children;
}

/** Writes `probe` `writes` times at the round's pace; the final state the edges must reach. */
async function writeRound(o: RoundOptions, round: string): Promise<FinalState> {
  const enc = new TextEncoder();
  const gap = 1000 / o.writesPerSec;
  const t0 = performance.now();
  let revision = 0;
  let firstSentMs = 0;
  let lastSentMs = 0;
  for (let seq = 0; seq < o.writes; seq++) {
    const wait = t0 + seq * gap - performance.now();
    if (wait > 0) await delay(wait);
    const t = nowMs();
    if (seq === 0) firstSentMs = t;
    lastSentMs = t;
    revision = await o.kv.put(PROBE_KEY, enc.encode(JSON.stringify({ seq, round, t })));
  }
  return { revision, firstSentMs, lastSentMs };
}

/** One round: start the edges, write, tell them the final state, collect. */
async function edgeRound(o: RoundOptions): Promise<RoundFigures> {
  const round = crypto.randomUUID().slice(0, 8);
  const jsm = await jetstreamManager(o.nc);
  const consumersAtStart = (await jsm.streams.info(`KV_${o.bucket}`)).state.consumer_count;
  const slow0 = await slowCounts(o.server.monitorPort);
  const children = await startEdges(o, round);
  const pending = pendingSampler(o.server.monitorPort, 250);
  const cpu0 = cpuMs(o.server.pid);
  const final = await writeRound(o, round);
  const cpu1 = cpuMs(o.server.pid);
  o.nc.publish(`${FINAL_SUBJECT}.${round}`, JSON.stringify(final));
  const results = await Promise.all(children);
  const maxPendingBytes = await pending.stop();
  const slow1 = await slowCounts(o.server.monitorPort);
  const slowest: number[] = [];
  for (let seq = 0; seq < o.writes; seq++) {
    const per = results.map((r) => r.slowest[seq]);
    if (per.every((v) => typeof v === "number")) slowest.push(Math.max(...(per as number[])));
  }
  const converged = results.flatMap((r) => r.convergedMs.filter((v): v is number => v !== null));
  const sum = (f: (r: EdgeFigures) => number) => results.reduce((n, r) => n + f(r), 0);
  const max = (f: (r: EdgeFigures) => number) => Math.max(...results.map(f));
  const status: Record<string, number> = {};
  for (const r of results) {
    for (const [t, n] of Object.entries(r.status)) status[t] = (status[t] ?? 0) + n;
  }
  return {
    p50: percentile(slowest, 0.5),
    p99: percentile(slowest, 0.99),
    cpuUsPerWrite: ((cpu1 - cpu0) * 1000) / o.writes,
    complete: slowest.length,
    convergedMs: converged.length ? Math.max(...converged) : NaN,
    unconverged: sum((r) => r.convergedMs.filter((v) => v === null).length),
    skipped: sum((r) => r.skipped),
    missingUnconverged: sum((r) => r.missingUnconverged),
    maxLatencyMs: max((r) => r.maxLatencyMs),
    readyWaitMs: max((r) => r.readyWaitMs),
    maxLoopLagMs: max((r) => r.maxLoopLagMs),
    slowConsumers: slow1.slowConsumers - slow0.slowConsumers,
    closedSlow: slow1.closedSlow - slow0.closedSlow,
    maxPendingBytes,
    status,
    restarts: sum((r) => r.restarts),
    resyncs: sum((r) => r.resyncs),
    resets: sum((r) => r.resets),
    maxIteratorPending: max((r) => r.maxIteratorPending),
    consumersAtStart,
    reasons: [...new Set(results.flatMap((r) => r.reasons))].slice(0, 5),
    errors: [...new Set(results.flatMap((r) => r.errors))].slice(0, 5),
  };
}
