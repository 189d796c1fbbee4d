/**
 * The cache: a facade over its parts, each a file under `src/cache/` with one
 * job (see docs/architecture.md). A hit is answered here, inline, without
 * calling into a part; everything else is delegated.
 *
 * @module
 */
import { Bookmark } from "./bookmark.ts";
import { ClosedError, UnavailableError } from "./errors.ts";
import { assertFilter, matchesFilter } from "./keys.ts";
import { abortable, deadline, DeadlineError } from "./async.ts";
import { SYNC_HIT } from "./sync_hit.ts";
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
import { CacheCore, type CacheDeps, type CacheLink } from "./cache/core.ts";
import type { StoreView } from "./cache/freshness_change.ts";
import { decode, getSlow, hitValue, present } from "./cache/read_path.ts";
import type { Reached } from "./cache/reached.ts";
import { filtered, replay } from "./cache/replay.ts";
import { SyncLoop } from "./cache/sync_loop.ts";
import { servable } from "./cache/offline.ts";
import { saveSnapshot } from "./cache/warm_start.ts";
import { history, listKeys } from "./cache/listing.ts";
import { statsOf, statusOf } from "./cache/report.ts";
import { closeCache } from "./cache/close.ts";
import { readonlyView } from "./cache/readonly_view.ts";
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
  readonly #sync: SyncLoop<T>;
  // The hit path reads these three fields and nothing else. `#fresh` mirrors
  // `Lifecycle.fresh` (src/cache/lifecycle.ts), set only by the `onFresh`
  // callback handed to the core: a hit tests a field of its own, not a getter
  // through the core.
  readonly #store: StoreView;
  readonly #reachedRev: Reached;
  #fresh = false;
  #hits = 0;
  #bookmark: Bookmark = Bookmark.EMPTY;

  /** Wires the parts together; no I/O. */
  constructor(deps: CacheDeps<T>) {
    let sync!: SyncLoop<T>;
    const c: CacheCore<T> = new CacheCore(deps, {
      sync: (core) => (sync = new SyncLoop(core, deps)),
      onFresh: (fresh) => {
        this.#fresh = fresh;
      },
    });
    this.#sync = sync;
    this.#c = c;
    this.#store = c.freshness.view;
    this.#reachedRev = c.reached;
    this.bucket = c.bucket;
    this.mode = c.mode;
  }

  /**
   * Starts the watcher and follows the connection's status. Called once by
   * `openCache()`; resolves when the first consumer exists.
   * @internal
   */
  start(): Promise<void> {
    return this.#sync.start();
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
    return this.#sync.startUnbound(bind, cause);
  }

  ready(options: ReadyOptions = {}): Promise<void> {
    const rev = revisionAsked(this.bucket, options.atLeast);
    if (rev > 0) return this.#readyAt(rev, options);
    if (this.#c.life.isReady) return Promise.resolve();
    if (this.#c.life.closed) return Promise.reject(new ClosedError("wait for ready"));
    const { signal, timeoutMs } = options;
    if (signal === undefined && timeoutMs === undefined) return this.#c.life.ready;
    const ready = this.#c.life.ready;
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

  get(key: string, options?: GetOptions): Promise<T | undefined> {
    // The hit path: one lookup, one flag test, no async frame (an async
    // function allocates its frame for every await it holds, even untaken);
    // keys are validated on misses only. Whatever throws rejects, as before.
    try {
      const store = this.#store;
      const i = store.find(key);
      if (i >= 0 && this.#fresh && (options?.atLeast === undefined || this.#reached(i, options))) {
        this.#hits++;
        return Promise.resolve(
          store.flagsAt(i) === 0 ? store.valueAt(i) as T : hitValue(this.#c, key, i),
        ) as Promise<T | undefined>;
      }
      return this.#getAwaited(key, i, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** `get()` when slot `i` (or -1) is not a fresh hit: a bookmarked read, a stale serve or a miss. */
  async #getAwaited(key: string, i: number, options?: GetOptions): Promise<T | undefined> {
    if (options?.atLeast !== undefined) {
      const rev = revisionAsked(this.bucket, options.atLeast);
      if (rev > 0) {
        const a = await getAtLeast(this.#c, { key, rev, options, countHit: this.#countHit });
        return a === undefined ? undefined : a.value;
      }
    }
    const r = await getSlow(this.#c, key, i < 0 ? undefined : this.#store.slotAt(i), options);
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

  getEntry(key: string, options?: GetOptions): Promise<Entry<T> | undefined> {
    // As get(): no async frame on a fresh hit, and whatever throws rejects.
    try {
      const store = this.#store;
      const i = store.find(key);
      if (i >= 0 && this.#fresh && (options?.atLeast === undefined || this.#reached(i, options))) {
        this.#hits++;
        if (store.flagsAt(i) !== 0) return Promise.resolve(this.#hitEntry(key, i));
        return Promise.resolve({
          key,
          value: store.valueAt(i) as T,
          revision: store.revAt(i),
          createdMs: store.createdAt(i),
          source: "hit",
          stale: false,
        });
      }
      return this.#getEntryAwaited(key, i, options);
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** The entry of fresh hit `i` that is a tombstone or not decoded yet (decodes it once). */
  #hitEntry(key: string, i: number): Entry<T> | undefined {
    const slot = this.#store.slotAt(i);
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

  /** `getEntry()` when slot `i` (or -1) is not a fresh hit. */
  async #getEntryAwaited(
    key: string,
    i: number,
    options?: GetOptions,
  ): Promise<Entry<T> | undefined> {
    if (options?.atLeast !== undefined) {
      const rev = revisionAsked(this.bucket, options.atLeast);
      if (rev > 0) {
        const a = await getAtLeast(this.#c, { key, rev, options, countHit: this.#countHit });
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
    const r = await getSlow(this.#c, key, i < 0 ? undefined : this.#store.slotAt(i), options);
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

  keys(filter?: string, options: { signal?: AbortSignal } = {}): AsyncIterable<string> {
    return listKeys(this.#c, filter, { signal: options.signal });
  }

  history(
    key: string,
    options: { signal?: AbortSignal; maxBytes?: number } = {},
  ): Promise<HistoryEntry<T>[]> {
    return history(this.#c, key, options);
  }

  changes(options: ChangesOptions = {}): AsyncIterableIterator<Change<T>> {
    if (this.#c.life.closed) throw new ClosedError("follow changes");
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
    return statsOf(this.#c, this.#hits);
  }

  status(): CacheStatus {
    return statusOf(this.#c);
  }

  // ---- writes --------------------------------------------------------------

  set(key: string, value: T, options: SetOptions = {}): Promise<number> {
    return set(this.#c, { key, value, options });
  }

  create(key: string, value: T, options: SetOptions = {}): Promise<number> {
    return create(this.#c, { key, value, options });
  }

  update(key: string, value: T, expectedRevision: number): Promise<number> {
    return update(this.#c, { key, value, expectedRevision });
  }

  delete(key: string, options: DeleteOptions = {}): Promise<number> {
    return remove(this.#c, { key, op: "DEL", options });
  }

  purge(key: string, options: DeleteOptions = {}): Promise<number> {
    return remove(this.#c, { key, op: "PURGE", options });
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
    return this.#c.life.close(() => closeCache(this.#c, this.#fresh));
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
