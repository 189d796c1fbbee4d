/**
 * The read-side and write-side handles of a cache and the options of their
 * calls.
 *
 * @module
 */
import type { Bookmark } from "../bookmark.ts";
import type {
  CacheEvent,
  CacheMode,
  CacheStats,
  CacheStatus,
  Change,
  ChangesOptions,
  Entry,
  HistoryEntry,
} from "./status.ts";

/**
 * Options of reads that may do I/O.
 *
 * @example
 * ```ts
 * import type { Cache, GetOptions } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * // Read no older than this client's own write, on any edge; give up after 1 s.
 * const revision = await users.set("user.1", { name: "Ada" });
 * const o: GetOptions = { atLeast: revision, signal: AbortSignal.timeout(1_000) };
 * const user = await users.get("user.1", o);
 * ```
 */
export interface GetOptions {
  /** Aborts the wait (not the shared fetch). */
  signal?: AbortSignal;
  /**
   * Read no older than this (rule 8): a revision of this cache's bucket (a
   * write's return value) or a {@link Bookmark} (its revision for this
   * bucket; other buckets are ignored). Answered locally when the cache has
   * applied its bucket up to it (a hit costs the same); else after waiting
   * up to `bookmarkWaitMs` for the watcher; else read from the stream leader
   * (in a region: the mirror once it has the revision, else the hub). Fails
   * with `BookmarkError` when it cannot (code `BOOKMARK_NOT_REACHED`, or
   * `BOOKMARK_AHEAD` for a revision far beyond the bucket's). 0: none.
   */
  atLeast?: number | Bookmark;
  /**
   * With `atLeast`: instead of failing with `BOOKMARK_NOT_REACHED`, answer
   * what the cache holds, marked `stale` and `belowBookmark` (see
   * {@link Entry}). Default false. A resident deletion (or cached absence)
   * cannot carry the mark: for it the read still fails.
   */
  allowStale?: boolean;
}

/**
 * Options of `ready()`.
 *
 * @example
 * ```ts
 * import type { ReadyOptions } from "../types.ts";
 * // Synced, and every change up to revision 42 applied, within 2 s.
 * const o: ReadyOptions = { atLeast: 42, timeoutMs: 2_000 };
 * ```
 */
export interface ReadyOptions {
  /** Stops waiting. */
  signal?: AbortSignal;
  /** Rejects with `UnavailableError` (or, with `atLeast`, `BookmarkError`) after this long, ms. */
  timeoutMs?: number;
  /**
   * Also wait until the cache has applied its bucket up to this revision or
   * bookmark (rule 8). Rejects at once with `BookmarkError` `BOOKMARK_AHEAD`
   * for a revision far beyond the bucket's.
   */
  atLeast?: number | Bookmark;
}

/**
 * Options of `set()`/`create()`.
 *
 * @example
 * ```ts
 * import type { Cache, SetOptions } from "../types.ts";
 * declare const sessions: Cache<{ user: string }>;
 * // The server removes the key after 30 min, and every edge drops it then.
 * const o: SetOptions = { ttlMs: 30 * 60_000 };
 * await sessions.set("session.ab12", { user: "ada" }, o);
 * ```
 */
export interface SetOptions {
  /**
   * Per-key TTL in milliseconds (at least 1000; the server counts whole
   * seconds, so it is rounded up): the server removes the key after this long
   * and every edge drops it when the expiry marker arrives. Needs nats-server
   * 2.11+ and a bucket with limit markers (`create.markerTtlMs`, or
   * `nats kv add --marker-ttl`); otherwise `UnsupportedError`, nothing
   * written. The write also drops the key's older revisions, so none can
   * come back when it expires. Default: none (the bucket's own TTL applies).
   */
  ttlMs?: number;
}

/**
 * Options of `delete()`/`purge()`.
 *
 * @example
 * ```ts
 * import type { Cache, DeleteOptions } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * // Delete only if nobody changed the key since revision 7 (ConflictError otherwise).
 * const o: DeleteOptions = { expectedRevision: 7 };
 * await users.delete("user.1", o);
 * ```
 */
export interface DeleteOptions {
  /** Compare-and-set: only if the key's latest revision is this one. */
  expectedRevision?: number;
}

/**
 * The read side of a cache: an edge that only reads gets this, and cannot write.
 *
 * Values are shared, not copied: `get()`, `peek()` and `getEntry()` hand every
 * caller the resident object itself (a hit costs no copy), and `set()` keeps
 * the object it was given. Treat them as read-only; copy first
 * (`structuredClone(v)`) to change one. A mutation would be seen by every
 * reader of this cache until the key changes. The cache itself never mutates
 * a value it handed out: a new revision is a new object.
 *
 * @example
 * ```ts
 * import type { Cache, ReadonlyCache } from "../types.ts";
 * declare const users: Cache<{ name: string }>;
 * // Hand a part of the service the read side only: it cannot write.
 * const view: ReadonlyCache<{ name: string }> = users.readonly();
 * const hit = view.peek("user.1"); // no I/O
 * const entry = await view.getEntry("user.1"); // with its revision and `stale` mark
 * ```
 */
export interface ReadonlyCache<T> extends AsyncDisposable {
  /** The bucket. */
  readonly bucket: string;
  /** The mode. */
  readonly mode: CacheMode;
  /** Resolves when the cache is usable (replica: snapshot applied; lazy: watcher running). */
  ready(options?: ReadyOptions): Promise<void>;
  /**
   * The bookmark this cache has reached: its bucket at the revision up to
   * which it has applied every change (empty while bootstrapping or
   * resyncing). A read with it as `atLeast` on any edge is no older than
   * what this cache serves now.
   */
  bookmark(): Bookmark;
  /** The value of `key`, or undefined if absent. A local hit does no I/O. The value is shared: do not mutate it. */
  get(key: string, options?: GetOptions): Promise<T | undefined>;
  /** The resident value of `key` without any I/O (undefined if not resident or absent). Shared: do not mutate it. */
  peek(key: string): T | undefined;
  /** The entry of `key` with its revision and provenance, or undefined if absent. Its `value` is shared: do not mutate it. */
  getEntry(key: string, options?: GetOptions): Promise<Entry<T> | undefined>;
  /**
   * Keys present in the bucket (matching `filter`), in no particular order:
   * from the local store when `status().listing` is `local` (no I/O), else
   * from KV through a consumer, which stops when `signal` aborts.
   */
  keys(filter?: string, options?: { signal?: AbortSignal }): AsyncIterable<string>;
  /**
   * Past revisions of `key` still in the bucket's history, oldest first.
   * With `maxBytes`, rejects with `TooLargeError` as soon as the values read
   * add up to more than that many bytes (memory stays bounded by it).
   */
  history(
    key: string,
    options?: { signal?: AbortSignal; maxBytes?: number },
  ): Promise<HistoryEntry<T>[]>;
  /** Applied changes in revision order (or a replay from a revision). */
  changes(options?: ChangesOptions): AsyncIterableIterator<Change<T>>;
  /** Cache events (connected, resync, evicted…) as they happen. */
  events(options?: { signal?: AbortSignal }): AsyncIterableIterator<CacheEvent>;
  /** Counters. */
  stats(): CacheStats;
  /** Lifecycle and freshness. */
  status(): CacheStatus;
  /** Stops the watcher, closes the connection if the cache opened it. Idempotent. */
  close(): Promise<void>;
}

/**
 * The read-and-write handle of a cache.
 *
 * @example
 * ```ts
 * import { openCache } from "../../mod.ts";
 * import type { Cache } from "../types.ts";
 * const users: Cache<{ name: string }> = await openCache<{ name: string }>({
 *   servers: "nats://127.0.0.1:4222",
 *   bucket: "users",
 *   local: { maxItems: 10_000 },
 * });
 * const revision = await users.set("user.1", { name: "Ada" });
 * await users.update("user.1", { name: "Ada L." }, revision);
 * await users.close();
 * ```
 */
export interface Cache<T> extends ReadonlyCache<T> {
  /**
   * Writes `value` and returns its revision; the local entry is updated
   * (read-your-writes) and holds `value` itself: do not mutate it afterwards.
   */
  set(key: string, value: T, options?: SetOptions): Promise<number>;
  /** Writes `value` only if `key` is absent; `ConflictError` otherwise. */
  create(key: string, value: T, options?: SetOptions): Promise<number>;
  /** Writes `value` only if `key` is at `expectedRevision`; `ConflictError` otherwise. */
  update(key: string, value: T, expectedRevision: number): Promise<number>;
  /** Deletes `key` (a tombstone that keeps history); returns the delete's revision. */
  delete(key: string, options?: DeleteOptions): Promise<number>;
  /** Purges `key` (drops its history); returns the purge's revision. */
  purge(key: string, options?: DeleteOptions): Promise<number>;
  /** A read-only view of this cache that cannot write. */
  readonly(): ReadonlyCache<T>;
}
