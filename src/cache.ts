/**
 * The cache: a local store kept fresh by the watcher, with single-flight miss
 * fetches, reserved misses (rule 3), tombstones, write-through and status.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { headers as natsHeaders } from "@nats-io/nats-core";
import type { JetStreamClient, JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import { Broadcast } from "./broadcast.ts";
import {
  BucketNotFoundError,
  ClosedError,
  ConflictError,
  DecodeError,
  KeyError,
  LoaderError,
  UnavailableError,
  UnsupportedError,
  ValidationError,
} from "./errors.ts";
import { isWrongLastSequence, mapNatsError } from "./errors_map.ts";
import { assertFilter, assertKey, matchesFilter } from "./keys.ts";
import { Applied, LocalStore, type Slot, SlotFlag } from "./local_store.ts";
import type { ResolvedOptions } from "./options.ts";
import type { RegionLink } from "./region.ts";
import { SingleFlight } from "./single_flight.ts";
import type {
  Cache,
  CacheEvent,
  CacheMode,
  CacheState,
  CacheStats,
  CacheStatus,
  Change,
  ChangesOptions,
  DeleteOptions,
  Entry,
  EntrySource,
  GetOptions,
  HistoryEntry,
  Operation,
  ReadonlyCache,
  SetOptions,
} from "./types.ts";
import {
  KV_OPERATION_HEADER,
  kvStreamName,
  kvSubjectPrefix,
  ROLLUP_HEADER,
  ROLLUP_SUBJECT,
  TTL_HEADER,
  ttlHeaderValue,
} from "./kv_layout.ts";
import { assertServerVersion, PER_KEY_TTL_VERSION, serverVersion } from "./server_version.ts";
import { loadSnapshot, type SnapshotSource, writeSnapshot } from "./snapshot.ts";
import { describe, type StartFrom, unref, Watcher } from "./watcher.ts";

/** The connection and the handles bound to it (what a cache opened from its snapshot lacks). */
export interface CacheLink {
  nc: NatsConnection;
  /** Manager for the watcher's control calls (stream info, consumer create); a generous timeout. */
  jsm: JetStreamManager;
  /** Client for writes (timeout = writeTimeoutMs). */
  js: JetStreamClient;
  /** KV handle for reads, listings and history. */
  kv: KV;
  /** Stream info read at open. */
  info: StreamInfo;
  /** A regional edge: the local mirror's link to the hub, and where writes go. */
  region?: { link: RegionLink; writePrefix: string };
}

/** What `openCache()` hands to the cache (everything already connected, or see `startUnbound()`). */
export interface CacheDeps<T> extends CacheLink {
  options: ResolvedOptions<T>;
  ownsConnection: boolean;
  /** The connection's inbox prefix. */
  inboxPrefix?: string;
}

/** A miss fetch in flight records watcher events for its key here (rule 3). */
interface Reservation {
  rev: number;
  created: number;
  raw: Uint8Array | undefined;
}

/** A `bootstrap` progress event is emitted every this many applied changes. */
const BOOTSTRAP_EVENT_EVERY = 10_000;

/**
 * The implementation behind `openCache()`. Constructing it does no I/O;
 * `openCache()` calls {@link KvedgeCache.start}.
 */
export class KvedgeCache<T> implements Cache<T> {
  readonly bucket: string;
  readonly mode: CacheMode;
  readonly #o: ResolvedOptions<T>;
  #d: CacheDeps<T>;
  readonly #store: LocalStore;
  readonly #flight = new SingleFlight<string, Slot | undefined>();
  readonly #reservations = new Map<string, Reservation>();
  /** Keys the loader answered while NATS was unreachable (dropped on reconnect). */
  readonly #offline = new Set<string>();
  #watcher: Watcher;
  readonly #changes = new Broadcast<Change<T>>();
  readonly #events = new Broadcast<CacheEvent>();
  #prefix: string;
  #state: CacheState = "starting";
  #fresh = false;
  #since = Date.now();
  #connected = true;
  #disconnectedAt = 0;
  #lastError: string | undefined;
  #lastResyncReason: string | undefined;
  #resyncs = 0;
  #resyncing = false;
  /** Replica mode: every change up to the watcher's revision is applied (caught up once since the last clear). */
  #complete = false;
  /** Replica mode: tombstones stored since the last drop (0: nothing to drop). */
  #tombstones = 0;
  #gen = 0;
  #sweepBefore = 0;
  #lossy: boolean;
  #overflowed = false;
  #bucketTtlMs = 0;
  #lastCreated = 0;
  #bootstrapApplied = 0;
  #ready: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  #isReady = false;
  #watching: Promise<void> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;
  readonly #aborter = new AbortController();
  #hits = 0;
  #staleHits = 0;
  #misses = 0;
  #fetches = 0;
  #loads = 0;
  #rejected = 0;
  #applied = 0;
  #resyncEpoch = false;
  #dropBelow = 0;
  #savedRevision = -1;
  #lastInfo: StreamInfo | undefined;
  #reconcileTimer: ReturnType<typeof setInterval> | undefined;
  #stopStatus: (() => void) | undefined;
  #snapshotTimer: ReturnType<typeof setInterval> | undefined;
  /** After resuming across a history gap: entries below this revision are gone once caught up. */
  #gapFloor = 0;
  /** Whether `#d` holds a real connection (false while opened from the snapshot only). */
  #bound = true;
  /** Opened from the snapshot: the loop binding the connection once NATS is reachable. */
  #binding: Promise<void> | undefined;

  /** Wires the parts together; no I/O. */
  constructor(deps: CacheDeps<T>) {
    const o = deps.options;
    this.#o = o;
    this.#d = deps;
    this.bucket = o.bucket;
    this.mode = o.mode;
    this.#prefix = deps.region?.writePrefix ?? kvSubjectPrefix(o.bucket);
    this.#lossy = o.maxTtlMs > 0;
    this.#store = new LocalStore({
      maxItems: o.maxItems || undefined,
      maxBytes: o.maxBytes || undefined,
      maxTtlMs: o.maxTtlMs || undefined,
      onRemove: (key, _slot, reason) => {
        if (reason !== "expire") this.#onEvicted(key, reason);
      },
    });
    this.#readStreamInfo(deps.info);
    this.#ready.promise.catch(() => {});
    this.#watcher = this.#newWatcher();
    this.#watcher.epoch = deps.info.created;
    this.#watcher.streamLastSeq = deps.info.state.last_seq;
  }

  /** The watcher over the current connection, feeding this cache. */
  #newWatcher(): Watcher {
    return new Watcher({
      nc: this.#d.nc,
      jsm: this.#d.jsm,
      bucket: this.bucket,
      filter: this.#o.keys,
      heartbeatMs: this.#o.heartbeatMs,
      inboxPrefix: this.#d.inboxPrefix,
      handler: {
        onChange: (key, op, rev, created, data, pending) =>
          this.#onChange(key, op, rev, created, data, pending),
        onCaughtUp: (rev) => this.#onCaughtUp(rev),
        onResync: (req) => this.#onResync(req.reason, req.epochChanged),
        onHistoryGap: (first) => {
          // Resume from the stream's first sequence instead of re-reading the
          // bucket: whatever left the stream below it was either replaced by a
          // later change (delivered now) or is gone from the bucket, and
          // #onCaughtUp drops those entries.
          this.#gapFloor = Math.max(this.#gapFloor, first);
          return true;
        },
        onRestart: (reason) => {
          if (this.#state === "synced") this.#setState("stale", reason);
        },
        onStarted: ({ from, reason }) => {
          if (reason !== "bootstrap" && reason !== "start") {
            this.#emit({
              type: "watcher_restart",
              at: Date.now(),
              reason,
              fromRevision: from.kind === "seq" ? from.seq : 0,
            });
          }
        },
        onError: (message) => {
          this.#lastError = message;
          this.#emit({ type: "error", at: Date.now(), message });
        },
        onStreamInfo: (info) => this.#readStreamInfo(info),
      },
    });
  }

  /**
   * Starts the watcher and follows the connection's status. Called once by
   * `openCache()`; resolves when the first consumer exists.
   * @internal
   */
  async start(): Promise<void> {
    this.#followConnection();
    this.#d.region?.link.start((inSync) => this.#onHubLink(inSync));
    if (this.#o.reconcileMs > 0) this.#startReconcile();
    let from: StartFrom | "resume" = this.mode === "replica"
      ? { kind: "snapshot" }
      : { kind: "seq", seq: this.#d.info.state.last_seq + 1 };
    if (from.kind === "seq") this.#watcher.lastRevision = from.seq - 1;
    if (this.mode === "replica" && this.#o.snapshot) {
      if (await this.#loadSnapshot(this.#o.snapshot.path, this.#d.info.created)) from = "resume";
      this.#startSnapshotTimer();
    }
    this.#watching = this.#watcher.start(
      from,
      from === "resume" ? "warm start" : this.mode === "replica" ? "bootstrap" : "start",
    );
    try {
      await this.#watching;
    } catch (err) {
      const e = mapNatsError(err, `watch bucket "${this.bucket}"`, this.bucket);
      this.#ready.reject(e);
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
  async startUnbound(bind: () => Promise<CacheLink>, cause: UnavailableError): Promise<void> {
    this.#bound = false;
    this.#connected = false;
    this.#disconnectedAt = Date.now();
    if (!(await this.#loadSnapshot(this.#o.snapshot!.path, undefined))) throw cause;
    this.#lastError = `NATS unreachable at open: ${cause.message}`;
    this.#setState("stale", "NATS unreachable at open: serving the snapshot");
    this.#emit({ type: "disconnected", at: this.#disconnectedAt });
    this.#startSnapshotTimer();
    this.#binding = this.#bindLoop(bind);
  }

  /** Retries `bind` with jittered backoff until it succeeds and the watcher runs, or close. */
  async #bindLoop(bind: () => Promise<CacheLink>): Promise<void> {
    let backoffMs = 250;
    while (!this.#closed) {
      let link: CacheLink | undefined;
      try {
        link = await bind();
        if (!this.#closed) {
          await this.#attach(link);
          return;
        }
      } catch (err) {
        this.#lastError = `NATS unreachable since open: ${describe(err)}`;
      }
      if (link && this.#d.ownsConnection) await link.nc.close().catch(() => {});
      await pause(backoffMs / 2 + Math.random() * backoffMs / 2, this.#aborter.signal);
      backoffMs = Math.min(backoffMs * 2, 5_000);
    }
  }

  /** Takes the connection of a cache opened from its snapshot and resumes from it. */
  async #attach(link: CacheLink): Promise<void> {
    const { epoch, lastRevision } = this.#watcher;
    const unbound = this.#d;
    this.#d = { ...this.#d, ...link };
    const watcher = this.#newWatcher();
    // The snapshot's epoch: a recreated bucket makes the watcher resync (the
    // snapshot is thrown away) instead of merging revisions that do not compare.
    watcher.epoch = epoch;
    watcher.lastRevision = lastRevision;
    watcher.streamLastSeq = link.info.state.last_seq;
    this.#watcher = watcher;
    this.#connected = true;
    this.#watching = watcher.start("resume", "warm start (NATS reachable again)");
    try {
      await this.#watching;
    } catch (err) {
      this.#watching = undefined;
      this.#connected = false;
      this.#d = unbound;
      throw err;
    }
    this.#bound = true;
    this.#prefix = link.region?.writePrefix ?? this.#prefix;
    link.region?.link.start((inSync) => this.#onHubLink(inSync));
    this.#emit({ type: "connected", at: Date.now() });
    this.#followConnection();
    if (this.#o.reconcileMs > 0) this.#startReconcile();
  }

  ready(options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<void> {
    if (this.#isReady) return Promise.resolve();
    if (this.#closed) return Promise.reject(new ClosedError("wait for ready"));
    const { signal, timeoutMs } = options;
    if (signal === undefined && timeoutMs === undefined) return this.#ready.promise;
    return new Promise<void>((resolve, reject) => {
      const timer = timeoutMs === undefined ? undefined : setTimeout(() => {
        reject(new UnavailableError(`Cannot get ready: not synced within ${timeoutMs} ms`));
      }, timeoutMs);
      const onAbort = () => reject(signal!.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#ready.promise.then(resolve, reject).finally(() => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", onAbort);
      });
    });
  }

  // ---- reads ---------------------------------------------------------------

  async get(key: string, options?: GetOptions): Promise<T | undefined> {
    // The hit path: one lookup, one flag test; keys are validated on misses only.
    const store = this.#store;
    const i = store.find(key);
    if (i >= 0 && this.#fresh) {
      this.#hits++;
      return store.flagsAt(i) === 0 ? store.valueAt(i) as T : this.#hitValue(key, i);
    }
    const r = await this.#getSlow(key, i < 0 ? undefined : store.slotAt(i), options);
    return r === undefined ? undefined : r.value;
  }

  peek(key: string): T | undefined {
    const store = this.#store;
    const i = store.find(key);
    if (i < 0) return undefined;
    if (this.#fresh && store.flagsAt(i) === 0) {
      this.#hits++;
      return store.valueAt(i) as T;
    }
    const slot = store.slotAt(i);
    if (slot.deleted || !this.#servable()) return undefined;
    if (slot.raw !== undefined && !this.#decode(key, slot)) return undefined;
    if (this.#fresh) this.#hits++;
    else this.#staleHits++;
    return slot.value as T;
  }

  async getEntry(key: string, options?: GetOptions): Promise<Entry<T> | undefined> {
    const store = this.#store;
    const i = store.find(key);
    if (i >= 0 && this.#fresh) {
      this.#hits++;
      if (store.flagsAt(i) === 0) {
        return {
          key,
          value: store.valueAt(i) as T,
          revision: store.revAt(i),
          createdMs: store.createdAt(i),
          source: "hit",
          stale: false,
        };
      }
      const slot = store.slotAt(i);
      if (!this.#present(key, slot)) return undefined;
      return {
        key,
        value: slot.value as T,
        revision: slot.rev,
        createdMs: slot.created,
        source: "hit",
        stale: false,
      };
    }
    const r = await this.#getSlow(key, i < 0 ? undefined : store.slotAt(i), options);
    if (r === undefined) return undefined;
    return {
      key,
      value: r.value,
      revision: r.slot.rev,
      createdMs: r.slot.created,
      source: r.source,
      stale: r.source === "stale",
    };
  }

  /** The value of resident slot `i` that is a tombstone or not decoded yet (decodes it once). */
  #hitValue(key: string, i: number): T | undefined {
    const slot = this.#store.slotAt(i);
    if (!this.#present(key, slot)) return undefined;
    return slot.value as T;
  }

  async #getSlow(
    key: string,
    slot: Slot | undefined,
    options: GetOptions | undefined,
  ): Promise<{ value: T; slot: Slot; source: EntrySource } | undefined> {
    if (this.#closed) throw new ClosedError("get");
    assertKey(key, "get");
    this.#assertInFilter(key, "get");
    if (slot !== undefined && this.#servable()) {
      // Resident but not fresh: disconnected, restarting or resyncing.
      this.#staleHits++;
      if (!this.#present(key, slot)) return undefined;
      return { value: slot.value as T, slot, source: "stale" };
    }
    this.#misses++;
    if (this.mode === "replica" && this.#fresh && !this.#lossy) return undefined;
    let fetched = this.#flight.run(key, () => this.#fetch(key));
    if (options?.signal) fetched = abortable(fetched, options.signal);
    const got = await fetched;
    if (got === undefined || !this.#present(key, got)) return undefined;
    // A regional mirror cut off from the hub answers, but cannot vouch for it.
    const source = this.#d.region?.link.inSync === false ? "stale" : "miss";
    return { value: got.value as T, slot: got, source };
  }

  /** Whether resident entries may be served now (fresh, or stale within `staleIfErrorMs`). */
  #servable(): boolean {
    if (this.#fresh) return true;
    if (this.#state === "closed") return false;
    if (this.#state === "resyncing" && this.#resyncEpoch) return false;
    if (this.#connected || this.#o.staleIfErrorMs === Infinity) return true;
    return Date.now() - this.#disconnectedAt <= this.#o.staleIfErrorMs;
  }

  /** One miss: reserve the key, read KV (or the loader), keep the higher revision. */
  async #fetch(key: string): Promise<Slot | undefined> {
    if (!this.#connected) {
      if (this.#o.loader) return this.#load(key, false);
      throw new UnavailableError(`Cannot get "${key}": NATS is disconnected`);
    }
    // Rule 3 needs the watcher running before a fetched value may be cached.
    if (this.#watching) await this.#watching.catch(() => {});
    const reservation: Reservation = { rev: 0, created: 0, raw: undefined };
    this.#reservations.set(key, reservation);
    try {
      this.#fetches++;
      let entry: KvEntry | null;
      try {
        entry = await this.#d.kv.get(key);
      } catch (err) {
        if (this.#o.loader && !this.#connected) return this.#load(key, false);
        throw mapNatsError(err, `get "${key}"`, this.bucket, key);
      }
      if (entry === null && reservation.rev === 0 && this.#o.loader) {
        return await this.#load(key, true);
      }
      let rev = 0;
      let created = Date.now();
      let raw: Uint8Array | undefined;
      if (entry !== null) {
        rev = entry.revision;
        created = entry.created.getTime();
        raw = entry.operation === "PUT" ? entry.value : undefined;
      }
      if (reservation.rev > rev) {
        ({ rev, created, raw } = reservation);
      }
      return this.#keep(key, rev, created, raw);
    } finally {
      this.#reservations.delete(key);
    }
  }

  /** Stores a fetched result by the revision rule and returns what is resident (or would be). */
  #keep(key: string, rev: number, created: number, raw: Uint8Array | undefined, ttlMs = 0): Slot {
    if (this.mode === "replica" && this.#impliedAbsent(rev) && !this.#store.has(key)) {
      // The watcher applied this revision or a later one and holds nothing for
      // the key: it was deleted since (a stale answer, e.g. a lagging replica).
      return { rev, created, deleted: true, raw: undefined, value: undefined, size: 0, gen: 0 };
    }
    const res = this.#store.put(key, rev, created, raw, this.#gen, ttlMs);
    if (res === Applied.Stored && raw === undefined && this.mode === "replica") this.#tombstones++;
    if (res === Applied.Older || res === Applied.Stored) return this.#store.peek(key)!;
    // Not held: expired (absent), or too large to hold (served once, as a miss).
    const deleted = res === Applied.Expired || raw === undefined;
    return {
      rev,
      created,
      deleted,
      raw: deleted ? undefined : raw,
      value: undefined,
      size: 0,
      gen: 0,
    };
  }

  /** Asks the origin for a key absent from KV; optionally writes it back with create(). */
  async #load(key: string, connected: boolean): Promise<Slot | undefined> {
    const loader = this.#o.loader!;
    this.#loads++;
    // A loader that never settles must not hold the key's single-flight slot:
    // at the deadline (or on close) its signal aborts and the miss rejects.
    const ac = new AbortController();
    const ms = this.#o.loaderTimeoutMs;
    const timer = setTimeout(() => {
      ac.abort(new DOMException(`the loader did not settle within ${ms} ms`, "TimeoutError"));
    }, ms);
    const onClose = () => ac.abort(this.#aborter.signal.reason);
    this.#aborter.signal.addEventListener("abort", onClose, { once: true });
    let value: T | undefined;
    try {
      value = await abortable(
        Promise.resolve().then(() => loader(key, { signal: ac.signal })),
        ac.signal,
      );
    } catch (err) {
      throw new LoaderError(key, err);
    } finally {
      clearTimeout(timer);
      this.#aborter.signal.removeEventListener("abort", onClose);
    }
    // Rule 5: what the loader said during an outage is not checked against KV,
    // so it is dropped when the connection returns (see #revalidateOffline);
    // an answer that arrives after the return is served once and not kept.
    const unchecked = !connected && this.#connected;
    if (!connected && !unchecked) {
      this.#offline.add(key);
      // Bounded by the store: keys no longer held at revision 0 need no check.
      if (this.#offline.size > 2 * this.#store.size + 1_000) {
        for (const k of this.#offline) if (this.#store.peek(k)?.rev !== 0) this.#offline.delete(k);
      }
    }
    if (value === undefined) {
      if (unchecked) return undefined;
      return this.#keep(key, 0, Date.now(), undefined, this.#o.negativeTtlMs);
    }
    const { value: checked, bytes } = this.#encode(key, value, "load");
    if (unchecked) return looseSlot(checked);
    if (this.#o.writeBack && connected) {
      try {
        const rev = await this.#publish(key, bytes, "PUT", 0, `write back "${key}"`);
        this.#store.putValue(key, rev, Date.now(), checked, bytes.byteLength);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        // Somebody wrote the key meanwhile: theirs wins; read it.
        const entry = await this.#d.kv.get(key).catch((e) => {
          throw mapNatsError(e, `get "${key}"`, this.bucket, key);
        });
        if (entry !== null) {
          return this.#keep(
            key,
            entry.revision,
            entry.created.getTime(),
            entry.operation === "PUT" ? entry.value : undefined,
          );
        }
      }
      return this.#store.peek(key);
    }
    this.#store.putValue(key, 0, Date.now(), checked, bytes.byteLength);
    return this.#store.peek(key) ?? looseSlot(checked);
  }

  /** The connection is back: drop what the loader answered while it was down (rule 5). */
  #revalidateOffline(): void {
    for (const key of this.#offline) {
      if (this.#store.peek(key)?.rev === 0) this.#store.delete(key);
    }
    this.#offline.clear();
  }

  /**
   * Whether a slot holds a value to serve (decoding it first if needed):
   * false for a tombstone; a value the codec or schema refused is a
   * {@link DecodeError}, so that it does not pass for an absent key.
   */
  #present(key: string, slot: Slot): boolean {
    if (slot.raw !== undefined) this.#decode(key, slot);
    if (slot.rejected !== undefined) throw new DecodeError("get", key, slot.rev, slot.rejected);
    return !slot.deleted;
  }

  /** Decodes a slot's bytes once; a value failing the codec or schema becomes a tombstone. */
  #decode(key: string, slot: Slot): boolean {
    const raw = slot.raw!;
    slot.raw = undefined;
    try {
      let value: unknown = this.#o.codec.decode(raw);
      if (this.#o.schema) {
        const r = this.#o.schema.safeParse(value);
        if (!r.success) throw new Error(`schema: ${r.error.issues[0]?.message ?? "invalid"}`);
        value = r.data;
      }
      slot.value = value;
      this.#store.decoded(key, slot.rev, value);
      return true;
    } catch (err) {
      slot.deleted = true;
      slot.value = undefined;
      slot.rejected = err;
      this.#store.decoded(key, slot.rev, undefined, err);
      this.#rejected++;
      this.#emit({
        type: "rejected",
        at: Date.now(),
        key,
        revision: slot.rev,
        reason: describe(err),
      });
      return false;
    }
  }

  #assertInFilter(key: string, action: string): void {
    if (this.#o.keys !== ">" && !matchesFilter(this.#o.keys, key)) {
      throw new KeyError(
        `Cannot ${action}: key "${key}" is outside this cache's filter "${this.#o.keys}"`,
        key,
      );
    }
  }

  async *keys(filter?: string, options: { signal?: AbortSignal } = {}): AsyncIterable<string> {
    if (this.#closed) throw new ClosedError("list keys");
    const f = filter ?? this.#o.keys;
    assertFilter(f, "list keys");
    this.#assertUp("list keys");
    let it: AsyncIterable<string>;
    try {
      it = await this.#d.kv.keys(f);
    } catch (err) {
      throw mapNatsError(err, "list keys", this.bucket);
    }
    for await (const k of it) {
      if (options.signal?.aborted) return;
      if (this.#o.keys === ">" || matchesFilter(this.#o.keys, k)) yield k;
    }
  }

  async history(key: string, options: { signal?: AbortSignal } = {}): Promise<HistoryEntry<T>[]> {
    if (this.#closed) throw new ClosedError("read history");
    assertKey(key, "read history");
    this.#assertUp(`read history of "${key}"`);
    const out: HistoryEntry<T>[] = [];
    try {
      const it = await this.#d.kv.history({ key });
      for await (const e of it) {
        if (options.signal?.aborted) break;
        out.push({
          key: e.key,
          operation: e.operation,
          revision: e.revision,
          createdMs: e.created.getTime(),
          ...(e.operation === "PUT" ? { value: this.#decodeOrUndefined(e.value) } : {}),
        });
      }
    } catch (err) {
      throw mapNatsError(err, `read history of "${key}"`, this.bucket, key);
    }
    return out;
  }

  #decodeOrUndefined(raw: Uint8Array): T | undefined {
    try {
      const v = this.#o.codec.decode(raw);
      if (!this.#o.schema) return v;
      const r = this.#o.schema.safeParse(v);
      return r.success ? r.data : undefined;
    } catch {
      return undefined;
    }
  }

  changes(options: ChangesOptions = {}): AsyncIterableIterator<Change<T>> {
    if (this.#closed) throw new ClosedError("follow changes");
    const filter = options.filter;
    if (filter !== undefined) assertFilter(filter, "follow changes");
    if (options.fromRevision !== undefined) return this.#replay(options);
    const it = this.#changes.iterate(options);
    if (filter === undefined || filter === ">") return it;
    return filtered(it, (c) => matchesFilter(filter, c.key));
  }

  /** A dedicated watcher replaying from a revision, then following live changes. */
  #replay(options: ChangesOptions): AsyncIterableIterator<Change<T>> {
    const from = options.fromRevision!;
    if (!Number.isInteger(from) || from < 1) {
      throw new RangeError(
        `Cannot follow changes: "fromRevision" must be a positive integer, got ${from}`,
      );
    }
    const out = new Broadcast<Change<T>>();
    const it = out.iterate(options);
    let last = from - 1;
    let ended = false;
    let stopped = false;
    const watcher = new Watcher({
      nc: this.#d.nc,
      jsm: this.#d.jsm,
      bucket: this.bucket,
      filter: options.filter ?? this.#o.keys,
      heartbeatMs: this.#o.heartbeatMs,
      inboxPrefix: this.#d.inboxPrefix,
      handler: {
        onChange: (key, op, rev, created, data) => {
          last = rev;
          out.emit(this.#change(key, op, rev, created, data));
        },
        onCaughtUp: () => {},
        onResync: (req) => {
          if (req.epochChanged) {
            // Revisions start over in a recreated bucket: the replay cannot go
            // on, so it ends (the watcher stops once its consumer exists).
            ended = true;
            this.#lastError = `replay ended: ${req.reason}`;
            out.close();
          } else {
            this.#lastError = `replay resumed after revision ${last}: ${req.reason}`;
          }
          // Resume after what was delivered: the server starts at the oldest
          // revision it still has, never at revision 1 again.
          return { kind: "seq", seq: last + 1 };
        },
        onRestart: () => {},
        onStarted: () => {
          if (ended) stop();
        },
        onError: () => {
          if (ended) stop();
        },
        onStreamInfo: () => {},
      },
    });
    watcher.lastRevision = from - 1;
    watcher.epoch = undefined;
    // Every way the replay ends removes its listeners from the long-lived
    // signals, so a finished replay keeps nothing alive.
    const stop = () => {
      if (stopped) return;
      stopped = true;
      this.#aborter.signal.removeEventListener("abort", stop);
      options.signal?.removeEventListener("abort", stop);
      void watcher.close();
      out.close();
    };
    this.#aborter.signal.addEventListener("abort", stop, { once: true });
    options.signal?.addEventListener("abort", stop, { once: true });
    watcher.start({ kind: "seq", seq: from }, "replay").catch((err) => {
      this.#lastError = `replay failed: ${describe(err)}`;
      stop();
    });
    const ret = it.return!.bind(it);
    it.return = (v?: unknown) => {
      stop();
      return ret(v);
    };
    return it;
  }

  #change(key: string, op: Operation, rev: number, created: number, data: Uint8Array): Change<T> {
    const c: Change<T> = { key, operation: op, revision: rev, createdMs: created };
    if (op === "PUT") {
      const v = this.#decodeOrUndefined(data);
      if (v !== undefined) c.value = v;
    }
    return c;
  }

  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<CacheEvent> {
    return this.#events.iterate({ ...options, bufferSize: 10_000 });
  }

  stats(): CacheStats {
    const reads = this.#hits + this.#staleHits + this.#misses;
    return {
      hits: this.#hits,
      staleHits: this.#staleHits,
      misses: this.#misses,
      hitRatio: reads === 0 ? 0 : (this.#hits + this.#staleHits) / reads,
      fetches: this.#fetches,
      loads: this.#loads,
      evictions: this.#store.evictions,
      rejected: this.#rejected,
      entries: this.#store.size,
      bytes: this.#store.bytes,
      applied: this.#applied,
      lastRevision: this.#watcher.lastRevision,
      lagRevisions: this.#watcher.pending,
      lagMs: this.#lagMs(),
      resyncs: this.#resyncs,
    };
  }

  #lagMs(): number {
    if (this.#watcher.pending === 0 || this.#lastCreated === 0) return 0;
    return Math.max(0, Date.now() - this.#lastCreated);
  }

  status(): CacheStatus {
    const s: CacheStatus = {
      bucket: this.bucket,
      mode: this.mode,
      state: this.#state,
      connected: this.#connected,
      lastRevision: this.#watcher.lastRevision,
      lagRevisions: this.#watcher.pending,
      lagMs: this.#lagMs(),
      since: this.#since,
      resyncs: this.#resyncs,
      overflowed: this.#overflowed,
      bucketTtlMs: this.#bucketTtlMs,
      maxTtlMs: this.#o.maxTtlMs,
    };
    if (this.#lastError !== undefined) s.lastError = this.#lastError;
    if (this.#lastResyncReason !== undefined) s.lastResyncReason = this.#lastResyncReason;
    if (this.#d.region) s.region = this.#d.region.link.status();
    if (!this.#watcher.caughtUp && this.mode === "replica") {
      s.bootstrap = { applied: this.#bootstrapApplied, pending: this.#watcher.pending };
    }
    return s;
  }

  // ---- writes --------------------------------------------------------------

  async set(key: string, value: T, options: SetOptions = {}): Promise<number> {
    this.#assertWritable(key, "set");
    const { value: checked, bytes } = this.#encode(key, value, "set");
    const ttl = await this.#ttlFor(options.ttlMs, `set "${key}"`);
    const rev = await this.#publish(key, bytes, "PUT", undefined, `set "${key}"`, ttl);
    this.#store.putValue(key, rev, Date.now(), checked, bytes.byteLength);
    return rev;
  }

  async create(key: string, value: T, options: SetOptions = {}): Promise<number> {
    this.#assertWritable(key, "create");
    const { value: checked, bytes } = this.#encode(key, value, "create");
    const ttl = await this.#ttlFor(options.ttlMs, `create "${key}"`);
    let rev: number;
    try {
      rev = await this.#publish(key, bytes, "PUT", 0, `create "${key}"`, ttl);
    } catch (err) {
      if (!(err instanceof ConflictError)) throw err;
      // Present in the stream, but maybe only as a delete marker: then create over it.
      const last = await this.#d.kv.get(key).catch((e) => {
        throw mapNatsError(e, `create "${key}"`, this.bucket, key);
      });
      if (last === null || last.operation === "PUT") {
        throw new ConflictError(`Cannot create "${key}": the key exists`, { key, expected: 0 });
      }
      rev = await this.#publish(key, bytes, "PUT", last.revision, `create "${key}"`, ttl);
    }
    this.#store.putValue(key, rev, Date.now(), checked, bytes.byteLength);
    return rev;
  }

  async update(key: string, value: T, expectedRevision: number): Promise<number> {
    this.#assertWritable(key, "update");
    assertRevision(expectedRevision, "update");
    const { value: checked, bytes } = this.#encode(key, value, "update");
    const rev = await this.#publish(key, bytes, "PUT", expectedRevision, `update "${key}"`);
    this.#store.putValue(key, rev, Date.now(), checked, bytes.byteLength);
    return rev;
  }

  delete(key: string, options: DeleteOptions = {}): Promise<number> {
    return this.#remove(key, "DEL", options);
  }

  purge(key: string, options: DeleteOptions = {}): Promise<number> {
    return this.#remove(key, "PURGE", options);
  }

  async #remove(key: string, op: "DEL" | "PURGE", options: DeleteOptions): Promise<number> {
    const action = op === "DEL" ? "delete" : "purge";
    this.#assertWritable(key, action);
    if (options.expectedRevision !== undefined) assertRevision(options.expectedRevision, action);
    const rev = await this.#publish(
      key,
      undefined,
      op,
      options.expectedRevision,
      `${action} "${key}"`,
    );
    this.#applyDelete(key, rev, Date.now(), true);
    return rev;
  }

  readonly(): ReadonlyCache<T> {
    return readonlyView<T>(this);
  }

  #assertWritable(key: string, action: string): void {
    if (this.#closed) throw new ClosedError(action);
    assertKey(key, action);
    this.#assertInFilter(key, action);
    this.#assertUp(`${action} "${key}"`);
    this.#d.region?.link.assertReachable(`${action} "${key}"`);
  }

  #assertUp(action: string): void {
    if (!this.#connected) throw new UnavailableError(`Cannot ${action}: NATS is disconnected`);
  }

  /** Validates against the schema (before any I/O) and encodes. */
  #encode(key: string, value: T, action: string): { value: T; bytes: Uint8Array } {
    let checked = value;
    if (this.#o.schema) {
      const r = this.#o.schema.safeParse(value);
      if (!r.success) {
        throw new ValidationError(
          `Cannot ${action} "${key}": value does not match the schema`,
          r.error.issues.map((i) => ({
            path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
            message: i.message,
          })),
        );
      }
      checked = r.data;
    }
    let bytes: Uint8Array;
    try {
      bytes = this.#o.codec.encode(checked);
    } catch (err) {
      throw new ValidationError(
        `Cannot ${action} "${key}": the codec cannot encode the value`,
        [],
        {
          cause: err,
        },
      );
    }
    return { value: checked, bytes };
  }

  /**
   * The `Nats-TTL` value of a write with `ttlMs`, once the server and the
   * bucket are known to honour it: a 2.9 server would store the header and
   * never expire the key.
   */
  async #ttlFor(ttlMs: number | undefined, action: string): Promise<string | undefined> {
    if (ttlMs === undefined) return undefined;
    if (!Number.isFinite(ttlMs) || ttlMs < 1000) {
      throw new RangeError(`Cannot ${action}: "ttlMs" must be at least 1000, got ${ttlMs}`);
    }
    assertServerVersion(this.#d.nc, "per-key TTL", PER_KEY_TTL_VERSION, action);
    let config = this.#lastInfo?.config ?? this.#d.info.config;
    if (!config.subject_delete_marker_ttl) {
      // The bucket may have been given markers since it was last read.
      try {
        config = (await this.#d.jsm.streams.info(kvStreamName(this.bucket))).config;
      } catch (err) {
        throw mapNatsError(err, action, this.bucket);
      }
    }
    if (!config.allow_msg_ttl || !config.subject_delete_marker_ttl) {
      const version = serverVersion(this.#d.nc);
      throw new UnsupportedError(
        `Cannot ${action}: bucket "${this.bucket}" has no limit markers, so its edges would ` +
          `not see the key expire (create it with "create.markerTtlMs", or ` +
          `"nats kv add --marker-ttl")`,
        {
          feature: "per-key TTL",
          requiredVersion: PER_KEY_TTL_VERSION,
          ...(version ? { serverVersion: version } : {}),
        },
      );
    }
    return ttlHeaderValue(ttlMs);
  }

  async #publish(
    key: string,
    data: Uint8Array | undefined,
    op: Operation,
    expected: number | undefined,
    action: string,
    ttl?: string,
  ): Promise<number> {
    let h;
    if (op !== "PUT") {
      h = natsHeaders();
      h.set(KV_OPERATION_HEADER, op);
      if (op === "PURGE") h.set(ROLLUP_HEADER, ROLLUP_SUBJECT);
    }
    if (ttl !== undefined) {
      h ??= natsHeaders();
      h.set(TTL_HEADER, ttl);
      // No older revision may come back when this one expires.
      h.set(ROLLUP_HEADER, ROLLUP_SUBJECT);
    }
    try {
      const ack = await this.#d.js.publish(this.#prefix + key, data ?? new Uint8Array(0), {
        ...(h ? { headers: h } : {}),
        ...(expected !== undefined ? { expect: { lastSubjectSequence: expected } } : {}),
        timeout: this.#o.writeTimeoutMs,
      });
      return ack.seq;
    } catch (err) {
      if (isWrongLastSequence(err)) {
        throw new ConflictError(
          expected === 0
            ? `Cannot ${action}: the key exists`
            : `Cannot ${action}: the key is not at revision ${expected}`,
          { key, expected, cause: err },
        );
      }
      throw mapNatsError(err, action, this.bucket, key);
    }
  }

  // ---- the watcher's side ----------------------------------------------------

  #onChange(
    key: string,
    op: Operation,
    rev: number,
    created: number,
    data: Uint8Array,
    _pending: number,
  ): void {
    this.#applied++;
    this.#lastCreated = created;
    if (!this.#watcher.caughtUp && ++this.#bootstrapApplied % BOOTSTRAP_EVENT_EVERY === 0) {
      this.#emit({
        type: "bootstrap",
        at: Date.now(),
        applied: this.#bootstrapApplied,
        pending: this.#watcher.pending,
      });
    }
    if (this.mode === "replica" || this.#store.has(key)) {
      // The store keeps its own compact copy of `data`.
      if (op === "PUT") this.#store.put(key, rev, created, data, this.#gen);
      else this.#applyDelete(key, rev, created);
    }
    // Rule 3 in both modes: a miss in flight keeps the higher of its answer and this.
    if (this.#reservations.size > 0) {
      const r = this.#reservations.get(key);
      if (r !== undefined && rev > r.rev) {
        r.rev = rev;
        r.created = created;
        r.raw = op === "PUT" ? data.slice() : undefined;
      }
    }
    if (this.#changes.active) this.#changes.emit(this.#change(key, op, rev, created, data));
  }

  #applyDelete(key: string, rev: number, created: number, own = false): void {
    if (
      this.mode === "replica" && !this.#lossy &&
      (this.#impliedAbsent(rev) || (!own && !this.#o.allowDirect))
    ) {
      // No slot says "absent" as well as a tombstone here: the watcher will
      // bring nothing older for the key, and a miss in flight holds a
      // reservation (rule 3) while a later one reads the leader, which has
      // this delete. A complete replica answers such misses itself.
      const held = this.#store.peek(key);
      if (held === undefined || held.rev <= rev) this.#store.delete(key);
      return;
    }
    // Rule 2: an own delete the watcher has not reached yet (it may still
    // deliver an earlier PUT), a lazy cache's delete, or a replica's delete
    // while direct gets may answer from a lagging replica, leaves a
    // tombstone; a replica drops it when the watcher has passed it.
    if (this.#store.put(key, rev, created, undefined, this.#gen) === Applied.Stored) {
      if (this.mode === "replica") this.#tombstones++;
    }
  }

  /**
   * Whether a complete replica answers "absent at revision `rev`" for a key it
   * has no slot for: every change up to the watcher's revision is applied, so
   * a missing slot means deleted (or never written) as of then.
   */
  #impliedAbsent(rev: number): boolean {
    return this.#complete && !this.#lossy && rev <= this.#watcher.lastRevision;
  }

  #onCaughtUp(rev: number): void {
    if (this.#resyncing) {
      this.#resyncing = false;
      this.#resyncEpoch = false;
      if (this.mode === "replica") this.#store.sweep(this.#gen, this.#sweepBefore);
    }
    if (this.mode === "replica") {
      this.#complete = true;
      // Tombstones the watcher has passed say nothing a missing slot does not.
      if (this.#tombstones > 0 && !this.#lossy) {
        this.#store.dropTombstones(this.#watcher.lastRevision);
        this.#tombstones = 0;
      }
    }
    this.#bootstrapApplied = 0;
    if (this.#gapFloor > 0) {
      this.#store.dropBelow(this.#gapFloor);
      this.#gapFloor = 0;
    }
    this.#sweepGone();
    if (this.#d.region?.link.inSync === false) {
      if (this.#connected) this.#setState("stale", "the regional mirror cannot reach the hub");
    } else if (this.#connected) this.#setState("synced", `caught up at revision ${rev}`);
    if (!this.#isReady) {
      this.#isReady = true;
      this.#ready.resolve();
    }
  }

  #onResync(reason: string, epochChanged: boolean): StartFrom {
    this.#resyncs++;
    this.#lastResyncReason = reason;
    this.#gapFloor = 0; // a resync rebuilds from the stream as it is now
    this.#resyncing = true;
    this.#resyncEpoch = epochChanged;
    this.#setState("resyncing", reason);
    this.#emit({ type: "resync", at: Date.now(), reason });
    const last = this.#lastInfo?.state.last_seq ?? 0;
    this.#sweepBefore = last + 1;
    if (epochChanged || this.mode === "lazy") {
      this.#store.clear();
      this.#complete = false;
    }
    this.#gen++;
    if (this.mode === "replica") return { kind: "snapshot" };
    return { kind: "seq", seq: last + 1 };
  }

  /** A regional mirror lost or regained the hub: fresh only while it is in sync. */
  #onHubLink(inSync: boolean): void {
    if (!inSync) {
      if (this.#state === "synced") {
        this.#setState("stale", "the regional mirror cannot reach the hub");
      }
    } else if (
      this.#state === "stale" && this.#connected && this.#watcher.caughtUp &&
      !this.#watcher.restarting
    ) {
      this.#setState("synced", "the regional mirror reaches the hub again");
    }
  }

  #readStreamInfo(info: StreamInfo): void {
    this.#lastInfo = info;
    const ttl = Math.floor((info.config.max_age ?? 0) / 1e6);
    this.#bucketTtlMs = ttl;
    this.#store.bucketTtlMs = ttl;
    // Entries older than the stream's first message are gone from the bucket (a
    // purge or a limit removed them without a marker) unless the watcher brings
    // a newer revision: sweep once it has caught up.
    this.#dropBelow = info.state.first_seq;
    if (this.#watcher?.caughtUp && !this.#watcher.restarting) this.#sweepGone();
  }

  #sweepGone(): void {
    if (this.#dropBelow > 1 && this.#isReady) this.#store.dropBelow(this.#dropBelow);
    this.#dropBelow = 0;
  }

  /**
   * Periodic reconciliation: a stream purge, a recreated bucket or a lost tail
   * produce no watcher event, so the stream's state is compared now and then.
   */
  #startReconcile(): void {
    this.#reconcileTimer = setInterval(async () => {
      if (!this.#fresh || this.#watcher.restarting) return;
      try {
        const info = await this.#d.jsm.streams.info(kvStreamName(this.bucket));
        if (this.#closed) return;
        if (
          info.created !== this.#watcher.epoch || info.state.last_seq < this.#watcher.lastRevision
        ) {
          this.#watcher.restart("reconciliation found the stream changed");
        } else {
          this.#readStreamInfo(info);
        }
      } catch (err) {
        const e = mapNatsError(err, "reconcile", this.bucket);
        if (e instanceof BucketNotFoundError) this.#watcher.restart("bucket not found");
      }
    }, this.#o.reconcileMs);
    unref(this.#reconcileTimer);
  }

  #onEvicted(key: string, reason: "evict" | "too_large"): void {
    if (this.mode === "replica" && !this.#overflowed) {
      this.#overflowed = true;
      this.#lossy = true;
      this.#emit({ type: "overflow", at: Date.now(), entries: this.#store.size });
    }
    if (this.#events.active || this.#o.onEvent) {
      this.#emit({
        type: "evicted",
        at: Date.now(),
        key,
        reason: reason === "evict" ? "bounds" : "too large",
      });
    }
  }

  #setState(state: CacheState, reason: string): void {
    if (this.#state === state || this.#state === "closed") return;
    this.#state = state;
    this.#since = Date.now();
    this.#fresh = state === "synced";
    if (state === "synced") {
      this.#emit({ type: "synced", at: this.#since, revision: this.#watcher.lastRevision });
    } else if (state === "stale") {
      this.#emit({ type: "stale", at: this.#since, reason });
    }
  }

  #emit(event: CacheEvent): void {
    if (this.#o.onEvent) {
      try {
        this.#o.onEvent(event);
      } catch {
        // A logging hook must not break the cache.
      }
    }
    this.#events.emit(event);
  }

  #followConnection(): void {
    const nc = this.#d.nc;
    const status = nc.status();
    // nats.js's status iterator has stop(); close() ends the loop with it, so a
    // shared connection keeps no listener of a closed (or never opened) cache.
    this.#stopStatus = () => (status as { stop?: () => void }).stop?.();
    (async () => {
      for await (const s of status) {
        if (this.#closed) return;
        if (s.type === "disconnect") {
          if (!this.#connected) continue;
          this.#connected = false;
          this.#disconnectedAt = Date.now();
          this.#watcher.disconnected();
          this.#setState("stale", "NATS disconnected");
          this.#emit({ type: "disconnected", at: this.#disconnectedAt });
        } else if (s.type === "error") {
          // e.g. a permissions violation on the watcher's subjects: say so.
          this.#lastError = describe(s.error);
          this.#emit({ type: "error", at: Date.now(), message: this.#lastError });
        } else if (s.type === "reconnect") {
          this.#connected = true;
          this.#revalidateOffline();
          this.#emit({ type: "connected", at: Date.now() });
          this.#watcher.reconnected();
        }
      }
    })().catch(() => {});
    nc.closed().then(() => {
      if (this.#closed) return;
      this.#connected = false;
      this.#disconnectedAt ||= Date.now();
      this.#setState("stale", "NATS connection closed");
    });
  }

  // ---- warm start ------------------------------------------------------------

  /** Loads a snapshot into the store (served as stale until caught up); false if refused. */
  async #loadSnapshot(path: string, epoch: string | undefined): Promise<boolean> {
    const store = this.#store;
    const gen = this.#gen;
    const snap = await loadSnapshot(path, this.bucket, this.#o.keys, {
      accept: (header) =>
        epoch === undefined || header.epoch === epoch
          ? undefined
          : `bucket was recreated since the snapshot (epoch ${header.epoch})`,
      // Straight into the store, which keeps its own compact copy of each value.
      onRecord: (key, rev, created, value) => store.put(key, rev, created, value, gen),
    });
    if (!snap.ok) {
      this.#emit({ type: "snapshot", at: Date.now(), action: "ignored", detail: snap.reason });
      return false;
    }
    const { header } = snap;
    if (header.partial) this.#lossy = true;
    this.#watcher.lastRevision = header.lastRevision;
    this.#watcher.epoch = header.epoch;
    this.#savedRevision = header.lastRevision;
    this.#emit({
      type: "snapshot",
      at: Date.now(),
      action: "loaded",
      detail: `${header.count} entries at revision ${header.lastRevision}`,
    });
    return true;
  }

  #startSnapshotTimer(): void {
    const every = this.#o.snapshot!.intervalMs;
    if (every <= 0) return;
    this.#snapshotTimer = setInterval(() => {
      if (this.#fresh) this.saveSnapshot().catch(() => {});
    }, every);
    unref(this.#snapshotTimer);
  }

  /**
   * Writes the replica to the snapshot file now (only when synced and changed
   * since the last save). Resolves to whether a file was written.
   * @internal
   */
  async saveSnapshot(): Promise<boolean> {
    const snap = this.#o.snapshot;
    if (!snap || !this.#isReady || this.#resyncing) return false;
    const rev = this.#watcher.lastRevision;
    if (rev === this.#savedRevision) return false;
    const codec = this.#o.codec;
    const store = this.#store;
    // Values never read are written as held (encoded), without a copy each.
    const records: SnapshotSource = (add) =>
      store.forEach((key, rev, created, flags, value) => {
        if ((flags & SlotFlag.Deleted) !== 0 || rev === 0) return;
        add(
          key,
          rev,
          created,
          (flags & SlotFlag.Raw) !== 0 ? value as string | Uint8Array : codec.encode(value as T),
        );
      });
    try {
      const header = await writeSnapshot(snap.path, {
        bucket: this.bucket,
        filter: this.#o.keys,
        epoch: this.#lastInfo?.created ?? this.#d.info.created,
        lastRevision: rev,
        partial: this.#overflowed,
      }, records);
      this.#savedRevision = rev;
      this.#emit({
        type: "snapshot",
        at: Date.now(),
        action: "saved",
        detail: `${header.count} entries at revision ${rev}`,
      });
      return true;
    } catch (err) {
      this.#lastError = `snapshot not saved: ${describe(err)}`;
      this.#emit({ type: "error", at: Date.now(), message: this.#lastError });
      return false;
    }
  }

  // ---- lifecycle -------------------------------------------------------------

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      if (this.#snapshotTimer !== undefined) clearInterval(this.#snapshotTimer);
      if (this.#reconcileTimer !== undefined) clearInterval(this.#reconcileTimer);
      this.#d.region?.link.close();
      if (this.#o.snapshot && this.#fresh) await this.saveSnapshot();
      this.#closed = true;
      this.#stopStatus?.();
      this.#aborter.abort(new ClosedError("continue"));
      this.#ready.reject(new ClosedError("wait for ready"));
      await this.#binding;
      await this.#watcher.close().catch(() => {});
      this.#setState("closed", "closed");
      this.#state = "closed";
      this.#fresh = false;
      this.#changes.close();
      this.#events.close();
      this.#store.clear();
      if (this.#bound && this.#d.ownsConnection && !this.#d.nc.isClosed()) {
        // drain() waits for the server; while it is unreachable, just close.
        if (this.#connected) await this.#d.nc.drain().catch(() => this.#d.nc.close());
        else await this.#d.nc.close();
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function assertRevision(rev: unknown, action: string): void {
  if (!Number.isSafeInteger(rev) || (rev as number) < 0) {
    throw new RangeError(
      `Cannot ${action}: a revision must be a non-negative integer, got ${String(rev)}`,
    );
  }
}

/** A slot that is served once and not held. */
function looseSlot(value: unknown): Slot {
  return { rev: 0, created: Date.now(), deleted: false, raw: undefined, value, size: 0, gen: 0 };
}

/** Waits `ms`, or less if `signal` aborts; never rejects. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (signal.aborted) done();
    else signal.addEventListener("abort", done, { once: true });
  });
}

/** Rejects when `signal` aborts; the shared fetch goes on for others. */
function abortable<V>(p: Promise<V>, signal: AbortSignal): Promise<V> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

async function* filteredGen<V>(it: AsyncIterableIterator<V>, keep: (v: V) => boolean) {
  try {
    for await (const v of it) if (keep(v)) yield v;
  } finally {
    await it.return?.();
  }
}

function filtered<V>(
  it: AsyncIterableIterator<V>,
  keep: (v: V) => boolean,
): AsyncIterableIterator<V> {
  return filteredGen(it, keep);
}

/** A view with only the read side; the write methods are not there at all. */
function readonlyView<T>(c: ReadonlyCache<T>): ReadonlyCache<T> {
  return {
    get bucket() {
      return c.bucket;
    },
    get mode() {
      return c.mode;
    },
    ready: (o) => c.ready(o),
    get: (k, o) => c.get(k, o),
    peek: (k) => c.peek(k),
    getEntry: (k, o) => c.getEntry(k, o),
    keys: (f, o) => c.keys(f, o),
    history: (k, o) => c.history(k, o),
    changes: (o) => c.changes(o),
    events: (o) => c.events(o),
    stats: () => c.stats(),
    status: () => c.status(),
    close: () => c.close(),
    [Symbol.asyncDispose]: () => c.close(),
  };
}
