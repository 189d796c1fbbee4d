/**
 * The public shapes of a cache: options, entries, changes, stats, status and
 * events, and the read-side and write-side handles.
 *
 * @module
 */
import type { Bookmark } from "./bookmark.ts";
import type { SnapshotStorage } from "./snapshot_file.ts";

/**
 * What kvedge needs of a schema: zod's `safeParse`. Every zod schema fits.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { SchemaLike } from "./types.ts";
 * const s: SchemaLike<{ n: number }> = z.object({ n: z.number() });
 * ```
 */
export interface SchemaLike<T> {
  /** Checks `value`; on success `data` is the (possibly transformed) value. */
  safeParse(value: unknown):
    | { success: true; data: T }
    | {
      success: false;
      error: { issues: ReadonlyArray<{ path: PropertyKey[]; message: string }> };
    };
}

/**
 * An open NATS connection (`NatsConnection` from `@nats-io/transport-node`'s
 * `connect()`) to share with a cache; the cache never closes it.
 */
export interface SharedConnection {
  /** Whether it is closed. */
  isClosed(): boolean;
  /** Closes it. */
  close(): Promise<void>;
}

/**
 * Options for the connection kvedge opens (those of nats.js `connect()`): the
 * common ones are listed; any other nats.js option is passed through.
 */
export interface NatsConnectOptions {
  /** User name (with `pass`). */
  user?: string;
  /** Password (with `user`). */
  pass?: string;
  /** Token authentication. */
  token?: string;
  /** An authenticator: `nkeyAuthenticator(seed)` or `credsAuthenticator(creds)` from `@nats-io/nats-core`. */
  authenticator?: unknown;
  /** TLS: `{ caFile, certFile, keyFile }` paths, or nats.js TLS options. */
  tls?: { caFile?: string; certFile?: string; keyFile?: string; [option: string]: unknown } | null;
  /** Prefix of reply and delivery subjects, e.g. `_INBOX_edge` for a least-privilege edge. */
  inboxPrefix?: string;
  /** Connection name shown by the server. */
  name?: string;
  /** Milliseconds between reconnect attempts. Default 500. */
  reconnectTimeWait?: number;
  /** Random extra wait per reconnect attempt, ms. Default 250. */
  reconnectJitter?: number;
  /**
   * Over `ws://`/`wss://` only: makes the W3C `WebSocket` for a URL, for runtimes whose
   * global `WebSocket` cannot be used (e.g. Cloudflare Workers: `fetch` with `Upgrade: websocket`).
   * Default: the global `WebSocket`.
   */
  wsFactory?: (
    url: string,
    options: unknown,
  ) => Promise<{ socket: WebSocket; encrypted: boolean }>;
  /** Any other nats.js connection option. */
  [option: string]: unknown;
}

/**
 * Turns values into bytes and back. The default is JSON (UTF-8).
 *
 * @example
 * ```ts
 * import type { Codec } from "./types.ts";
 * const text: Codec<string> = {
 *   contentType: "text/plain; charset=utf-8",
 *   encode: (v) => new TextEncoder().encode(v),
 *   decode: (b) => new TextDecoder().decode(b),
 * };
 * ```
 */
export interface Codec<T> {
  /** Encodes a value to the bytes stored in KV. */
  encode(value: T): Uint8Array;
  /** Decodes stored bytes; throwing means "not a valid value" (never served). */
  decode(bytes: Uint8Array): T;
  /** MIME type of the encoded bytes, used by the HTTP facade. Default `application/octet-stream`. */
  contentType?: string;
}

/**
 * Bounds of the local store. At least one of `maxItems` and `maxBytes` is
 * required: an unbounded cache is a `RangeError` at open.
 */
export interface LocalBounds {
  /** Most entries held (values and tombstones alike). Positive integer. No default. */
  maxItems?: number;
  /**
   * Most bytes held, counting each entry as key length + encoded value length
   * + a fixed per-entry overhead ({@link ENTRY_OVERHEAD_BYTES}). No default.
   */
  maxBytes?: number;
  /**
   * Longest time an entry may stay local, in milliseconds, counted from when it
   * was stored locally; a bucket TTL shortens it further (rule 6). Default: none.
   */
  maxTtlMs?: number;
  /**
   * Largest share of `maxItems` (and of `maxBytes`) that negative entries may
   * take: "absent" answers cached from misses of keys KV does not hold (or
   * the loader's `undefined`). Past it the oldest negative entry is dropped
   * instead of a value, so a flood of reads of never-written keys cannot
   * evict the values being read (counted in `stats().negativeEvictions`). A
   * number in (0, 1]; 1 bounds them by `maxItems`/`maxBytes` alone. Deletes
   * the cache has seen (tombstones with a revision) are not negative entries.
   * Default 0.25.
   */
  maxNegativeShare?: number;
}

/** Fixed per-entry overhead counted against `local.maxBytes`, in bytes. */
export const ENTRY_OVERHEAD_BYTES = 64;

/** Settings used when kvedge creates the bucket (`create` option). */
export interface CreateBucketOptions {
  /** Replicas of the KV stream (1, 3 or 5). Default 1. */
  replicas?: number;
  /** Revisions kept per key (1–64). Default 10. */
  history?: number;
  /** Bucket TTL in milliseconds (stream `max_age`); 0 means none. Default 0. */
  ttlMs?: number;
  /** Most bytes the bucket may hold on the server; -1 or omitted means unlimited. */
  maxBytes?: number;
  /** Largest value accepted by the server, in bytes; -1 or omitted means unlimited. */
  maxValueSize?: number;
  /** Stream storage. Default `"file"`. */
  storage?: "file" | "memory";
  /**
   * Turns on per-key TTL and limit markers (nats-server 2.11+): how long, in
   * milliseconds (at least 1000), the server keeps the delete marker it writes
   * when a key expires (its own TTL or the bucket's `ttlMs`). Every edge
   * drops an expired key when that marker arrives, and `set(key, value,
   * { ttlMs })` becomes possible. Cannot be turned off once on. Default: off.
   * On an older server opening fails with `UnsupportedError`.
   */
  markerTtlMs?: number;
}

/** Options of {@link LoaderFn} calls. */
export interface LoaderContext {
  /** Aborted when the cache closes or the load passes `loaderTimeoutMs`. */
  signal: AbortSignal;
}

/**
 * Loads a value from the origin for a key absent from KV. Return `undefined`
 * for "the origin has no such key" (cached negatively for `negativeTtlMs`).
 */
export type LoaderFn<T> = (key: string, ctx: LoaderContext) => Promise<T | undefined>;

/** What to do in replica mode. */
export type CacheMode = "lazy" | "replica";

/** Options of `openCache()`. */
export interface CacheOptions<T> {
  /** NATS URL(s) to connect to, e.g. `"nats://127.0.0.1:4222"`. Exactly one of `servers` and `connection`. */
  servers?: string | string[];
  /** Extra options for the connection kvedge opens (auth, TLS, name…). Ignored with `connection`. */
  connectOptions?: NatsConnectOptions;
  /** An existing connection to share; the cache does not close it. */
  connection?: SharedConnection;
  /** The KV bucket name (`[-\w]+`). */
  bucket: string;
  /** Ensure the bucket exists with these settings (`true` for defaults); omitted: it must exist. */
  create?: CreateBucketOptions | boolean;
  /** `"lazy"` (default) caches what is read; `"replica"` holds the whole bucket or the `keys` filter. */
  mode?: CacheMode;
  /** NATS wildcard filter of the keys this cache sees, e.g. `"user.>"`. Default: all keys. */
  keys?: string;
  /** Bounds of the local store (at least `maxItems` or `maxBytes`). */
  local: LocalBounds;
  /** zod schema: checked on write (before I/O) and on read (a failing value is never served). */
  schema?: SchemaLike<T>;
  /** How values are encoded. Default JSON. */
  codec?: Codec<T>;
  /** Origin for keys absent from KV (cache-aside). */
  loader?: LoaderFn<T>;
  /** Store loaded values into KV with `create()`, so other edges get them. Default false. */
  writeBack?: boolean;
  /** How long "absent" is cached locally for a loader that returned `undefined`, in ms. Default 30 000. */
  negativeTtlMs?: number;
  /**
   * Deadline of one loader call, in ms. At the deadline the loader's `signal`
   * is aborted, every `get()` waiting on that key rejects with `LoaderError`
   * (its `cause` a `TimeoutError` `DOMException`), and the key's next miss
   * calls the loader again; a late result is discarded. Counted separately
   * from `missTimeoutMs`, which bounds the KV fetch before the loader is
   * asked. Default 5 000.
   */
  loaderTimeoutMs?: number;
  /**
   * Deadline of one miss fetch from KV, in ms (1 to 600 000). A miss made
   * while the watcher is still starting or attaching waits for it at most as
   * long, then fails with `UnavailableError`; so a miss takes at most twice
   * this. Default 1 000.
   */
  missTimeoutMs?: number;
  /**
   * Most miss fetches (a KV read, then the loader) in flight at once, for
   * distinct keys; a miss of a key already being fetched joins that fetch and
   * is not counted twice. Past it a miss fails at once with
   * `OverloadedError` (a kind of `UnavailableError`: retry later; counted in
   * `stats().shedMisses`), so a flood of distinct misses cannot queue
   * unbounded work on NATS and the origin. Default 256.
   */
  maxConcurrentMisses?: number;
  /** Deadline of one write, in ms. Default 5 000. */
  writeTimeoutMs?: number;
  /**
   * Deadline of `close()`'s waits on NATS, in ms (1 to 600 000): the
   * watcher's consumer delete, a warm start still binding, and the drain of a
   * connection the cache opened. All share this one deadline, counted once
   * the snapshot (if any) is saved; what is still unanswered then is given
   * up: the cache's own connection is closed without draining, and a consumer
   * left behind is removed by the server after its inactive threshold. A
   * connection passed as `connection` is never closed. Default 5 000.
   */
  closeTimeoutMs?: number;
  /**
   * How long resident entries may be served stale while NATS is unreachable,
   * in ms, counted from the disconnect; after that they count as misses.
   * Default: unbounded (`Infinity`).
   */
  staleIfErrorMs?: number;
  /** Idle heartbeat of the watcher's consumer, in ms; two missed ones restart it. Default 5 000. */
  heartbeatMs?: number;
  /**
   * How often the stream's state is compared with the cache's, in ms, to catch
   * what produces no watcher event (a stream purge, a recreated bucket, a lost
   * tail); 0 disables it. Default 30 000.
   */
  reconcileMs?: number;
  /** Use direct gets (any replica may answer, possibly stale) for miss fetches. Default false. */
  allowDirect?: boolean;
  /** Warm start: persist the replica to `path` and load it on open (replica mode). */
  snapshot?: SnapshotOptions;
  /** Called for every cache event (also available through `events()`). */
  onEvent?: (event: CacheEvent) => void;
  /**
   * A regional edge: `servers` is the region's leaf node, which holds a
   * mirror of the bucket (`KV_<bucket>`, same name, mirroring the hub's
   * bucket through the hub's JetStream domain). Reads, misses and the watcher
   * use the mirror; writes go to the hub. Cannot be combined with `create`.
   * Default: none (the bucket is on the servers the cache connects to).
   */
  region?: RegionOptions;
  /**
   * Reads with a bookmark (`atLeast`, rule 8): how long a read waits for the
   * watcher to apply the bookmark's revision before it reads the key from
   * where the answer cannot be older (the stream leader; in a region, the
   * mirror once it has the revision, else the hub), in ms. 0: no wait, read
   * at once. A caught-up cache answers at once whatever this is. Default 250.
   */
  bookmarkWaitMs?: number;
}

/**
 * Options of a regional edge (`CacheOptions.region`): see docs/topologies.md.
 *
 * @example
 * ```ts
 * import type { RegionOptions } from "./types.ts";
 * const region: RegionOptions = { hubDomain: "hub", checkMs: 1_000, maxSilenceMs: 3_000 };
 * ```
 */
export interface RegionOptions {
  /**
   * JetStream domain of the hub cluster that holds the bucket. Writes are
   * published to `$JS.<hubDomain>.API.$KV.<bucket>.<key>`; the local mirror
   * must mirror through the same domain (checked at open).
   */
  hubDomain: string;
  /**
   * How often the local mirror's stream info is read to learn whether it
   * hears from the hub and its lag, in ms. Default 1 000.
   */
  checkMs?: number;
  /**
   * The hub counts as unreachable once the mirror has not heard from it
   * (`mirror.active`; the hub sends a heartbeat every second) for longer than
   * this, in ms, and also once no read of the mirror's stream info has
   * succeeded for this long (the region's JetStream does not answer): entries
   * are then served as stale, and writes are still tried but with a deadline
   * of at most 1 s (they fail at once with `UnavailableError` while the leaf
   * has no link to the hub). Default 3 000.
   */
  maxSilenceMs?: number;
}

/** How a regional edge sees the hub (`CacheStatus.region`). */
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
  /** When a check of the mirror last succeeded, epoch ms (the other fields are as of then). */
  checkedAt: number;
}

/**
 * Warm-start settings (replica mode): exactly one of `path` and `storage`.
 *
 * @example
 * ```ts
 * import type { SnapshotOptions } from "./types.ts";
 * const snapshot: SnapshotOptions = { path: "/var/lib/kvedge/users.snap", intervalMs: 30_000 };
 * ```
 */
export interface SnapshotOptions {
  /**
   * File the snapshot is written to (atomically, via a temporary file beside
   * it), through `node:fs/promises` (Deno, Bun, Node).
   */
  path?: string;
  /**
   * Where to keep the snapshot instead of a file, for runtimes without a
   * filesystem (e.g. a Durable Object's storage): see {@link SnapshotStorage}.
   */
  storage?: SnapshotStorage;
  /** How often to write it while running, in ms; 0 disables periodic writes. Default 60 000. */
  intervalMs?: number;
}

/** Where a served entry came from. */
export type EntrySource = "hit" | "miss" | "stale";

/**
 * An entry as served: value plus provenance.
 *
 * @example
 * ```ts
 * import type { Entry } from "./types.ts";
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

/** A KV operation. */
export type Operation = "PUT" | "DEL" | "PURGE";

/**
 * One change applied from the bucket, in revision order. After a resync or
 * a regional edge's re-read of its mirror (a WAN heal), changes come from a
 * fresh read of the bucket: a key's current revision may come again (one
 * the edge already passed is repeated only for a key its store did not
 * hold, e.g. one evicted from a bounded replica), and one the edge lacked
 * may come after higher revisions of other keys. A key's revisions never go
 * backwards within one incarnation of the bucket.
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

/** Options of `changes()`. */
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

/** One past revision of a key. */
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

/** Counters of a cache since it opened. */
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

/** The lifecycle state of a cache. */
export type CacheState = "starting" | "synced" | "stale" | "resyncing" | "closed";

/** What `status()` returns. */
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

/** Events a cache emits (`events()`, `onEvent`). */
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

/** Options of reads that may do I/O. */
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
   * {@link Entry}). Default false.
   */
  allowStale?: boolean;
}

/**
 * Options of `ready()`.
 *
 * @example
 * ```ts
 * import type { ReadyOptions } from "./types.ts";
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

/** Options of `set()`/`create()`. */
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

/** Options of `delete()`/`purge()`. */
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

/** The read-and-write handle of a cache. */
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
