/**
 * Freshness: the owner of the local store and of every rule that decides what
 * enters it. Each source of a revision hands it over through one verb,
 * {@link Freshness.apply}: the watcher (`watch`), a miss fetch or a leader
 * read (`fetch`), an own write (`write`), the loader (`loader`) and a
 * warm-start snapshot (`snapshot`). What is not one key's change, a resync's
 * passes over the whole store, has its verbs beside it (`resync`,
 * `caughtUp`, `historyGap`, `streamInfo`). Here, each once:
 *
 * - rule 1, revision wins: every write to the store is `put`/`putValue`,
 *   which compares revisions (src/local_store.ts); nothing else writes it;
 * - rule 2, deletes leave tombstones: `#delete`, and a fetch of an absent
 *   key kept as a tombstone (`#keep`);
 * - rule 3, misses are reserved: `reserve`/`release`, the watcher's events
 *   recorded against a reservation (`#watch`), the higher of the two kept
 *   (`#fetch`); one fetch per key is the read path's single flight;
 * - rule 6, TTL alignment: a value's own TTL (`keyTtlLeft`, an expired
 *   fetched value), the negative TTL of a loader's "absent", the bucket TTL
 *   given to the store (`streamInfo`); a snapshot record's deadline is
 *   checked by the store as it loads the image.
 *
 * It also says whether a missing slot means "absent" (`lossy`,
 * `impliedAbsent`, `holdsAll`). Readers get the store's read side only
 * ({@link StoreView}).
 *
 * @module
 */
import { LocalStore } from "../local_store.ts";
import { Applied, type Slot } from "../slot.ts";
import type { CacheMode } from "../types.ts";
import type {
  FetchChange,
  FreshnessChange,
  FreshnessOptions,
  LoaderChange,
  Reservation,
  SnapshotChange,
  StoreView,
  WatchChange,
  WriteChange,
} from "./freshness_change.ts";

/**
 * What is left of a per-key TTL of `ttlMs` for a value written at `created`
 * (epoch ms, the server's clock), ms from now: 0 for none, at least 1.
 *
 * @example
 * ```ts
 * import { keyTtlLeft } from "./freshness.ts";
 * console.log(keyTtlLeft(Date.now(), 0)); // 0
 * ```
 */
export function keyTtlLeft(created: number, ttlMs: number): number {
  if (ttlMs <= 0) return 0;
  return Math.max(1, Math.ceil(created + ttlMs - Date.now()));
}

/** The loader keys kept unchecked are bounded by the store: past this over its size, prune. */
const OFFLINE_SLACK = 1_000;

/**
 * The local store and the rules of freshness over it.
 *
 * @example
 * ```ts
 * import { Freshness } from "./freshness.ts";
 * const f = new Freshness({
 *   mode: "lazy", maxItems: 100, maxBytes: 0, maxTtlMs: 0, maxNegativeShare: 1,
 *   allowDirect: false, negativeTtlMs: 0, appliedRevision: () => 0,
 * });
 * f.apply({ source: "fetch", key: "a", rev: 5, created: Date.now(), raw: new Uint8Array([49]) });
 * f.apply({ source: "fetch", key: "a", rev: 4, created: Date.now(), raw: new Uint8Array([50]) });
 * console.log(f.view.peek("a")?.rev); // 5
 * ```
 */
export class Freshness {
  readonly #store: LocalStore;
  readonly #mode: CacheMode;
  readonly #o: FreshnessOptions;
  /** Keys with a miss fetch in flight, and what the watcher brought for them meanwhile. */
  readonly #reservations = new Map<string, Reservation>();
  /** Keys the loader answered while NATS was unreachable (dropped on reconnect). */
  readonly #offline = new Set<string>();
  /** Resync generation: slots not confirmed in the current one are swept at its end. */
  #gen = 0;
  /** A resync's sweep removes unconfirmed slots below this revision. */
  #sweepBefore = 0;
  /** Replica: every change up to the watcher's revision is applied (caught up since the last clear). */
  #complete = false;
  /** Replica: tombstones stored since the last drop (0: nothing to drop). */
  #tombstones = 0;
  /** A missing slot does not mean "absent": bounds evicted, TTLs expired, or a partial snapshot. */
  #lossy: boolean;
  /** Loaded from a partial snapshot: the store may lack keys until a full resync. */
  #partial = false;
  /** A replica dropped a key for its bounds. */
  #overflowed = false;
  /** The stream's first sequence, to sweep below once caught up (0: nothing to sweep). */
  #dropBelow = 0;
  /** After resuming across a history gap: entries below this revision are gone once caught up. */
  #gapFloor = 0;
  #bucketTtlMs = 0;

  /** An empty store with `options`' bounds; no I/O. */
  constructor(o: FreshnessOptions) {
    this.#o = o;
    this.#mode = o.mode;
    this.#lossy = o.maxTtlMs > 0;
    this.#store = new LocalStore({
      maxItems: o.maxItems || undefined,
      maxBytes: o.maxBytes || undefined,
      maxTtlMs: o.maxTtlMs || undefined,
      maxNegativeShare: o.maxNegativeShare,
      onRemove: (key, _slot, reason) => {
        if (reason !== "expire") this.#removed(key, reason);
      },
    });
  }

  /** The store's read side (the hit path reads it directly). */
  get view(): StoreView {
    return this.#store;
  }

  // ---- the one way in ---------------------------------------------------------

  /** Applies a watcher message, an own write or a snapshot (whole); true if the store changed. */
  apply(change: WatchChange | WriteChange | SnapshotChange): boolean;
  /** Applies a read of KV; returns what is resident (or would be, served once). */
  apply(change: FetchChange): Slot;
  /** Applies a loader's answer; returns what is resident, undefined if it could not be held. */
  apply(change: LoaderChange): Slot | undefined;
  apply(change: FreshnessChange): boolean | Slot | undefined {
    switch (change.source) {
      case "watch":
        return this.#watch(change);
      case "fetch":
        return this.#fetch(change);
      case "write":
        if (change.op !== "PUT") return this.#delete(change, true);
        return this.#store.putValue(change.key, change) === Applied.Stored;
      case "loader":
        return this.#load(change);
      case "snapshot":
        return this.#restore(change);
    }
  }

  #watch(w: WatchChange): boolean {
    const { key, op, rev, created, raw } = w;
    let stored = false;
    if (this.#mode === "replica" || this.#store.has(key)) {
      // The store copies `raw`. Rule 6: a value's own TTL holds here even if
      // its expiry marker never arrives (a cut-off mirror: docs/topologies.md).
      stored = op === "PUT"
        ? this.#store.put(key, rev, created, raw, this.#gen, keyTtlLeft(created, w.ttlMs)) ===
          Applied.Stored
        : this.#delete(w, false);
    }
    // Rule 3 in both modes: a miss in flight keeps the higher of its answer and this.
    if (this.#reservations.size > 0) {
      const r = this.#reservations.get(key);
      if (r !== undefined && rev > r.rev) {
        r.rev = rev;
        r.created = created;
        r.raw = op === "PUT" ? raw.slice() : undefined;
        r.ttlMs = w.ttlMs;
      }
    }
    return stored;
  }

  #fetch(f: FetchChange): Slot {
    let { rev, created, raw } = f;
    const ttlMs = f.ttlMs ?? 0;
    let ttlLeft = 0;
    // Rule 6: a value with its own TTL is not kept (or served) past it,
    // even where its expiry marker never arrives (a regional mirror).
    if (ttlMs > 0 && created + ttlMs <= Date.now()) raw = undefined;
    else ttlLeft = keyTtlLeft(created, ttlMs);
    const r = f.reserved ? this.#reservations.get(f.key) : undefined;
    if (r !== undefined && r.rev > rev) {
      ({ rev, created, raw } = r);
      ttlLeft = keyTtlLeft(created, r.ttlMs);
    }
    return this.#keep(f.key, { rev, created, raw, ttlMs: ttlLeft });
  }

  /** Stores a read result by the revision rule and returns what is resident (or would be). */
  #keep(
    key: string,
    got: { rev: number; created: number; raw: Uint8Array | undefined; ttlMs: number },
  ): Slot {
    const { rev, created, raw, ttlMs } = got;
    if (this.#mode === "replica" && this.impliedAbsent(rev) && !this.#store.has(key)) {
      // The watcher applied this revision or a later one and holds nothing for
      // the key: it was deleted since (a stale answer, e.g. a lagging replica).
      return { rev, created, deleted: true, raw: undefined, value: undefined, size: 0, gen: 0 };
    }
    const res = this.#store.put(key, rev, created, raw, this.#gen, ttlMs);
    if (res === Applied.Stored && raw === undefined && this.#mode === "replica") {
      this.#tombstones++;
    }
    if (res === Applied.Older || res === Applied.Stored) return this.#store.peek(key)!;
    // Not held: expired (absent), or too large to hold (served once, as a miss).
    const deleted = res === Applied.Expired || raw === undefined;
    const served = deleted ? undefined : raw;
    return { rev, created, deleted, raw: served, value: undefined, size: 0, gen: 0 };
  }

  /** Applies a delete of `d.key` at `d.rev` (`own`: this cache's write); true if the store changed. */
  #delete(d: { key: string; rev: number; created: number }, own: boolean): boolean {
    const { key, rev, created } = d;
    if (
      this.#mode === "replica" && !this.#lossy &&
      (this.impliedAbsent(rev) || (!own && !this.#o.allowDirect))
    ) {
      // No slot says "absent" as well as a tombstone here: the watcher brings
      // nothing older, a miss in flight holds a reservation (rule 3) and a
      // later one reads the leader, which has this delete.
      const held = this.#store.peek(key);
      if (held === undefined || held.rev <= rev) this.#store.delete(key);
      return held !== undefined && held.rev < rev;
    }
    // Rule 2: an own delete the watcher has not reached (it may still bring an
    // earlier PUT), a lazy cache's delete, or a replica's while direct gets
    // may read a lagging replica leaves a tombstone (a replica drops it later).
    if (this.#store.put(key, rev, created, undefined, this.#gen) === Applied.Stored) {
      if (this.#mode === "replica") this.#tombstones++;
      return true;
    }
    return false;
  }

  #load(l: LoaderChange): Slot | undefined {
    const { key, value } = l;
    // Rule 3: a revision the watcher brought during the loader call wins.
    const r = this.#reservations.get(key);
    if (r !== undefined && r.rev > 0) {
      return this.#keep(key, { ...r, ttlMs: keyTtlLeft(r.created, r.ttlMs) });
    }
    if (l.offline) {
      // Rule 5: not checked against KV, so dropped when the connection returns.
      this.#offline.add(key);
      if (this.#offline.size > 2 * this.#store.size + OFFLINE_SLACK) {
        for (const k of this.#offline) if (this.#store.peek(k)?.rev !== 0) this.#offline.delete(k);
      }
    }
    const created = Date.now();
    if (value === undefined) {
      return this.#keep(key, { rev: 0, created, raw: undefined, ttlMs: this.#o.negativeTtlMs });
    }
    this.#store.putValue(key, { rev: 0, created, value, encodedBytes: l.encodedBytes });
    return this.#store.peek(key);
  }

  #restore(s: SnapshotChange): boolean {
    // Rule 6 for its records (a passed deadline) and the bounds: `loadImage`.
    return this.#store.loadImage(s.image, this.#gen) >= 0;
  }

  // ---- rule 3: reservations ---------------------------------------------------

  /** A miss fetch of `key` begins: the watcher records its events until {@link release}. */
  reserve(key: string): void {
    this.#reservations.set(key, { rev: 0, created: 0, raw: undefined, ttlMs: 0 });
  }

  /** The miss fetch of `key` ended. */
  release(key: string): void {
    this.#reservations.delete(key);
  }

  /** The revision the watcher recorded for `key` during its fetch (0: none). */
  reservedRevision(key: string): number {
    return this.#reservations.get(key)?.rev ?? 0;
  }

  // ---- decoding (no revision changes) -------------------------------------------

  /** The resident slot of `key` at `rev` was decoded to `value`. */
  decoded(key: string, rev: number, value: unknown): void {
    this.#store.decoded(key, rev, value);
  }

  /** The codec or schema refused the resident slot of `key` at `rev`, and why. */
  rejected(key: string, rev: number, why: unknown): void {
    this.#store.rejected(key, rev, why);
  }

  // ---- whole-store passes ---------------------------------------------------------

  /**
   * A resync begins: it re-reads the stream from `nextRevision` (lazy) or as
   * a snapshot (replica). A lazy cache, or any after a recreated bucket
   * (`epochChanged`), starts empty; a replica keeps serving and sweeps what
   * the pass did not confirm when it catches up.
   */
  resync(pass: { epochChanged: boolean; nextRevision: number }): void {
    this.#gapFloor = 0; // a resync rebuilds from the stream as it is now
    this.#sweepBefore = pass.nextRevision;
    if (pass.epochChanged || this.#mode === "lazy") {
      this.#store.clear();
      this.#complete = false;
    }
    this.#gen++;
  }

  /** A replica's watcher will read `keys` keys (a whole-bucket pass): the store makes room at once. */
  expect(keys: number): void {
    if (this.#mode === "replica") this.#store.reserve(keys);
  }

  /**
   * The watcher caught up (`resynced`: at the end of a resync): sweep what
   * the pass did not confirm, what a history gap or the stream's first
   * sequence left behind. In a replica, what a partial snapshot lacked is
   * here after a full read, and tombstones the watcher has passed say
   * nothing a missing slot does not.
   */
  caughtUp(at: { resynced: boolean }): void {
    if (this.#mode === "replica") {
      if (at.resynced) this.#store.sweep(this.#gen, this.#sweepBefore);
      this.#complete = true;
      if (at.resynced && this.#partial && !this.#overflowed) {
        this.#partial = false;
        this.#lossy = this.#o.maxTtlMs > 0;
      }
      if (this.#tombstones > 0 && !this.#lossy) {
        this.#store.dropTombstones(this.#o.appliedRevision());
        this.#tombstones = 0;
      }
    }
    if (this.#gapFloor > 0) {
      this.#store.dropBelow(this.#gapFloor);
      this.#gapFloor = 0;
    }
    this.#sweepGone(true);
  }

  /** Resuming across a history gap from `firstSeq`: entries below it are dropped at the catch-up. */
  historyGap(firstSeq: number): void {
    this.#gapFloor = Math.max(this.#gapFloor, firstSeq);
  }

  /**
   * The stream's state was read: its TTL bounds every slot (rule 6), and
   * entries older than its first message are gone from the bucket (a purge or
   * a limit removed them without a marker) unless a newer revision comes.
   * `settled`: the watcher is caught up and not restarting (sweep now, once
   * `ready`); otherwise at the next catch-up.
   */
  streamInfo(s: { firstSeq: number; bucketTtlMs: number; settled: boolean; ready: boolean }): void {
    this.#bucketTtlMs = s.bucketTtlMs;
    this.#store.bucketTtlMs = s.bucketTtlMs;
    this.#dropBelow = s.firstSeq;
    if (s.settled) this.#sweepGone(s.ready);
  }

  /**
   * Drops entries below the stream's first sequence. At a catch-up always: a
   * snapshot may hold keys a stream purge removed while the edge was away.
   */
  #sweepGone(now: boolean): void {
    if (this.#dropBelow > 1 && now) this.#store.dropBelow(this.#dropBelow);
    this.#dropBelow = 0;
  }

  /** A partial snapshot was loaded: a missing key is not absent until a full resync. */
  loadedPartial(): void {
    this.#lossy = true;
    this.#partial = true;
  }

  /** The connection is back: drop what the loader answered while it was down (rule 5). */
  reconnected(): void {
    for (const key of this.#offline) {
      if (this.#store.peek(key)?.rev === 0) this.#store.delete(key);
    }
    this.#offline.clear();
  }

  /** Empties the store (close). */
  clear(): void {
    this.#store.clear();
  }

  /** An eviction or a refusal: a replica no longer holds every key from now on. */
  #removed(key: string, reason: "evict" | "too_large"): void {
    const overflow = this.#mode === "replica" && !this.#overflowed;
    if (overflow) {
      this.#overflowed = true;
      this.#lossy = true;
    }
    this.#o.onRemove?.({ key, reason, overflow });
  }

  // ---- queries --------------------------------------------------------------------

  /** Whether the watcher keeps `key` fresh: a replica follows every key, a lazy cache those it holds. */
  follows(key: string): boolean {
    return this.#mode === "replica" || this.#store.has(key);
  }

  /** Whether a missing slot means "absent at `rev`": a complete replica applied every change up to it. */
  impliedAbsent(rev: number): boolean {
    return this.#complete && !this.#lossy && rev <= this.#o.appliedRevision();
  }

  /** Caught up since the last clear and nothing dropped locally: the store holds the whole bucket. */
  get holdsAll(): boolean {
    return this.#complete && !this.#lossy;
  }

  /** A missing slot does not mean "absent" (evicted, expired locally, or a partial snapshot). */
  get lossy(): boolean {
    return this.#lossy;
  }

  /** A replica dropped a key for its bounds. */
  get overflowed(): boolean {
    return this.#overflowed;
  }

  /** The bucket's TTL, ms (0: none). */
  get bucketTtlMs(): number {
    return this.#bucketTtlMs;
  }

  /** `key` holds what the loader said while NATS was unreachable (not checked against KV). */
  unchecked(key: string): boolean {
    return this.#offline.has(key) && this.#store.peek(key)?.rev === 0;
  }

  /** Resuming across a history gap: "applied up to" is unknown until caught up. */
  get acrossGap(): boolean {
    return this.#gapFloor > 0;
  }
}
