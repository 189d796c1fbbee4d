/**
 * The local store: a bounded LRU of revision-bearing slots (values and
 * tombstones) that enforces rule 1 (revision wins) and rule 6 (TTL alignment).
 *
 * Typed-array columns instead of one object per entry. A value never read
 * is cold: its key and bytes in shared slabs found through an open-addressing
 * table (`cold_slots.ts`), no `Map` entry and no string; its first read puts
 * its key in one `Map` from key to slot, so a hit is one `Map` lookup and one
 * array read. This file holds which key has which slot, the hit path, the
 * rules and the bounds; the columns are in `slot_columns.ts`, a slot's form
 * in `slot.ts`, the slots not in the `Map` (cold, or a warm start's image,
 * `store_image.ts`) in `unindexed_slots.ts`, the recency list in `lru_list.ts`,
 * the TTLs in `slot_ttl.ts`, the negative slots in `negative_slots.ts`, the
 * passes in `store_scan.ts` and the options in `local_store_options.ts`.
 *
 * @module
 */
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";
import { LruList, NONE } from "./lru_list.ts";
import { SlotTtl } from "./slot_ttl.ts";
import { NegativeSlots } from "./negative_slots.ts";
import type { LocalStoreOptions, StoredValue } from "./local_store_options.ts";
import {
  dropBelow,
  dropTombstones,
  forEachSlot,
  removeWhere,
  slotEntries,
  type SlotView,
  type SlotVisitor,
  snapshotRecords,
} from "./store_scan.ts";
import { droppedSlots, fillColumns, fitImage } from "./store_image.ts";
import type { ImageBounds } from "./store_image.ts";
import { SlotColumns } from "./slot_columns.ts";
import { UnindexedSlots } from "./unindexed_slots.ts";
import type { SnapshotImage, SnapshotSource } from "./snapshot.ts";
import { Applied, compact, rawFlag, type RemovalReason, type Slot, SlotFlag } from "./slot.ts";

export type { LocalStoreOptions, StoredValue } from "./local_store_options.ts";

const INITIAL_CAPACITY = 1024;

/**
 * A bounded map from key to {@link Slot} that only lets a higher revision
 * replace a lower one, and bounds every slot's life by the local and bucket TTLs.
 *
 * @example
 * ```ts
 * import { LocalStore } from "./local_store.ts";
 * const store = new LocalStore({ maxItems: 100 });
 * store.put("a", 5, Date.now(), new Uint8Array([1]));
 * store.put("a", 4, Date.now(), new Uint8Array([2])); // ignored: revision 4 < 5
 * console.log(store.peek("a")?.rev); // 5
 * ```
 */
export class LocalStore {
  readonly #maxItems: number;
  readonly #maxBytes: number;
  readonly #onRemove: LocalStoreOptions["onRemove"];
  #evictions = 0;
  #bytes = 0;
  /** The negative slots and their bound; undefined without `maxNegativeShare` below 1. */
  readonly #negs: NegativeSlots | undefined;

  readonly #index = new Map<string, number>();
  readonly #s: SlotColumns;
  readonly #ttl: SlotTtl;
  readonly #lru = new LruList();
  readonly #bounds: ImageBounds;
  /** Slots whose key is not in `#index`: a snapshot's image, cold values never read. */
  readonly #off: UnindexedSlots;

  /** Builds an empty store; at least one of `maxItems`/`maxBytes` must be set. */
  constructor(options: LocalStoreOptions) {
    const { maxItems, maxBytes } = options;
    if (!maxItems && !maxBytes) {
      throw new RangeError("Cannot build local store: one of maxItems and maxBytes is required");
    }
    this.#maxItems = maxItems ?? 0;
    this.#maxBytes = maxBytes ?? 0;
    this.#s = new SlotColumns(this.#maxBytes > 0);
    this.#off = new UnindexedSlots(this.#s, this.#index);
    const { maxTtlMs = 0, bucketTtlMs = 0, now = Date.now } = options;
    this.#ttl = new SlotTtl({ maxTtlMs, bucketTtlMs, now });
    this.#bounds = { maxItems: this.#maxItems, maxBytes: this.#maxBytes, ttl: this.#ttl };
    this.#negs = NegativeSlots.bounded(options.maxNegativeShare ?? 1, this.#bounds);
    this.#onRemove = options.onRemove;
    this.#grow(Math.min(this.#maxItems || INITIAL_CAPACITY, INITIAL_CAPACITY));
  }

  /** Number of resident slots. */
  get size(): number {
    return this.#index.size + this.#off.pending;
  }

  /** Bytes counted against `maxBytes` (0 when only `maxItems` bounds the store). */
  get bytes(): number {
    return this.#maxBytes > 0 ? this.#bytes : 0;
  }

  /** Slots dropped by the bounds since creation. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Negative slots (revision-0 tombstones) resident now. */
  get negatives(): number {
    return this.#negs?.items ?? 0;
  }

  /** Negative slots dropped by `maxNegativeShare` since creation (not in {@link evictions}). */
  get negativeEvictions(): number {
    return this.#negs?.evictions ?? 0;
  }

  /** Sets the bucket TTL (read from the stream), ms; 0 for none. */
  set bucketTtlMs(ms: number) {
    this.#ttl.bucketTtlMs = ms;
  }

  /** The index of `key`'s slot, marking it recently used, or -1 if absent or expired (then removed);
   * read it with the `…At(i)` methods before the next change to the store. */
  find(key: string): number {
    const i = this.#index.get(key) ?? this.#off.find(key, true);
    if (i === undefined) return NONE;
    if (this.#ttl.expired(i)) {
      this.#remove(i, "expire");
      return NONE;
    }
    if (i !== this.#lru.tail) this.#lru.moveToTail(i);
    return i;
  }

  /** The index of `key`'s slot without touching its recency, or -1. */
  findQuiet(key: string): number {
    const i = this.#index.get(key) ?? this.#off.find(key, true);
    if (i === undefined || (this.#ttl.expired(i))) return NONE;
    return i;
  }

  /** {@link SlotFlag} bits of the slot at `i`. */
  flagsAt(i: number): number {
    return this.#s.flags[i]!;
  }

  /** The decoded value at `i`, or its encoded form while a {@link SlotFlag.Raw} flag is set. */
  valueAt(i: number): unknown {
    return this.#s.vals[i];
  }

  /** The revision of the slot at `i`. */
  revAt(i: number): number {
    return this.#s.rev[i]!;
  }

  /** When the slot's value was written to KV, epoch ms. */
  createdAt(i: number): number {
    return this.#s.created[i]!;
  }

  /** The encoded bytes at `i` if it was never decoded. */
  rawAt(i: number): Uint8Array | undefined {
    return this.#s.rawAt(i);
  }

  /** A copy of the slot at `i`. */
  slotAt(i: number): Slot {
    return this.#off.slotAt(i);
  }

  /** Records that the resident slot of `key` at revision `rev` was decoded to `value`. */
  decoded(key: string, rev: number, value: unknown): void {
    const i = this.#index.get(key) ?? this.#off.find(key, true);
    if (i !== undefined && this.#s.encodedAt(i, rev)) this.#s.setDecodedAt(i, value);
  }

  /** Records that the codec or schema refused the resident slot of `key` at `rev`, and why. */
  rejected(key: string, rev: number, why: unknown): void {
    const i = this.#index.get(key) ?? this.#off.find(key, true);
    if (i !== undefined && this.#s.encodedAt(i, rev)) this.#s.setDecodedAt(i, undefined, why);
  }

  /** A copy of the slot of `key`, marking it recently used; undefined if absent or expired. */
  get(key: string): Slot | undefined {
    const i = this.find(key);
    return i === NONE ? undefined : this.slotAt(i);
  }

  /** A copy of the slot of `key` without touching its recency. */
  peek(key: string): Slot | undefined {
    const i = this.findQuiet(key);
    return i === NONE ? undefined : this.slotAt(i);
  }

  /** Whether `key` holds a slot (value or tombstone), without touching recency. */
  has(key: string): boolean {
    const i = this.#index.get(key) ?? this.#off.find(key, false);
    return i !== undefined && !this.#ttl.expired(i);
  }

  /** Stores value bytes `raw` (copied, decoded later) or a tombstone (`raw` undefined) at `rev`, unless
   * an equal or newer revision is resident (rule 1); `ttlMs` bounds its life (negative caching). */
  put(
    key: string,
    rev: number,
    created: number,
    raw: Uint8Array | undefined,
    gen = 0,
    ttlMs = 0,
  ): Applied {
    const at = this.#index.get(key) ?? this.#off.find(key, false);
    const held = at === undefined || this.#ttl.expired(at) ? NONE : at;
    if (held !== NONE && this.#keeps(held, rev)) {
      if (this.#s.rev[held] === rev) this.#s.gen[held] = gen;
      return Applied.Older;
    }
    const ttl = this.#ttl.ttlFor(created, ttlMs);
    if (ttl < 0) {
      if (held !== NONE) this.#remove(held, "delete");
      return Applied.Expired;
    }
    const size = key.length + (raw?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES;
    if (this.#maxBytes > 0 && size > this.#maxBytes) {
      const deleted = raw === undefined;
      this.#refuse({ key, held }, { rev, created, deleted, raw, value: undefined, size, gen });
      return Applied.TooLarge;
    }
    // A value for a key not resident, or resident unread (cold or in the image), is held cold.
    const cold = raw !== undefined && (at === undefined || this.#s.keys[at] === null);
    const value = raw === undefined || cold ? raw : compact(raw);
    const flags = raw === undefined ? SlotFlag.Deleted : cold ? SlotFlag.Cold : rawFlag(value!);
    this.#set(key, at, rev, created, value, flags, size, gen, ttl);
    return Applied.Stored;
  }

  /** Stores a decoded value (own writes, loader results), its encoded length counted against
   * `maxBytes`; the revision rule of {@link put}. */
  putValue(key: string, v: StoredValue): Applied {
    const { rev, created, value, encodedBytes } = v;
    const at = this.#index.get(key) ?? this.#off.find(key, false);
    const held = at === undefined || this.#ttl.expired(at) ? NONE : at;
    if (held !== NONE && this.#keeps(held, rev)) return Applied.Older;
    const ttl = this.#ttl.ttlFor(created, 0);
    if (ttl < 0) return Applied.Expired;
    const gen = held === NONE ? 0 : this.#s.gen[held]!;
    const size = key.length + encodedBytes + ENTRY_OVERHEAD_BYTES;
    if (this.#maxBytes > 0 && size > this.#maxBytes) {
      const slot = { rev, created, deleted: false, raw: undefined, value, size, gen };
      this.#refuse({ key, held }, slot);
      return Applied.TooLarge;
    }
    this.#set(key, at, rev, created, value, 0, size, gen, ttl);
    return Applied.Stored;
  }

  /** Removes `key` (no revision check). */
  delete(key: string): void {
    const i = this.#index.get(key) ?? this.#off.find(key, false);
    if (i !== undefined) this.#shrunk(this.#remove(i, "delete"));
  }

  /** Room for `n` slots at once, up to `maxItems` (none without it): `n` new keys grow nothing. */
  reserve(n: number): void {
    if (this.#maxItems === 0 || !(n > this.#s.capacity)) return; // (not a number: nothing)
    this.#grow(n);
    this.#off.cold.reserve(Math.min(n, this.#maxItems));
  }

  /** Removes every slot. */
  clear(): void {
    this.#index.clear();
    this.#s.clear();
    this.#lru.clear();
    this.#bytes = 0;
    this.#negs?.clear();
    this.#off.clear();
  }

  /** Removes slots whose generation is below `gen` and revision below `beforeRev` (a resync's sweep). */
  sweep(gen: number, beforeRev: number): number {
    const { gen: g, rev } = this.#s;
    return this.#shrunk(removeWhere(this.#view(), (i) => g[i]! < gen && rev[i]! < beforeRev));
  }

  /** Removes slots at a revision in `[1, rev)` (see `dropBelow` in `store_scan.ts`). */
  dropBelow(rev: number): number {
    return this.#shrunk(dropBelow(this.#view(), rev));
  }

  /** Removes tombstones at a revision up to `rev` (see `dropTombstones` in `store_scan.ts`). */
  dropTombstones(rev: number): number {
    return this.#shrunk(dropTombstones(this.#view(), rev));
  }

  /** Iterates resident slots (copies), most recently used first. */
  entries(): IterableIterator<[string, Slot]> {
    return slotEntries(this.#view());
  }

  /** Calls `fn` for every resident slot, most recently used first (see `forEachSlot` in `store_scan.ts`). */
  forEach(fn: SlotVisitor): void {
    forEachSlot(this.#view(), fn);
  }

  /** The records of a snapshot of this store, values decoded since through `encode` (`snapshotRecords`). */
  records(encode: (value: unknown) => Uint8Array): SnapshotSource {
    return snapshotRecords(this.#view(), encode);
  }

  /** The columns for one whole-store pass (src/store_scan.ts). */
  #view(): SlotView {
    return {
      s: this.#s,
      lru: this.#lru,
      ttl: this.#ttl,
      held: (i) => this.#off.held(i),
      slotAt: (i) => this.slotAt(this.#off.touch(i)),
      remove: (i) => this.#remove(i, "delete"),
    };
  }

  /**
   * Loads a verified snapshot into this empty store as its image (`store_image.ts`), within the
   * bounds (`onRemove` hears what does not fit) and TTLs. Returns the slots loaded, or -1 if not empty.
   */
  loadImage(img: SnapshotImage, gen: number): number {
    if (this.size !== 0) return NONE;
    this.clear();
    const fit = fitImage(img, this.#bounds);
    if (fit.count > this.#s.capacity) this.#grow(fit.count);
    this.#off.image = fillColumns(this.#s, img, { fit, lru: this.#lru, ttl: this.#ttl, gen });
    this.#bytes = fit.bytes;
    for (const [k, slot, why] of droppedSlots(img, { fit, gen })) this.#onRemove?.(k, slot, why);
    return fit.count;
  }

  /** Rule 1 (revision wins): whether the live slot `held` stays against `rev` (equal or newer). */
  #keeps(held: number, rev: number): boolean {
    const heldRev = this.#s.rev[held]!;
    return heldRev >= rev && !(rev === 0 && heldRev === 0);
  }

  /** Refuses `slot`, over `maxBytes`: drops the key's old value (`held`) and says so (like lru-cache). */
  #refuse({ key, held }: { key: string; held: number }, slot: Slot): void {
    if (held !== NONE) this.#remove(held, "delete");
    this.#onRemove?.(key, slot, "too_large");
  }

  /**
   * `at` is the key's slot if it is resident (even expired), from the caller's lookup.
   * `flags` {@link SlotFlag.Cold}: `value` is the encoded bytes, held cold.
   */
  #set(
    key: string,
    at: number | undefined,
    rev: number,
    created: number,
    value: unknown,
    flags: number,
    size: number,
    gen: number,
    ttl: number,
  ): void {
    let i = at;
    const cold = flags === SlotFlag.Cold;
    if (i !== undefined && this.#s.keys[i] === null) {
      if (cold) this.#off.release(i); // cold, or in the image: stays out of the Map
      else this.#off.heat(i, key);
    } else if (i !== undefined && this.#s.keys[i] !== key) i = this.#index.get(key); // moved by an eviction
    if (i === undefined) {
      if (this.#maxItems > 0 && this.size >= this.#maxItems) this.#evictHead();
      i = this.#alloc();
      this.#s.keys[i] = cold ? null : key;
      if (!cold) this.#index.set(key, i);
      this.#lru.link(i);
    } else {
      if (i !== this.#lru.tail) this.#lru.moveToTail(i);
      if (this.#maxBytes > 0) this.#bytes -= this.#s.size[i]!;
      this.#negs?.release(i, this.#s);
    }
    if (cold) this.#off.cold.add(i, key, value as Uint8Array); // sets vals[i], its address
    else this.#s.vals[i] = value;
    this.#s.flags[i] = flags;
    this.#s.rev[i] = rev;
    this.#s.created[i] = created;
    this.#s.gen[i] = gen;
    if (this.#maxBytes > 0) {
      this.#s.size[i] = size;
      const room = this.#maxBytes - size;
      while (this.#bytes > room) this.#evictHead();
      this.#bytes += size;
    }
    this.#ttl.set(i, ttl, this.#s.capacity);
    const negs = this.#negs;
    if (rev === 0 && flags === SlotFlag.Deleted && negs !== undefined) {
      negs.link(i, size);
      // Past maxNegativeShare the oldest negative slot goes, never this one.
      for (let h = negs.victim(i); h !== NONE; h = negs.victim(i)) this.#remove(h, "delete");
    }
  }

  #alloc(): number {
    const s = this.#s;
    if (s.free.length === 0 && s.top === s.capacity) this.#grow(s.capacity * 2);
    return s.free.pop() ?? s.top++;
  }

  #grow(capacity: number): void {
    if (this.#maxItems > 0) capacity = Math.min(capacity, this.#maxItems);
    capacity = Math.max(capacity, 1);
    this.#s.grow(capacity);
    this.#lru.grow(capacity);
    this.#negs?.grow(capacity);
    this.#ttl.grow(capacity);
  }

  /** Returns `n`; an empty store's columns go back to their first size (a purge frees them). */
  #shrunk(n: number): number {
    if (this.size !== 0 || this.#s.capacity <= INITIAL_CAPACITY) return n;
    this.clear();
    this.#grow(INITIAL_CAPACITY);
    return n;
  }

  #evictHead(): void {
    const i = this.#lru.head;
    if (i === NONE) return;
    this.#evictions++;
    this.#remove(i, "evict");
  }

  /** Removes the slot at `i` (a cold one without making its key); tells `onRemove` of evictions and expiries. */
  #remove(i: number, reason: RemovalReason | "delete"): number {
    const tell = reason !== "delete" && this.#onRemove !== undefined;
    const cold = (this.#s.flags[i]! & SlotFlag.Cold) !== 0;
    const key = cold ? (tell ? this.#off.cold.key(i) : "") : this.#s.keys[this.#off.touch(i)]!;
    const slot = tell ? this.slotAt(i) : undefined;
    if (!cold) this.#negs?.release(i, this.#s);
    if (cold) this.#off.cold.drop(i);
    else this.#index.delete(key);
    this.#lru.unlink(i);
    if (this.#maxBytes > 0) this.#bytes -= this.#s.size[i]!;
    this.#s.keys[i] = undefined;
    this.#s.vals[i] = undefined;
    this.#s.free.push(i);
    if (slot !== undefined) this.#onRemove!(key, slot, reason as RemovalReason);
    return 1;
  }
}
