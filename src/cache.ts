/**
 * The cache: a facade over its parts, each a file under `src/cache/` with one
 * job (see docs/architecture.md). A hit is answered here, inline, without
 * calling into a part; everything else is delegated.
 *
 * @module
 */
import type { KvEntry } from "@nats-io/kv";
import { Bookmark } from "./bookmark.ts";
import { ClosedError, TooLargeError, UnavailableError } from "./errors.ts";
import { mapNatsError } from "./errors_map.ts";
import { assertFilter, assertKey, matchesFilter } from "./keys.ts";
import type { LocalStore } from "./local_store.ts";
import { SlotFlag } from "./slot.ts";
import { abortable, deadline, DeadlineError, settleWithin } from "./async.ts";
import { SYNC_HIT, type SyncHitSource } from "./sync_hit.ts";
import type {
  Cache,
  CacheEvent,
  CacheMode,
  CacheStats,
  CacheStatus,
  Change,
  ChangesOptions,
  DeleteOptions,
  Entry,
  GetOptions,
  HistoryEntry,
  ReadonlyCache,
  ReadyOptions,
  SetOptions,
} from "./types.ts";
import { appliedThrough, getAtLeast, revisionAsked, waitApplied } from "./cache/at_least.ts";
import {
  assertUp,
  CacheCore,
  type CacheDeps,
  type CacheLink,
  decodeOrUndefined,
  listsLocally,
} from "./cache/core.ts";
import { decode, getSlow, hitValue, present } from "./cache/read_path.ts";
import type { Reached } from "./cache/reached.ts";
import { filtered, replay } from "./cache/replay.ts";
import { installWatcher, onEvicted, readStreamInfo, start, startUnbound } from "./cache/sync.ts";
import { servable, transition } from "./cache/sync_state.ts";
import { saveSnapshot } from "./cache/warm_start.ts";
import { create, remove, set, update } from "./cache/writer.ts";

export type { CacheDeps, CacheLink } from "./cache/core.ts";

/**
 * The implementation behind `openCache()`. Constructing it does no I/O;
 * `openCache()` calls {@link KvedgeCache.start}.
 */
export class KvedgeCache<T> implements Cache<T> {
  readonly bucket: string;
  readonly mode: CacheMode;
  readonly #c: CacheCore<T>;
  // The hit path reads these three fields and nothing else.
  readonly #store: LocalStore;
  readonly #reachedRev: Reached;
  #fresh = false;
  #hits = 0;
  #closing: Promise<void> | undefined;
  #bookmark: Bookmark = Bookmark.EMPTY;

  /** Wires the parts together; no I/O. */
  constructor(deps: CacheDeps<T>) {
    const c: CacheCore<T> = new CacheCore(deps, (key, reason) => onEvicted(c, key, reason));
    c.onFresh = (fresh) => {
      this.#fresh = fresh;
      // Bookmarked reads wait for "applied up to"; synced is when it is known.
      if (fresh) c.reached.advance(c.watcher.lastRevision);
      else c.reached.applied = 0;
    };
    this.#c = c;
    this.#store = c.store;
    this.#reachedRev = c.reached;
    this.bucket = c.bucket;
    this.mode = c.mode;
    readStreamInfo(c, deps.info);
    installWatcher(c, { epoch: deps.info.created, streamLastSeq: deps.info.state.last_seq });
  }

  /**
   * Starts the watcher and follows the connection's status. Called once by
   * `openCache()`; resolves when the first consumer exists.
   * @internal
   */
  start(): Promise<void> {
    return start(this.#c);
  }

  /**
   * Starts a replica whose connection or bucket is unreachable at open from its
   * warm-start snapshot: serves the snapshot marked stale (not synced) and
   * binds in the background once NATS answers, then resumes after checking the
   * snapshot's epoch against the stream. Rejects with `cause` if there is no
   * usable snapshot. Called once by `openCache()` instead of {@link start}.
   * @internal
   */
  startUnbound(bind: () => Promise<CacheLink>, cause: UnavailableError): Promise<void> {
    return startUnbound(this.#c, bind, cause);
  }

  ready(options: ReadyOptions = {}): Promise<void> {
    const rev = revisionAsked(this.bucket, options.atLeast);
    if (rev > 0) return this.#readyAt(rev, options);
    if (this.#c.isReady) return Promise.resolve();
    if (this.#c.closed) return Promise.reject(new ClosedError("wait for ready"));
    const { signal, timeoutMs } = options;
    if (signal === undefined && timeoutMs === undefined) return this.#c.ready.promise;
    const ready = this.#c.ready.promise;
    if (timeoutMs === undefined) return abortable(ready, signal!);
    return deadline(ready, timeoutMs, { signal }).catch((err) => {
      throw err instanceof DeadlineError
        ? new UnavailableError(`Cannot get ready: not synced within ${timeoutMs} ms`)
        : err;
    });
  }

  async #readyAt(rev: number, options: ReadyOptions): Promise<void> {
    const started = Date.now();
    const { signal, timeoutMs } = options;
    await this.ready({ signal, timeoutMs });
    await waitApplied(this.#c, rev, {
      signal,
      ...(timeoutMs === undefined ? {} : { timeoutMs: timeoutMs - (Date.now() - started) }),
    });
  }

  bookmark(): Bookmark {
    const rev = appliedThrough(this.#c);
    if (rev !== this.#bookmark.revision(this.bucket)) {
      this.#bookmark = rev > 0 ? Bookmark.of(this.bucket, rev) : Bookmark.EMPTY;
    }
    return this.#bookmark;
  }

  // ---- reads ---------------------------------------------------------------

  async get(key: string, options?: GetOptions): Promise<T | undefined> {
    // The hit path: one lookup, one flag test; keys are validated on misses only.
    const store = this.#store;
    const i = store.find(key);
    if (i >= 0 && this.#fresh && (options?.atLeast === undefined || this.#reached(i, options))) {
      this.#hits++;
      return store.flagsAt(i) === 0 ? store.valueAt(i) as T : hitValue(this.#c, key, i);
    }
    if (options?.atLeast !== undefined) {
      const rev = revisionAsked(this.bucket, options.atLeast);
      if (rev > 0) {
        const a = await getAtLeast(this.#c, key, rev, options, this.#countHit);
        return a === undefined ? undefined : a.value;
      }
    }
    const r = await getSlow(this.#c, key, i < 0 ? undefined : store.slotAt(i), options);
    return r === undefined ? undefined : r.value;
  }

  /** Whether resident slot `i` of a fresh cache answers a read with `atLeast` (rule 8). */
  #reached(i: number, options: GetOptions): boolean {
    const a = options.atLeast!;
    const rev = typeof a === "number" ? a : a.revision(this.bucket);
    // A bad number goes to the slow path, which says what is wrong with it.
    if (!Number.isSafeInteger(rev) || rev < 0) return false;
    return this.#reachedRev.applied >= rev || this.#store.revAt(i) >= rev;
  }

  readonly #countHit = (): void => {
    this.#hits++;
  };

  peek(key: string): T | undefined {
    const store = this.#store;
    const i = store.find(key);
    if (i < 0) return undefined;
    if (this.#fresh && store.flagsAt(i) === 0) {
      this.#hits++;
      return store.valueAt(i) as T;
    }
    const slot = store.slotAt(i);
    if (slot.deleted || !servable(this.#c)) return undefined;
    if (slot.raw !== undefined && !decode(this.#c, key, slot)) return undefined;
    if (this.#fresh) this.#hits++;
    else this.#c.counters.add("staleHits");
    return slot.value as T;
  }

  /**
   * The GET fast path's hit without a promise (`src/sync_hit.ts`): the same
   * entry `getEntry(key)` would answer for a fresh, resident, decoded value,
   * counted the same; `undefined` for anything else.
   * @internal
   */
  [SYNC_HIT](key: string): Entry<T> | undefined {
    const store = this.#store;
    const i = store.find(key);
    if (i < 0 || !this.#fresh || store.flagsAt(i) !== 0) return undefined;
    this.#hits++;
    return {
      key,
      value: store.valueAt(i) as T,
      revision: store.revAt(i),
      createdMs: store.createdAt(i),
      source: "hit",
      stale: false,
    };
  }

  async getEntry(key: string, options?: GetOptions): Promise<Entry<T> | undefined> {
    const store = this.#store;
    const i = store.find(key);
    if (i >= 0 && this.#fresh && (options?.atLeast === undefined || this.#reached(i, options))) {
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
      if (!present(this.#c, key, slot)) return undefined;
      return {
        key,
        value: slot.value as T,
        revision: slot.rev,
        createdMs: slot.created,
        source: "hit",
        stale: false,
      };
    }
    if (options?.atLeast !== undefined) {
      const rev = revisionAsked(this.bucket, options.atLeast);
      if (rev > 0) {
        const a = await getAtLeast(this.#c, key, rev, options, this.#countHit);
        if (a === undefined) return undefined;
        const e: Entry<T> = {
          key,
          value: a.value,
          revision: a.slot.rev,
          createdMs: a.slot.created,
          source: a.source,
          stale: a.source === "stale",
        };
        if (a.belowBookmark) e.belowBookmark = true;
        return e;
      }
    }
    const r = await getSlow(this.#c, key, i < 0 ? undefined : store.slotAt(i), options);
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

  async *keys(filter?: string, options: { signal?: AbortSignal } = {}): AsyncIterable<string> {
    if (this.#c.closed) throw new ClosedError("list keys");
    const f = filter ?? this.#c.o.keys;
    assertFilter(f, "list keys");
    const signal = options.signal;
    if (listsLocally(this.#c)) {
      // Collected first: the store may change while the caller awaits between keys.
      const found: string[] = [];
      this.#store.forEach((k, _rev, _created, flags) => {
        // A value the codec refused is still a key KV holds (a PUT).
        const present = (flags & SlotFlag.Deleted) === 0 || (flags & SlotFlag.Rejected) !== 0;
        if (present && (f === ">" || matchesFilter(f, k))) found.push(k);
      });
      for (const k of found) {
        if (signal?.aborted) return;
        yield k;
      }
      return;
    }
    assertUp(this.#c, "list keys");
    let it: AsyncIterable<string> & { stop?: () => void };
    try {
      it = await this.#c.d.kv.keys(f);
    } catch (err) {
      throw mapNatsError(err, "list keys", this.bucket);
    }
    // An abort stops the consumer at once, also while no key is arriving.
    const stop = () => it.stop?.();
    signal?.addEventListener("abort", stop, { once: true });
    try {
      if (signal?.aborted) return;
      for await (const k of it) {
        if (signal?.aborted) return;
        if (this.#c.o.keys === ">" || matchesFilter(this.#c.o.keys, k)) yield k;
      }
    } finally {
      signal?.removeEventListener("abort", stop);
      stop();
    }
  }

  async history(
    key: string,
    options: { signal?: AbortSignal; maxBytes?: number } = {},
  ): Promise<HistoryEntry<T>[]> {
    if (this.#c.closed) throw new ClosedError("read history");
    assertKey(key, "read history");
    assertUp(this.#c, `read history of "${key}"`);
    const { signal, maxBytes = Infinity } = options;
    const out: HistoryEntry<T>[] = [];
    let bytes = 0;
    let it: (AsyncIterable<KvEntry> & { stop?: () => void }) | undefined;
    try {
      it = await this.#c.d.kv.history({ key });
      for await (const e of it) {
        if (signal?.aborted) break;
        bytes += e.value.byteLength;
        if (bytes > maxBytes) throw new TooLargeError(`read history of "${key}"`, maxBytes);
        out.push({
          key: e.key,
          operation: e.operation,
          revision: e.revision,
          createdMs: e.created.getTime(),
          ...(e.operation === "PUT" ? { value: decodeOrUndefined(this.#c, e.value) } : {}),
        });
      }
    } catch (err) {
      if (err instanceof TooLargeError) throw err;
      throw mapNatsError(err, `read history of "${key}"`, this.bucket, key);
    } finally {
      it?.stop?.();
    }
    return out;
  }

  changes(options: ChangesOptions = {}): AsyncIterableIterator<Change<T>> {
    if (this.#c.closed) throw new ClosedError("follow changes");
    const filter = options.filter;
    if (filter !== undefined) assertFilter(filter, "follow changes");
    if (options.fromRevision !== undefined) return replay(this.#c, options);
    const it = this.#c.changes.iterate(options);
    if (filter === undefined || filter === ">") return it;
    return filtered(it, (c) => matchesFilter(filter, c.key));
  }

  events(options: { signal?: AbortSignal } = {}): AsyncIterableIterator<CacheEvent> {
    return this.#c.events.iterate({ ...options, bufferSize: 10_000, action: "follow events" });
  }

  stats(): CacheStats {
    const reads = this.#hits + this.#c.counters.get("staleHits") + this.#c.counters.get("misses");
    return {
      hits: this.#hits,
      staleHits: this.#c.counters.get("staleHits"),
      misses: this.#c.counters.get("misses"),
      shedMisses: this.#c.counters.get("shedMisses"),
      hitRatio: reads === 0 ? 0 : (this.#hits + this.#c.counters.get("staleHits")) / reads,
      fetches: this.#c.counters.get("fetches"),
      loads: this.#c.counters.get("loads"),
      evictions: this.#store.evictions,
      negativeEvictions: this.#store.negativeEvictions,
      rejected: this.#c.counters.get("rejected"),
      entries: this.#store.size,
      bytes: this.#store.bytes,
      applied: this.#c.counters.get("applied"),
      lastRevision: this.#c.watcher.lastRevision,
      lagRevisions: this.#c.watcher.pending,
      lagMs: this.#lagMs(),
      resyncs: this.#c.resyncs,
    };
  }

  #lagMs(): number {
    if (this.#c.watcher.pending === 0 || this.#c.lastCreated === 0) return 0;
    return Math.max(0, Date.now() - this.#c.lastCreated);
  }

  status(): CacheStatus {
    const s: CacheStatus = {
      bucket: this.bucket,
      mode: this.mode,
      state: this.#c.state,
      connected: this.#c.connected,
      lastRevision: this.#c.watcher.lastRevision,
      lagRevisions: this.#c.watcher.pending,
      lagMs: this.#lagMs(),
      since: this.#c.since,
      resyncs: this.#c.resyncs,
      overflowed: this.#c.overflowed,
      listing: listsLocally(this.#c) ? "local" : "kv",
      bucketTtlMs: this.#c.bucketTtlMs,
      maxTtlMs: this.#c.o.maxTtlMs,
    };
    if (this.#c.lastError !== undefined) s.lastError = this.#c.lastError;
    if (this.#c.lastResyncReason !== undefined) s.lastResyncReason = this.#c.lastResyncReason;
    if (this.#c.d.region) s.region = this.#c.d.region.link.status();
    if (!this.#c.watcher.caughtUp && this.mode === "replica") {
      s.bootstrap = {
        applied: this.#c.counters.get("bootstrapApplied"),
        pending: this.#c.watcher.pending,
      };
    }
    return s;
  }

  // ---- writes --------------------------------------------------------------

  set(key: string, value: T, options: SetOptions = {}): Promise<number> {
    return set(this.#c, key, value, options);
  }

  create(key: string, value: T, options: SetOptions = {}): Promise<number> {
    return create(this.#c, key, value, options);
  }

  update(key: string, value: T, expectedRevision: number): Promise<number> {
    return update(this.#c, key, value, expectedRevision);
  }

  delete(key: string, options: DeleteOptions = {}): Promise<number> {
    return remove(this.#c, key, "DEL", options);
  }

  purge(key: string, options: DeleteOptions = {}): Promise<number> {
    return remove(this.#c, key, "PURGE", options);
  }

  readonly(): ReadonlyCache<T> {
    return readonlyView<T>(this);
  }

  /**
   * Writes the replica to the snapshot file now (only when synced and changed
   * since the last save). Resolves to whether a file was written.
   * @internal
   */
  saveSnapshot(): Promise<boolean> {
    return saveSnapshot(this.#c);
  }

  // ---- lifecycle -------------------------------------------------------------

  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = (async () => {
      if (this.#c.snapshotTimer !== undefined) clearInterval(this.#c.snapshotTimer);
      if (this.#c.reconcileTimer !== undefined) clearInterval(this.#c.reconcileTimer);
      this.#c.d.region?.link.close();
      // Local work, not a wait on NATS: outside the close deadline.
      if (this.#c.o.snapshot && this.#fresh) await this.saveSnapshot();
      // From here every wait on NATS shares one deadline (closeTimeoutMs): a
      // server that keeps the TCP connection up but answers nothing (paused,
      // overloaded) must not hold up the close. What is cut short is best
      // effort anyway: the server drops an inactive consumer by itself.
      const deadline = Date.now() + this.#c.o.closeTimeoutMs;
      const left = () => Math.max(0, deadline - Date.now());
      transition(this.#c, { on: "closing" });
      this.#c.reached.wakeAll();
      this.#c.stopStatus?.();
      this.#c.aborter.abort(new ClosedError("continue"));
      this.#c.ready.reject(new ClosedError("wait for ready"));
      if (this.#c.binding) await settleWithin(this.#c.binding, left());
      await settleWithin(this.#c.watcher.close(), left());
      transition(this.#c, { on: "closed" });
      this.#c.changes.close();
      this.#c.events.close();
      this.#store.clear();
      if (this.#c.bound && this.#c.d.ownsConnection && !this.#c.d.nc.isClosed()) {
        const nc = this.#c.d.nc;
        // drain() waits for the server: while it is unreachable just close,
        // and a drain the server leaves unanswered is cut at the deadline.
        const drained = this.#c.connected ? await settledBy(nc.drain(), left()) : false;
        if (!drained && !nc.isClosed()) {
          await settleWithin(nc.close(), Math.max(left(), CLOSE_GRACE_MS));
        }
      }
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** A view with only the read side; the write methods are not there at all. */
function readonlyView<T>(c: KvedgeCache<T>): ReadonlyCache<T> & SyncHitSource<T> {
  return {
    [SYNC_HIT]: (k) => c[SYNC_HIT](k),
    get bucket() {
      return c.bucket;
    },
    get mode() {
      return c.mode;
    },
    ready: (o) => c.ready(o),
    bookmark: () => c.bookmark(),
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

/**
 * How long closing the connection itself may take once the close deadline is
 * spent, ms: nats.js closes a socket at once, this only bounds a broken one.
 */
const CLOSE_GRACE_MS = 100;

/** Whether `p` fulfilled within `ms` (a rejection or the deadline: false). */
function settledBy(p: Promise<unknown>, ms: number): Promise<boolean> {
  return deadline(p, ms).then(() => true, () => false);
}
