/**
 * What a cache reports: `stats()` (counters, the store's size and bytes, the
 * watcher's lag) and `status()` (state, connection, position, region,
 * bootstrap progress).
 *
 * @module
 */
import type { CacheStats, CacheStatus } from "../types.ts";
import { type CacheCore, listsLocally } from "./core.ts";

/**
 * The cache's stats; `hits` is counted by the facade (the hit path touches nothing else).
 *
 * @example
 * ```ts ignore
 * const stats = statsOf(core, hits);
 * ```
 */
export function statsOf<T>(c: CacheCore<T>, hits: number): CacheStats {
  const staleHits = c.counters.get("staleHits");
  const misses = c.counters.get("misses");
  const reads = hits + staleHits + misses;
  return {
    hits,
    staleHits,
    misses,
    shedMisses: c.counters.get("shedMisses"),
    hitRatio: reads === 0 ? 0 : (hits + staleHits) / reads,
    fetches: c.counters.get("fetches"),
    loads: c.counters.get("loads"),
    evictions: c.freshness.view.evictions,
    negativeEvictions: c.freshness.view.negativeEvictions,
    rejected: c.counters.get("rejected"),
    entries: c.freshness.view.size,
    bytes: c.freshness.view.bytes,
    applied: c.counters.get("applied"),
    lastRevision: c.sync.watcher.lastRevision,
    lagRevisions: c.sync.watcher.pending,
    lagMs: lagMs(c),
    resyncs: c.sync.resyncs,
  };
}

/**
 * The cache's status.
 *
 * @example
 * ```ts ignore
 * console.log(statusOf(core).state);
 * ```
 */
export function statusOf<T>(c: CacheCore<T>): CacheStatus {
  const s: CacheStatus = {
    bucket: c.bucket,
    mode: c.mode,
    state: c.life.state,
    connected: c.life.connected,
    lastRevision: c.sync.watcher.lastRevision,
    lagRevisions: c.sync.watcher.pending,
    lagMs: lagMs(c),
    since: c.life.since,
    resyncs: c.sync.resyncs,
    overflowed: c.freshness.overflowed,
    listing: listsLocally(c) ? "local" : "kv",
    bucketTtlMs: c.freshness.bucketTtlMs,
    maxTtlMs: c.o.maxTtlMs,
  };
  if (c.life.lastError !== undefined) s.lastError = c.life.lastError;
  if (c.sync.lastResyncReason !== undefined) s.lastResyncReason = c.sync.lastResyncReason;
  if (c.sync.link.region) s.region = c.sync.link.region.link.status();
  if (!c.sync.watcher.caughtUp && c.mode === "replica") {
    s.bootstrap = {
      applied: c.counters.get("bootstrapApplied"),
      pending: c.sync.watcher.pending,
    };
  }
  return s;
}

/** How far behind the newest change the watcher is, ms (0 when it has nothing pending). */
function lagMs<T>(c: CacheCore<T>): number {
  if (c.sync.watcher.pending === 0 || c.sync.lastCreated === 0) return 0;
  return Math.max(0, Date.now() - c.sync.lastCreated);
}
