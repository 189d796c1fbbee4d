/**
 * What a cache reports: its mode, entries as served, changes, history,
 * stats, status and events.
 *
 * @module
 */

/**
 * What to do in replica mode.
 *
 * @example
 * ```ts
 * import type { CacheMode } from "../types.ts";
 * // lazy: fetch on first read, then keep fresh; replica: hold the whole bucket.
 * const mode: CacheMode = Deno.env.get("KVEDGE_MODE") === "replica" ? "replica" : "lazy";
 * ```
 */
export type CacheMode = "lazy" | "replica";

/**
 * Where a served entry came from.
 *
 * @example
 * ```ts
 * import type { Cache, EntrySource } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const e = await users.getEntry("user.1");
 * const source: EntrySource | undefined = e?.source; // "hit", "miss" or "stale"
 * ```
 */
export type EntrySource = "hit" | "miss" | "stale";

/**
 * An entry as served: value plus provenance.
 *
 * @example
 * ```ts
 * import type { Entry } from "../types.ts";
 * const e: Entry<number> = { key: "a", value: 1, revision: 3, createdMs: 0, source: "hit", stale: false };
 * ```
 */
export interface Entry<T> {
  /** The key. */
  key: string;
  /** The decoded value. */
  value: T;
  /** KV revision (stream sequence) of the value. */
  revision: number;
  /** When the value was written to KV, epoch ms (approximate for own writes). */
  createdMs: number;
  /** `hit` (local, fresh), `miss` (fetched now), `stale` (local while NATS is unreachable). */
  source: EntrySource;
  /** True when the cache cannot vouch that this is the latest revision. */
  stale: boolean;
  /**
   * True only on an answer that `allowStale` let through although the cache
   * could not reach the read's bookmark (`atLeast`): it may be older than the
   * bookmark. Absent otherwise.
   */
  belowBookmark?: true;
}

/**
 * A KV operation.
 *
 * @example
 * ```ts
 * import type { Cache, Operation } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * for await (const change of users.changes()) {
 *   const op: Operation = change.operation;
 *   if (op !== "PUT") console.log(`${change.key} removed at ${change.revision}`);
 * }
 * ```
 */
export type Operation = "PUT" | "DEL" | "PURGE";

/**
 * One change applied from the bucket, in revision order. After a resync or
 * a regional edge's re-read of its mirror (a WAN heal), changes come from a
 * fresh read of the bucket: a key's current revision may come again (one
 * the edge already passed is repeated only for a key its store did not
 * hold, e.g. one evicted from a bounded replica), and one the edge lacked
 * may come after higher revisions of other keys. A rebuild without the
 * bucket being recreated (its replicas found disagreeing, its sequence seen
 * going backwards) repeats nothing a reader was told among the last 1 024
 * changes nor, in a replica, what its store held. A key's revisions never go
 * backwards within one incarnation of the bucket.
 *
 * @example
 * ```ts
 * import type { Cache, Change } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * // Every change this edge applies, in revision order, from revision 1.
 * for await (const c of users.changes({ fromRevision: 1 })) {
 *   const change: Change<{ name: string }> = c;
 *   console.log(change.key, change.operation, change.revision, change.value?.name);
 * }
 * ```
 */
export interface Change<T> {
  /** The key. */
  key: string;
  /** What happened. */
  operation: Operation;
  /** KV revision of the change. */
  revision: number;
  /** When it was written to KV, epoch ms. */
  createdMs: number;
  /** The new value for `PUT` (undefined if it failed the codec or schema). */
  value?: T;
}

/**
 * Options of `changes()`.
 *
 * @example
 * ```ts
 * import type { Cache, ChangesOptions } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * // Changes of `user.>` keys, at most 1 000 buffered for a slow reader.
 * const o: ChangesOptions = { filter: "user.>", bufferSize: 1_000 };
 * for await (const c of users.changes(o)) console.log(c.key);
 * ```
 */
export interface ChangesOptions {
  /** Stops the iteration. */
  signal?: AbortSignal;
  /** Only keys matching this NATS wildcard filter. */
  filter?: string;
  /**
   * Replay from this revision (inclusive) before following live changes; uses a
   * dedicated consumer. Omitted: live changes only, from the cache's watcher.
   */
  fromRevision?: number;
  /** Changes buffered for a slow reader before the iterator fails. Default 10 000. */
  bufferSize?: number;
}

/**
 * One past revision of a key.
 *
 * @example
 * ```ts
 * import type { Cache, HistoryEntry } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const past: HistoryEntry<{ name: string }>[] = await users.history("user.1", { maxBytes: 1 << 20 });
 * for (const h of past) console.log(h.revision, h.operation, h.value?.name);
 * ```
 */
export interface HistoryEntry<T> {
  /** The key. */
  key: string;
  /** What happened. */
  operation: Operation;
  /** KV revision. */
  revision: number;
  /** When it was written, epoch ms. */
  createdMs: number;
  /** The value for `PUT`. */
  value?: T;
}

/**
 * Counters of a cache since it opened.
 *
 * @example
 * ```ts
 * import type { Cache, CacheStats } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const s: CacheStats = users.stats();
 * console.log(`hit ratio ${s.hitRatio.toFixed(2)}, ${s.misses} misses, ${s.fetches} fetches`);
 * ```
 */
export interface CacheStats {
  /** Reads answered locally and fresh. */
  hits: number;
  /** Reads answered locally while stale (NATS unreachable). */
  staleHits: number;
  /** Reads that were not resident (including negative results fetched). */
  misses: number;
  /** Misses refused at once because `maxConcurrentMisses` fetches were in flight (`OverloadedError`). */
  shedMisses: number;
  /** hits / (hits + staleHits + misses), 0 when there were no reads. */
  hitRatio: number;
  /** KV reads made for misses (single-flight shares one among concurrent misses). */
  fetches: number;
  /** Calls to the loader. */
  loads: number;
  /** Entries dropped by the local bounds (items, bytes). */
  evictions: number;
  /** Negative entries dropped by `local.maxNegativeShare` (not counted in `evictions`). */
  negativeEvictions: number;
  /** Stored values that failed the codec or schema and were never served. */
  rejected: number;
  /** Resident entries (values and tombstones). */
  entries: number;
  /** Bytes counted against `local.maxBytes`. */
  bytes: number;
  /** Changes applied from the watcher. */
  applied: number;
  /** Highest revision the watcher has applied. */
  lastRevision: number;
  /** Revisions the watcher knows it has not applied yet. */
  lagRevisions: number;
  /** Age of the oldest unapplied change the watcher knows of, in ms (0 when caught up). */
  lagMs: number;
  /** Full resyncs done. */
  resyncs: number;
}

/**
 * The lifecycle state of a cache.
 *
 * @example
 * ```ts
 * import type { Cache, CacheState } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const state: CacheState = users.status().state;
 * if (state !== "synced") console.warn(`serving ${state} data`);
 * ```
 */
export type CacheState = "starting" | "synced" | "stale" | "resyncing" | "closed";

/**
 * What `status()` returns.
 *
 * @example
 * ```ts
 * import type { Cache, CacheStatus } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const st: CacheStatus = users.status();
 * console.log(st.state, st.connected, st.lastRevision, st.lagRevisions);
 * ```
 */
export interface CacheStatus {
  /** The bucket. */
  bucket: string;
  /** The mode. */
  mode: CacheMode;
  /** Lifecycle state. */
  state: CacheState;
  /** Whether the NATS connection is up. */
  connected: boolean;
  /** Highest revision applied. */
  lastRevision: number;
  /** Revisions known but not applied. */
  lagRevisions: number;
  /** Age of the oldest unapplied change, ms. */
  lagMs: number;
  /** When `state` last changed, epoch ms. */
  since: number;
  /** The last error seen, as a message without secrets. */
  lastError?: string;
  /** Full resyncs done. */
  resyncs: number;
  /** Why the last resync happened. */
  lastResyncReason?: string;
  /** Replica mode: the bucket has more than the local bounds hold. */
  overflowed: boolean;
  /**
   * Where `keys()` reads now: `local` when this is a replica that holds the
   * whole bucket (synced, caught up, nothing evicted or aged out locally), so
   * a listing costs no I/O; else `kv` (a consumer over the bucket on the server).
   */
  listing: "local" | "kv";
  /** Bootstrap progress (replica mode), while starting or resyncing. */
  bootstrap?: { applied: number; pending: number };
  /** Bucket TTL in ms (0: none), as read from the stream. */
  bucketTtlMs: number;
  /** `local.maxTtlMs` (0: none). */
  maxTtlMs: number;
  /** A regional edge's link to the hub (only with the `region` option). */
  region?: RegionStatus;
}

/**
 * How a regional edge sees the hub (`CacheStatus.region`).
 *
 * @example
 * ```ts
 * import type { Cache, RegionStatus } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * const region: RegionStatus | undefined = users.status().region;
 * if (region && !region.hubReachable) console.warn(`hub silent for ${region.mirrorActiveMs} ms`);
 * ```
 */
export interface RegionStatus {
  /** The hub's JetStream domain. */
  hubDomain: string;
  /**
   * Whether the local mirror heard from the hub within `maxSilenceMs` at the
   * last check, and a check succeeded within `maxSilenceMs`.
   */
  hubReachable: boolean;
  /**
   * Messages the mirror knows it has not copied yet, as the hub last told it.
   * While the hub is unreachable this is a lower bound (writes made at the hub
   * during a cut are unknown to the region).
   */
  mirrorLag: number;
  /** Time since the mirror last heard from the hub at the last check, ms (-1: never). */
  mirrorActiveMs: number;
  /** The mirror's last revision at the last check. */
  mirrorLastRevision: number;
  /**
   * Messages the hub's stream holds that the mirror lacks, found by comparing
   * the two at the same last sequence (after open and whenever the link comes
   * back): a mirror that skipped revisions (seen on nats-server 2.9.10 after a
   * WAN cut). While it is above 0 the edge is never `synced`; re-create the
   * mirror (docs/topologies.md). 0 when none is known.
   */
  mirrorMissing: number;
  /**
   * How long the mirror has lagged behind the hub while hearing from it
   * without storing a message, ms (0 while it has no lag, stores, or does
   * not hear the hub). Past twice `maxSilenceMs` the edge says why in
   * `lastError` (an "error" event): a message the mirror cannot store (one
   * over the region's `max_payload` or `max_msg_size`) or a server defect;
   * re-create the mirror (docs/topologies.md). It also counts a mirror that
   * reports no lag yet has stood behind a message the hub holds for more
   * than twice `maxSilenceMs` (nats-server drops a message over the mirror's
   * `max_msg_size` without a word and reports lag 0): found by comparing the
   * hub's last sequence with the mirror's and one read of the hub's first
   * message above it, counted from when the mirror was first seen behind.
   * While it is past twice `maxSilenceMs` the edge is never `synced`.
   */
  mirrorStalledMs: number;
  /** When a check of the mirror last succeeded, epoch ms (the other fields are as of then). */
  checkedAt: number;
}

/**
 * Events a cache emits (`events()`, `onEvent`).
 *
 * @example
 * ```ts
 * import type { Cache, CacheEvent } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * for await (const ev of users.events()) {
 *   const e: CacheEvent = ev;
 *   if (e.type === "resync") console.warn(`resync: ${e.reason}`);
 * }
 * ```
 */
export type CacheEvent =
  | { type: "connected"; at: number }
  | { type: "disconnected"; at: number }
  | { type: "synced"; at: number; revision: number }
  | { type: "stale"; at: number; reason: string }
  | { type: "resync"; at: number; reason: string }
  | { type: "watcher_restart"; at: number; reason: string; fromRevision: number }
  | { type: "bootstrap"; at: number; applied: number; pending: number }
  | { type: "overflow"; at: number; entries: number }
  | { type: "evicted"; at: number; key: string; reason: string }
  | { type: "rejected"; at: number; key: string; revision: number; reason: string }
  | { type: "snapshot"; at: number; action: "loaded" | "saved" | "ignored"; detail: string }
  | { type: "error"; at: number; message: string };
