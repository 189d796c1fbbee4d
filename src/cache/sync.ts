/**
 * The sync loop: the cache's watcher and its callbacks (caught up, resync,
 * history gap, restart), the connection's status, the regional hub link,
 * periodic reconciliation against the stream, and binding a cache opened
 * from its snapshot once NATS answers (rules 5 and 7).
 *
 * @module
 */
import type { StreamInfo } from "@nats-io/jetstream";
import { BucketNotFoundError, type UnavailableError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { kvStreamName } from "../kv_layout.ts";
import { type StartFrom, Watcher } from "../watcher.ts";
import { Backoff, delay, unref } from "../async.ts";
import { describe } from "../describe.ts";
import { forgetEmitted, onChange } from "./apply.ts";
import type { CacheCore, CacheLink } from "./core.ts";
import { transition } from "./sync_state.ts";
import { loadSnapshot, startSnapshotTimer } from "./warm_start.ts";

/** The watcher over the current connection, feeding this cache. */
/**
 * Makes the cache's watcher (`c.watcher`, written only here), placed at
 * `at` (see `Watcher.place`), and returns it.
 */
export function installWatcher<T>(
  c: CacheCore<T>,
  at: { epoch?: string; lastRevision?: number; streamLastSeq?: number },
): Watcher {
  const watcher = newWatcher(c);
  watcher.place(at);
  c.watcher = watcher;
  return watcher;
}

function newWatcher<T>(c: CacheCore<T>): Watcher {
  return new Watcher({
    nc: c.d.nc,
    jsm: c.d.jsm,
    bucket: c.bucket,
    filter: c.o.keys,
    heartbeatMs: c.o.heartbeatMs,
    inboxPrefix: c.d.inboxPrefix,
    handler: {
      onChange: (key, op, rev, created, data, pending, ttlMs) => {
        onChange(c, key, op, rev, created, data, pending, ttlMs);
        // The mirror delivers while cut off: it hears the hub again.
        c.d.region?.link.nudge();
      },
      onCaughtUp: (rev) => onCaughtUp(c, rev),
      onResync: (req) => onResync(c, req.reason, req.epochChanged),
      onHistoryGap: (first) => {
        // Resume from the stream's first sequence instead of re-reading the
        // bucket: whatever left the stream below it was either replaced by a
        // later change (delivered now) or is gone from the bucket, and
        // `onCaughtUp` drops those entries.
        c.freshness.historyGap(first);
        return true;
      },
      onRestart: (reason) => {
        transition(c, { on: "restarting", reason });
      },
      onStarted: ({ from, reason }) => {
        if (reason !== "bootstrap" && reason !== "start") {
          c.emit({
            type: "watcher_restart",
            at: Date.now(),
            reason,
            fromRevision: from.kind === "seq" ? from.seq : 0,
          });
        }
      },
      onError: (message) => {
        transition(c, { on: "error", message });
        c.emit({ type: "error", at: Date.now(), message });
      },
      onStreamInfo: (info) => readStreamInfo(c, info),
    },
  });
}

/**
 * Starts the watcher and follows the connection's status. Called once by
 * `openCache()`; resolves when the first consumer exists.
 * @internal
 */
export async function start<T>(c: CacheCore<T>): Promise<void> {
  followConnection(c);
  c.d.region?.link.start((inSync) => onHubLink(c, inSync), () => mirrorRead(c));
  if (c.o.reconcileMs > 0) startReconcile(c);
  let from: StartFrom | "resume" = c.mode === "replica"
    ? { kind: "snapshot" }
    : { kind: "seq", seq: c.d.info.state.last_seq + 1 };
  if (from.kind === "seq") {
    c.watcher.place({ lastRevision: from.seq - 1, streamMessages: c.d.info.state.messages });
  }
  if (c.mode === "replica" && c.o.snapshot) {
    if (await loadSnapshot(c, c.o.snapshot.storage, c.d.info.created)) from = "resume";
    startSnapshotTimer(c);
  }
  c.watching = c.watcher.start(
    from,
    from === "resume" ? "warm start" : c.mode === "replica" ? "bootstrap" : "start",
  );
  try {
    await c.watching;
  } catch (err) {
    const e = mapNatsError(err, { action: `watch bucket "${c.bucket}"`, bucket: c.bucket });
    c.ready.reject(e);
    throw e;
  }
}

/**
 * Starts a replica whose connection or bucket is unreachable at open from its
 * warm-start snapshot: serves the snapshot marked stale (not synced) and
 * binds in the background once NATS answers, then resumes after checking the
 * snapshot's epoch against the stream. Rejects with `cause` if there is no
 * usable snapshot. Called once by `openCache()` instead of {@link start}.
 * @internal
 */
export async function startUnbound<T>(
  c: CacheCore<T>,
  bind: () => Promise<CacheLink>,
  cause: UnavailableError,
): Promise<void> {
  c.bound = false;
  transition(c, { on: "open_unreachable" });
  if (!(await loadSnapshot(c, c.o.snapshot!.storage, undefined))) throw cause;
  transition(c, { on: "error", message: `NATS unreachable at open: ${cause.message}` });
  transition(c, {
    on: "snapshot_served",
    reason: "NATS unreachable at open: serving the snapshot",
  });
  c.emit({ type: "disconnected", at: c.disconnectedAt });
  startSnapshotTimer(c);
  c.binding = bindLoop(c, bind);
}

/** Retries `bind` with jittered backoff until it succeeds and the watcher runs, or close. */
export async function bindLoop<T>(c: CacheCore<T>, bind: () => Promise<CacheLink>): Promise<void> {
  const backoff = new Backoff({ firstMs: 250, maxMs: 5_000, jitter: "half" });
  while (!c.closed) {
    let link: CacheLink | undefined;
    try {
      link = await bind();
      if (!c.closed) {
        await attach(c, link);
        // A close that stopped waiting for this attach (its deadline) has
        // already passed the connection by: close a connection we own here.
        if (c.closed && c.d.ownsConnection) await link.nc.close().catch(() => {});
        return;
      }
    } catch (err) {
      transition(c, { on: "error", message: `NATS unreachable since open: ${describe(err)}` });
    }
    if (link && c.d.ownsConnection) await link.nc.close().catch(() => {});
    await delay(backoff.next(), { signal: c.aborter.signal });
  }
}

/** Takes the connection of a cache opened from its snapshot and resumes from it. */
export async function attach<T>(c: CacheCore<T>, link: CacheLink): Promise<void> {
  const { epoch, lastRevision } = c.watcher;
  const unbound = c.d;
  c.d = { ...c.d, ...link };
  // The snapshot's epoch: a recreated bucket makes the watcher resync (the
  // snapshot is thrown away) instead of merging revisions that do not compare.
  const watcher = installWatcher(c, {
    epoch,
    lastRevision,
    streamLastSeq: link.info.state.last_seq,
  });
  transition(c, { on: "attaching" });
  // What the loader said while NATS was unreachable is not checked against
  // KV: drop it now, as on a reconnect, so that the next read asks KV and a
  // synced cache never serves it as a fresh hit (rule 5).
  c.freshness.reconnected();
  c.watching = watcher.start("resume", "warm start (NATS reachable again)");
  try {
    await c.watching;
  } catch (err) {
    c.watching = undefined;
    transition(c, { on: "attach_failed" });
    c.d = unbound;
    throw err;
  }
  c.bound = true;
  c.prefix = link.region?.writePrefix ?? c.prefix;
  link.region?.link.start((inSync) => onHubLink(c, inSync), () => mirrorRead(c));
  c.emit({ type: "connected", at: Date.now() });
  followConnection(c);
  if (c.o.reconcileMs > 0) startReconcile(c);
}

export function onCaughtUp<T>(c: CacheCore<T>, rev: number): void {
  c.freshness.caughtUp({ resynced: c.resyncing });
  c.counters.resetBootstrap();
  transition(c, { on: "caught_up", revision: rev, hubInSync: c.d.region?.link.inSync !== false });
}

export function onResync<T>(c: CacheCore<T>, reason: string, epochChanged: boolean): StartFrom {
  c.resyncs++;
  c.lastResyncReason = reason;
  transition(c, { on: "resync", reason, epochChanged });
  c.emit({ type: "resync", at: Date.now(), reason });
  const last = c.lastInfo?.state.last_seq ?? 0;
  if (epochChanged) forgetEmitted(c);
  c.freshness.resync({ epochChanged, nextRevision: last + 1 });
  if (c.mode === "replica") return { kind: "snapshot" };
  return { kind: "seq", seq: last + 1 };
}

/** A regional mirror lost or regained the hub: fresh only while it is in sync. */
export function onHubLink<T>(c: CacheCore<T>, inSync: boolean): void {
  const missing = c.d.region?.link.status().mirrorMissing ?? 0;
  if (!inSync && missing > 0) {
    transition(c, {
      on: "error",
      message: `Cannot vouch for the regional mirror of "${c.bucket}": it lacks ${missing} ` +
        `revision(s) the hub holds at the same last revision (re-create it: docs/topologies.md)`,
    });
    c.emit({ type: "error", at: Date.now(), message: c.lastError! });
  }
  if (inSync && c.bound && c.watching !== undefined && !c.closed) {
    // A mirror copying its backlog after a cut does not always store it in
    // order (on nats-server 2.9.10 a consumer got a newer message first and
    // older ones were stored below it afterwards, docs/nats-versions.md): the
    // watcher may have passed sequences filled in later. Re-read the mirror
    // before vouching for it again; until then the cache is not synced. A
    // lazy edge's resync drops what it holds (its negative entries too, which
    // a revision the watcher passed would never correct): the next reads
    // fetch from the mirror, which holds everything now.
    void c.watcher.resync("the regional mirror reaches the hub again: re-reading it");
  }
  transition(c, {
    on: "hub",
    inSync,
    watcherLive: c.watcher.caughtUp && !c.watcher.restarting,
  });
}

/**
 * A read of the regional mirror's state begins: once it answers, a mirror
 * that holds messages the watcher passed before they were stored (a backlog
 * copied out of order, docs/nats-versions.md) is re-read. Only a watcher
 * over the whole bucket can tell (with a key filter it sees only some).
 */
function mirrorRead<T>(c: CacheCore<T>): (info: StreamInfo) => void {
  const watcher = c.watcher;
  if (c.o.keys !== ">") return () => {};
  const mark = watcher.tally.mark(watcher.lastRevision);
  return (info) => {
    const unseen = watcher.tally.unseen(mark, info.state);
    if (unseen === 0 || watcher !== c.watcher || c.closed || !c.bound) return;
    void watcher.resync(
      `the regional mirror holds ${unseen} message(s) stored below its watcher's position: re-reading it`,
    );
  };
}

export function readStreamInfo<T>(c: CacheCore<T>, info: StreamInfo): void {
  c.lastInfo = info;
  // Entries older than the stream's first message are gone from the bucket:
  // swept now if the watcher is caught up (and the cache ready), else at its
  // catch-up.
  c.freshness.streamInfo({
    firstSeq: info.state.first_seq,
    bucketTtlMs: Math.floor((info.config.max_age ?? 0) / 1e6),
    settled: c.watcher?.caughtUp === true && !c.watcher.restarting,
    ready: c.isReady,
  });
}

/**
 * Periodic reconciliation: a stream purge, a recreated bucket or a lost tail
 * produce no watcher event, so the stream's state is compared now and then.
 */
export function startReconcile<T>(c: CacheCore<T>): void {
  c.reconcileTimer = setInterval(async () => {
    if (!c.fresh || c.watcher.restarting) return;
    try {
      const info = await c.d.jsm.streams.info(kvStreamName(c.bucket));
      if (c.closed) return;
      if (
        info.created !== c.watcher.epoch || info.state.last_seq < c.watcher.lastRevision
      ) {
        c.watcher.restart("reconciliation found the stream changed");
      } else {
        readStreamInfo(c, info);
      }
    } catch (err) {
      const e = mapNatsError(err, { action: "reconcile", bucket: c.bucket });
      if (e instanceof BucketNotFoundError) c.watcher.restart("bucket not found");
    }
  }, c.o.reconcileMs);
  unref(c.reconcileTimer);
}

/**
 * The store dropped `key` for its bounds (`overflow`: the first time a replica lost a key).
 *
 * @example
 * ```ts ignore
 * new CacheCore(deps, (key, reason, overflow) => onEvicted(core, { key, reason, overflow }));
 * ```
 */
export function onEvicted<T>(
  c: CacheCore<T>,
  removed: { key: string; reason: "evict" | "too_large"; overflow: boolean },
): void {
  const { key, reason } = removed;
  if (removed.overflow) {
    c.emit({ type: "overflow", at: Date.now(), entries: c.freshness.view.size });
  }
  if (c.events.active || c.o.onEvent) {
    c.emit({
      type: "evicted",
      at: Date.now(),
      key,
      reason: reason === "evict" ? "bounds" : "too large",
    });
  }
}

export function followConnection<T>(c: CacheCore<T>): void {
  const nc = c.d.nc;
  const status = nc.status();
  // nats.js's status iterator has stop(); close() ends the loop with it, so a
  // shared connection keeps no listener of a closed (or never opened) cache.
  c.stopStatus = () => (status as { stop?: () => void }).stop?.();
  (async () => {
    for await (const s of status) {
      if (c.closed) return;
      if (s.type === "disconnect") {
        if (!transition(c, { on: "disconnected" })) continue;
        c.watcher.disconnected();
        c.emit({ type: "disconnected", at: c.disconnectedAt });
      } else if (s.type === "error") {
        // e.g. a permissions violation on the watcher's subjects: say so.
        transition(c, { on: "error", message: describe(s.error) });
        c.emit({ type: "error", at: Date.now(), message: c.lastError! });
      } else if (s.type === "reconnect") {
        transition(c, { on: "reconnected" });
        c.freshness.reconnected();
        c.emit({ type: "connected", at: Date.now() });
        c.watcher.reconnected();
      }
    }
  })().catch(() => {});
  nc.closed().then(() => {
    if (c.closed) return;
    transition(c, { on: "connection_closed" });
  });
}
