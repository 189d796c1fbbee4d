/**
 * The child process of the scale scenario's edges axis: one NATS connection
 * holding several edges (kvedge replica caches, or raw `kv.watch()`
 * consumers) of one bucket, each following the key `probe` the parent
 * writes.
 *
 * Per edge it records which writes it saw and when; once the parent says
 * the writes stopped (the bucket's last revision of `probe` and when that
 * write was sent), it waits, at most {@link CONVERGE_WAIT_MS} after that
 * write, until every edge holds exactly that revision, checked on the
 * edge's own view (kvedge: the local store's entry, a local hit; raw: the
 * last entry its watcher yielded). Only then are the deliveries an edge
 * never saw counted: one missing from an edge that converged was skipped
 * for good (the edge's stream passed it), one missing from an edge that did
 * not converge was late or lost, which the report keeps apart.
 *
 * It also reports the client's view: `nc.status()` events by type, the
 * connection's counters, the largest event-loop lag (a busy loop leaves
 * deliveries in the socket and the server's buffer), kvedge watcher restarts
 * and resyncs (with their reasons), raw ordered-consumer resets, and the
 * largest backlog of a raw watcher's iterator.
 *
 * @module
 */
import { Kvm, type KvWatchEntry } from "@nats-io/kv";
import type { NatsConnection, QueuedIterator } from "@nats-io/nats-core";
import { openCache } from "../../mod.ts";
import type { Cache } from "../../mod.ts";
import { connectRaw } from "./_helpers.ts";
import { delay, settleWithin } from "../../src/async.ts";
import { childArgs, emit } from "./_processes.ts";

/** Subject prefix of a child's "my edges are live" message (`.<round>` appended). */
export const READY_SUBJECT = "bench.scale.ready";
/** Subject prefix of the parent's "writes stopped" message (`.<round>` appended). */
export const FINAL_SUBJECT = "bench.scale.final";
/** How long after the last write was sent every edge must hold it, ms. */
export const CONVERGE_WAIT_MS = 60_000;
/** The key the writes go to. */
export const PROBE_KEY = "probe";

/** Epoch ms with sub-ms precision, comparable across processes on one machine. */
export function nowMs(): number {
  return performance.timeOrigin + performance.now();
}

/** What the parent tells the children once the writes stopped. */
export interface FinalState {
  /** The bucket's last revision of {@link PROBE_KEY} (the last write's). */
  revision: number;
  /** When the first and the last write were sent, epoch ms. */
  firstSentMs: number;
  lastSentMs: number;
}

/** One child's figures. */
export interface EdgeFigures {
  /** Per write (by sequence): the slowest of this process's edges, ms; null unless all of them saw it. */
  slowest: (number | null)[];
  /** Per edge: last write sent → the edge held the final revision, ms; null: not within the wait. */
  convergedMs: (number | null)[];
  /** Deliveries (edge × write) missing from edges that converged: skipped, never to come. */
  skipped: number;
  /** Deliveries missing from edges that did not converge within the wait. */
  missingUnconverged: number;
  /** The longest put → seen of any delivery, ms. */
  maxLatencyMs: number;
  /** How long this process's edges were live before the first write was sent, ms. */
  readyWaitMs: number;
  /** The longest event-loop lag seen from ready to the end (10 ms timer), ms. */
  maxLoopLagMs: number;
  /** `nc.status()` events by type. */
  status: Record<string, number>;
  /** The connection's counters at the end. */
  inMsgs: number;
  inBytes: number;
  /** kvedge watcher restarts and resyncs (0 for raw), and the first reasons. */
  restarts: number;
  resyncs: number;
  reasons: string[];
  /** Raw ordered-consumer resets (nats.js recreates the consumer on a gap or missed heartbeats). */
  resets: number;
  /** Largest backlog of one raw watcher's iterator (entries received, not yet yielded). */
  maxIteratorPending: number;
  errors: string[];
}

/** What one edge saw. */
interface EdgeLog {
  seen: Uint8Array;
  /** When the edge's watcher delivered the final revision (NaN: not yet). */
  finalAt: number;
}

/** The figures a receiver updates as deliveries arrive. */
class Tally {
  readonly slowest: (number | null)[];
  readonly edges: EdgeLog[] = [];
  readonly errors: string[] = [];
  readonly reasons: string[] = [];
  maxLatencyMs = 0;
  restarts = 0;
  resyncs = 0;

  constructor(readonly round: string, readonly writes: number) {
    this.slowest = new Array(writes).fill(null);
  }

  edge(): EdgeLog {
    const log = { seen: new Uint8Array(this.writes), finalAt: NaN };
    this.edges.push(log);
    return log;
  }

  /** Records a delivery of `value` to edge `log`. */
  record(log: EdgeLog, value: { seq?: number; round?: string; t?: number } | undefined) {
    if (value?.round !== this.round || value.seq === undefined || value.t === undefined) return;
    const now = nowMs();
    const ms = now - value.t;
    const s = value.seq;
    if (ms > this.maxLatencyMs) this.maxLatencyMs = ms;
    if (this.slowest[s] === null || ms > this.slowest[s]!) this.slowest[s] = ms;
    log.seen[s] = 1;
    // The last write is the final revision (the writes are sequential); the
    // edge's view is checked against that revision once it is known.
    if (s === this.writes - 1) log.finalAt = now;
  }

  note(list: string[], what: string): void {
    if (list.length < 5 && !list.includes(what)) list.push(what);
  }
}

/** Opens `n` kvedge replica caches on `nc`; each follows `probe` through `changes()`. */
async function kvedgeEdges(nc: NatsConnection, a: Record<string, string>, tally: Tally) {
  const views: (() => Promise<number>)[] = [];
  for (let e = 0; e < Number(a.edges); e++) {
    const cache: Cache<{ seq: number; round: string; t: number }> = await openCache({
      connection: nc,
      bucket: a.bucket!,
      mode: "replica",
      local: { maxItems: 10_000 },
      onEvent: (ev) => {
        if (ev.type === "watcher_restart") {
          tally.restarts++;
          tally.note(tally.reasons, ev.reason);
        } else if (ev.type === "resync") {
          tally.resyncs++;
          tally.note(tally.reasons, `resync: ${ev.reason}`);
        } else if (ev.type === "error") tally.note(tally.errors, ev.message);
      },
    });
    await cache.ready({ timeoutMs: 300_000 });
    const log = tally.edge();
    const it = cache.changes();
    (async () => {
      for await (const c of it) if (c.key === PROBE_KEY) tally.record(log, c.value);
    })().catch((err) => tally.note(tally.errors, String(err)));
    // The edge's view: the revision its local store answers with (a hit), else 0.
    views.push(async () => {
      const entry = await cache.getEntry(PROBE_KEY);
      return entry?.source === "hit" ? entry.revision : 0;
    });
  }
  return { views, resets: () => 0, pending: () => 0 };
}

/** Opens `n` raw ordered `kv.watch()` consumers of `probe` on `nc`. */
async function rawEdges(nc: NatsConnection, a: Record<string, string>, tally: Tally) {
  const kv = await new Kvm(nc).open(a.bucket!);
  const views: (() => Promise<number>)[] = [];
  const watchers: QueuedIterator<KvWatchEntry>[] = [];
  for (let e = 0; e < Number(a.edges); e++) {
    // The watcher's consumer is created in the background: the key's
    // current value (written before the round) arriving proves it is live.
    const live = Promise.withResolvers<void>();
    const w = await kv.watch({ key: PROBE_KEY });
    const log = tally.edge();
    let last = 0;
    (async () => {
      for await (const entry of w) {
        live.resolve();
        last = entry.revision;
        if (entry.operation === "PUT") tally.record(log, entry.json());
      }
    })().catch((err) => tally.note(tally.errors, String(err)));
    await live.promise;
    watchers.push(w);
    views.push(() => Promise.resolve(last));
  }
  // nats.js keeps the ordered push consumer on the iterator (`_data`); its
  // `serial` starts at 1 and grows by one per reset (a gap or missed
  // heartbeats recreate the consumer). Not a public API: read for the bench.
  const serial = (w: QueuedIterator<KvWatchEntry>) =>
    Number((w as unknown as { _data?: { serial?: number } })._data?.serial ?? 1);
  return {
    views,
    resets: () => watchers.reduce((n, w) => n + serial(w) - 1, 0),
    pending: () => Math.max(0, ...watchers.map((w) => w.getPending())),
  };
}

/** Counts `nc.status()` events by type until the connection closes. */
function countStatus(nc: NatsConnection): Record<string, number> {
  const counts: Record<string, number> = {};
  (async () => {
    for await (const s of nc.status()) counts[s.type] = (counts[s.type] ?? 0) + 1;
  })().catch(() => {});
  return counts;
}

/** Samples the event-loop lag (and `sample()`) every 10 ms until `stop()`. */
function sampler(sample: () => number) {
  let maxLag = 0;
  let maxSample = 0;
  let expected = performance.now() + 10;
  let n = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    maxLag = Math.max(maxLag, now - expected);
    expected = now + 10;
    if (++n % 10 === 0) maxSample = Math.max(maxSample, sample());
  }, 10);
  return {
    stop: () => clearInterval(timer),
    maxLag: () => maxLag,
    maxSample: () => maxSample,
  };
}

/** Waits for the parent's final state, then until every edge holds it (or the wait ends). */
async function converge(
  final: Promise<FinalState>,
  views: (() => Promise<number>)[],
  tally: Tally,
): Promise<FinalState> {
  const f = await final;
  const deadline = f.lastSentMs + CONVERGE_WAIT_MS;
  const done = new Array(views.length).fill(false);
  let left = views.length;
  while (left > 0) {
    for (let e = 0; e < views.length; e++) {
      if (done[e]) continue;
      const rev = await views[e]!();
      if (rev !== f.revision) continue;
      done[e] = true;
      left--;
      // Seen at once through its watcher, or (after a resync) first found here.
      const log = tally.edges[e]!;
      if (Number.isNaN(log.finalAt)) log.finalAt = nowMs();
    }
    if (left === 0 || nowMs() > deadline) break;
    await delay(20);
  }
  for (let e = 0; e < views.length; e++) if (!done[e]) tally.edges[e]!.finalAt = NaN;
  return f;
}

async function childEdges(a: Record<string, string>): Promise<void> {
  const round = a.round!;
  const tally = new Tally(round, Number(a.writes));
  const nc = await connectRaw(a.url!);
  const status = countStatus(nc);
  const edges = a.child === "kvedge"
    ? await kvedgeEdges(nc, a, tally)
    : await rawEdges(nc, a, tally);
  const finalMsg = Promise.withResolvers<FinalState>();
  nc.subscribe(`${FINAL_SUBJECT}.${round}`, {
    max: 1,
    callback: (_err, msg) => finalMsg.resolve(msg.json<FinalState>()),
  });
  // Live consumers exist: tell the writer, then wait for the writes to stop.
  nc.publish(`${READY_SUBJECT}.${round}`);
  await nc.flush();
  const readyAt = nowMs();
  const loop = sampler(edges.pending);
  if (!await settleWithin(finalMsg.promise, 900_000)) {
    throw new Error("no final state from the parent");
  }
  const f = await converge(finalMsg.promise, edges.views, tally);
  loop.stop();
  let skipped = 0;
  let missingUnconverged = 0;
  const convergedMs = tally.edges.map((log) => {
    const missing = log.seen.length - log.seen.reduce((n, x) => n + x, 0);
    if (Number.isNaN(log.finalAt)) {
      missingUnconverged += missing;
      return null;
    }
    skipped += missing;
    return Math.max(0, log.finalAt - f.lastSentMs);
  });
  // A write some edge of this process never saw has no "slowest edge".
  for (let s = 0; s < tally.writes; s++) {
    if (tally.edges.some((log) => log.seen[s] === 0)) tally.slowest[s] = null;
  }
  const stats = nc.stats();
  // Exiting closes the consumers' connection; a graceful close of hundreds
  // of caches would only add time to the round.
  emit(
    {
      slowest: tally.slowest,
      convergedMs,
      skipped,
      missingUnconverged,
      maxLatencyMs: tally.maxLatencyMs,
      readyWaitMs: f.firstSentMs - readyAt,
      maxLoopLagMs: loop.maxLag(),
      status,
      inMsgs: stats.inMsgs,
      inBytes: stats.inBytes,
      restarts: tally.restarts,
      resyncs: tally.resyncs,
      reasons: tally.reasons,
      resets: edges.resets(),
      maxIteratorPending: loop.maxSample(),
      errors: tally.errors,
    } satisfies EdgeFigures,
  );
}

if (import.meta.main) {
  await childEdges(childArgs(Deno.args));
  Deno.exit(0);
}
