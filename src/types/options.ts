/**
 * The options of a cache: how it connects, its bound, codec, schema, loader,
 * bucket creation, region and warm start.
 *
 * @module
 */
import type { SnapshotStorage } from "../snapshot_file.ts";
import type { CacheEvent, CacheMode } from "./status.ts";

/**
 * What kvedge needs of a schema: zod's `safeParse`. Every zod schema fits.
 *
 * @example
 * ```ts
 * import { z } from "zod";
 * import type { SchemaLike } from "../types.ts";
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
 *
 * @example
 * ```ts
 * import { connect } from "@nats-io/transport-node";
 * import { openCache } from "../../mod.ts";
 * import type { SharedConnection } from "../types.ts";
 * const nc: SharedConnection = await connect({ servers: "nats://127.0.0.1:4222" });
 * // Two caches on one connection; closing them leaves it open.
 * const users = await openCache({ connection: nc, bucket: "users", local: { maxItems: 1_000 } });
 * const prices = await openCache({ connection: nc, bucket: "prices", local: { maxItems: 1_000 } });
 * await users.close();
 * await prices.close();
 * await nc.close();
 * ```
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
 *
 * @example
 * ```ts
 * import type { NatsConnectOptions } from "../types.ts";
 * // A least-privilege edge: its own user, TLS, and the inbox prefix its permissions allow.
 * const o: NatsConnectOptions = {
 *   user: "edge",
 *   pass: "secret",
 *   tls: { caFile: "/etc/kvedge/ca.pem" },
 *   inboxPrefix: "_INBOX_edge",
 *   name: "edge-eu-1",
 * };
 * ```
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
 * import type { Codec } from "../types.ts";
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
 *
 * @example
 * ```ts
 * import type { LocalBounds } from "../types.ts";
 * // At most 50 000 entries and 64 MiB, no entry older than 10 min, absences at most 10 %.
 * const local: LocalBounds = {
 *   maxItems: 50_000,
 *   maxBytes: 64 * 1024 * 1024,
 *   maxTtlMs: 10 * 60_000,
 *   maxNegativeShare: 0.1,
 * };
 * ```
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

/**
 * Fixed per-entry overhead counted against `local.maxBytes`, in bytes.
 *
 * @example
 * ```ts
 * import { ENTRY_OVERHEAD_BYTES } from "../types.ts";
 * // What one entry of key "user.1" with a 200-byte value counts against `local.maxBytes`.
 * const counted = "user.1".length + 200 + ENTRY_OVERHEAD_BYTES; // 270
 * ```
 */
export const ENTRY_OVERHEAD_BYTES = 64;

/**
 * Settings used when kvedge creates the bucket (`create` option).
 *
 * @example
 * ```ts
 * import type { CreateBucketOptions } from "../types.ts";
 * // Created by the cache if missing: replicated, 5 revisions per key, per-key TTL possible.
 * const create: CreateBucketOptions = { replicas: 3, history: 5, markerTtlMs: 60_000 };
 * ```
 */
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

/**
 * Options of {@link LoaderFn} calls.
 *
 * @example
 * ```ts
 * import type { LoaderContext } from "../types.ts";
 * // Pass the signal on, so a load stops when the cache closes or the load times out.
 * async function load(key: string, ctx: LoaderContext): Promise<unknown> {
 *   const res = await fetch(`https://origin.example/items/${key}`, { signal: ctx.signal });
 *   return res.status === 404 ? undefined : await res.json();
 * }
 * ```
 */
export interface LoaderContext {
  /** Aborted when the cache closes or the load passes `loaderTimeoutMs`. */
  signal: AbortSignal;
}

/**
 * Loads a value from the origin for a key absent from KV. Return `undefined`
 * for "the origin has no such key" (cached negatively for `negativeTtlMs`).
 *
 * @example
 * ```ts
 * import type { LoaderFn } from "../types.ts";
 * // Answers keys KV lacks from the origin; `undefined` means "no such key" (cached as absent).
 * const loader: LoaderFn<{ name: string }> = async (key, { signal }) => {
 *   const res = await fetch(`https://origin.example/users/${key}`, { signal });
 *   return res.status === 404 ? undefined : await res.json() as { name: string };
 * };
 * ```
 */
export type LoaderFn<T> = (key: string, ctx: LoaderContext) => Promise<T | undefined>;

/**
 * Options of `openCache()`.
 *
 * @example
 * ```ts
 * import { openCache } from "../../mod.ts";
 * import type { CacheOptions } from "../types.ts";
 * // A replica of the whole bucket, warm-started from a file, bounded to 100 000 entries.
 * const options: CacheOptions<{ price: number }> = {
 *   servers: "nats://127.0.0.1:4222",
 *   bucket: "prices",
 *   mode: "replica",
 *   local: { maxItems: 100_000 },
 *   snapshot: { path: "/var/lib/kvedge/prices.snap" },
 * };
 * const prices = await openCache(options);
 * ```
 */
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
 * import type { RegionOptions } from "../types.ts";
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

/**
 * Warm-start settings (replica mode): exactly one of `path` and `storage`.
 *
 * @example
 * ```ts
 * import type { SnapshotOptions } from "../types.ts";
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
