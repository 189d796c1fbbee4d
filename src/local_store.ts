/**
 * The local store: a bounded LRU of revision-bearing slots (values and
 * tombstones) that enforces rule 1 (revision wins) and rule 6 (TTL alignment).
 *
 * One `Map` from key to slot index and typed-array columns instead of one
 * object per entry: a hit is one `Map` lookup and one array read, and a
 * replica's never-read values cost their bytes and little else (held encoded
 * until first read). This file holds which key has which slot, the hit path,
 * the rules and the bounds; the columns are in `slot_columns.ts`, a slot's
 * form in `slot.ts`, the recency list in `lru_list.ts`, the TTLs in
 * `slot_ttl.ts`, the negative slots in `negative_slots.ts`, the whole-store
 * passes in `store_scan.ts`, a warm start's snapshot held as the store's
 * image in `store_image.ts` and the options in `local_store_options.ts`.
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
import type { ImageBounds, StoreImage } from "./store_image.ts";
import { SlotColumns } from "./slot_columns.ts";
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
  /** Slots loaded from a snapshot and not touched since (their key is not in `#index` yet). */
  #image: StoreImage | undefined;

  /** Builds an empty store; at least one of `maxItems`/`maxBytes` must be set. */
  constructor(options: LocalStoreOptions) {
    const { maxItems, maxBytes } = options;
    if (!maxItems && !maxBytes) {
      throw new RangeError("Cannot build local store: one of maxItems and maxBytes is required");
    }
    this.#maxItems = maxItems ?? 0;
    this.#maxBytes = maxBytes ?? 0;
    this.#s = new SlotColumns(this.#maxBytes > 0);
    this.#negs = NegativeSlots.bounded(options.maxNegativeShare ?? 1, {
      maxItems: this.#maxItems,
      maxBytes: this.#maxBytes,
    });
    const { maxTtlMs = 0, bucketTtlMs = 0, now = Date.now } = options;
    this.#ttl = new SlotTtl(maxTtlMs, bucketTtlMs, now);
    this.#bounds = { maxItems: this.#maxItems, maxBytes: this.#maxBytes, ttl: this.#ttl };
    this.#onRemove = options.onRemove;
    this.#grow(Math.min(this.#maxItems || INITIAL_CAPACITY, INITIAL_CAPACITY));
  }

  /** Number of resident slots. */
  get size(): number {
    return this.#index.size + (this.#image?.pending ?? 0);
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

  /**
   * The index of `key`'s slot, marking it recently used, or -1 if absent or expired (then
   * removed). Read it with the `…At(i)` methods before the next change to the store.
   */
  find(key: string): number {
    const i = this.#index.get(key) ?? this.#fromImage(key);
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
    const i = this.#index.get(key) ?? this.#fromImage(key);
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
    return this.#s.slotAt(i);
  }

  /** Records that the resident slot of `key` at revision `rev` was decoded to `value`. */
  decoded(key: string, rev: number, value: unknown): void {
    const i = this.#index.get(key) ?? this.#fromImage(key);
    if (i !== undefined && this.#s.encodedAt(i, rev)) this.#s.setDecodedAt(i, value);
  }

  /** Records that the codec or schema refused the resident slot of `key` at `rev`, and why. */
  rejected(key: string, rev: number, why: unknown): void {
    const i = this.#index.get(key) ?? this.#fromImage(key);
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
    return this.findQuiet(key) !== NONE;
  }

  /**
   * Stores a value (`raw` bytes, decoded later; copied) or a tombstone (`raw` undefined) at
   * `rev`, unless an equal or newer revision is resident (rule 1). `ttlMs`
   * further bounds this slot's life (negative caching).
   */
  put(
    key: string,
    rev: number,
    created: number,
    raw: Uint8Array | undefined,
    gen = 0,
    ttlMs = 0,
  ): Applied {
    const at = this.#index.get(key) ?? this.#fromImage(key);
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
      this.#refuse(key, held, { rev, created, deleted, raw, value: undefined, size, gen });
      return Applied.TooLarge;
    }
    const value = raw === undefined ? undefined : compact(raw);
    const flags = raw === undefined ? SlotFlag.Deleted : rawFlag(value as string | Uint8Array);
    this.#set(key, at, rev, created, value, flags, size, gen, ttl);
    return Applied.Stored;
  }

  /**
   * Stores an already-decoded value (own writes and loader results): `rev`,
   * `created` and `encodedBytes` (the encoded length, counted against
   * `maxBytes`). Same revision rule as {@link put}.
   */
  putValue(key: string, v: StoredValue): Applied {
    const { rev, created, value, encodedBytes } = v;
    const at = this.#index.get(key) ?? this.#fromImage(key);
    const held = at === undefined || this.#ttl.expired(at) ? NONE : at;
    if (held !== NONE && this.#keeps(held, rev)) return Applied.Older;
    const ttl = this.#ttl.ttlFor(created, 0);
    if (ttl < 0) return Applied.Expired;
    const gen = held === NONE ? 0 : this.#s.gen[held]!;
    const size = key.length + encodedBytes + ENTRY_OVERHEAD_BYTES;
    if (this.#maxBytes > 0 && size > this.#maxBytes) {
      this.#refuse(key, held, { rev, created, deleted: false, raw: undefined, value, size, gen });
      return Applied.TooLarge;
    }
    this.#set(key, at, rev, created, value, 0, size, gen, ttl);
    return Applied.Stored;
  }

  /** Removes `key` (no revision check). */
  delete(key: string): void {
    const i = this.#index.get(key) ?? this.#fromImage(key);
    if (i !== undefined) this.#remove(i, "delete");
  }

  /** Removes every slot. */
  clear(): void {
    this.#index.clear();
    this.#s.clear();
    this.#lru.clear();
    this.#bytes = 0;
    this.#negs?.clear();
    this.#image = undefined;
  }

  /** Removes slots whose generation is below `gen` and revision below `beforeRev` (a resync's sweep). */
  sweep(gen: number, beforeRev: number): number {
    return removeWhere(this.#view(), (i) => this.#s.gen[i]! < gen && this.#s.rev[i]! < beforeRev);
  }

  /** Removes slots at a revision in `[1, rev)` (see `dropBelow` in `store_scan.ts`). */
  dropBelow(rev: number): number {
    return dropBelow(this.#view(), rev);
  }

  /** Removes tombstones at a revision up to `rev` (see `dropTombstones` in `store_scan.ts`). */
  dropTombstones(rev: number): number {
    return dropTombstones(this.#view(), rev);
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
      image: this.#image,
      slotAt: (i) => this.slotAt(this.#touch(i)),
      remove: (i) => this.#remove(i, "delete"),
    };
  }

  /**
   * Loads a verified snapshot into this empty store as its image (`store_image.ts`), within
   * the bounds (`onRemove` hears what does not fit) and TTLs. Returns the slots
   * loaded, or -1 (nothing loaded) when the store is not empty.
   */
  loadImage(img: SnapshotImage, gen: number): number {
    if (this.size !== 0) return NONE;
    this.clear();
    const fit = fitImage(img, this.#bounds);
    if (fit.count > this.#s.capacity) this.#grow(fit.count);
    this.#image = fillColumns(this.#s, img, { fit, lru: this.#lru, ttl: this.#ttl, gen });
    this.#bytes = fit.bytes;
    for (const [k, slot, why] of droppedSlots(img, fit, gen)) this.#onRemove?.(k, slot, why);
    return fit.count;
  }

  /** Rule 1 (revision wins): whether the live slot `held` stays against `rev` (equal or newer). */
  #keeps(held: number, rev: number): boolean {
    const heldRev = this.#s.rev[held]!;
    return heldRev >= rev && !(rev === 0 && heldRev === 0);
  }

  /** The slot of `key` if the image holds it, taken into `#index` first; else undefined. */
  #fromImage(key: string): number | undefined {
    const image = this.#image;
    if (image === undefined) return undefined;
    const i = image.take(key, this.#s, this.#index);
    if (image.pending === 0) this.#image = undefined;
    return i === NONE ? undefined : i;
  }

  /** Slot `i`, taken out of the image first if it is still there (its key unset). */
  #touch(i: number): number {
    if (this.#s.keys[i] === null) this.#fromImage(this.#image!.key(i));
    return i;
  }

  /** Refuses `slot`, over `maxBytes`: drops the key's old value (`held`) and says so (like lru-cache). */
  #refuse(key: string, held: number, slot: Slot): void {
    if (held !== NONE) this.#remove(held, "delete");
    this.#onRemove?.(key, slot, "too_large");
  }

  /** `at` is the key's index if it is in the map (even expired), from the caller's lookup. */
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
    if (i !== undefined && this.#s.keys[i] !== key) i = this.#index.get(key); // moved by an eviction
    if (i === undefined) {
      if (this.#maxItems > 0 && this.size >= this.#maxItems) this.#evictHead();
      i = this.#alloc();
      this.#s.keys[i] = key;
      this.#index.set(key, i);
      this.#lru.link(i);
    } else {
      if (i !== this.#lru.tail) this.#lru.moveToTail(i);
      if (this.#maxBytes > 0) this.#bytes -= this.#s.size[i]!;
      this.#unlinkIfNegative(i);
    }
    this.#s.vals[i] = value;
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

  /** Unlinks slot `i` from `#negs` if it is a negative slot (revision-0 tombstone). */
  #unlinkIfNegative(i: number): void {
    const s = this.#s;
    if (this.#negs === undefined || s.rev[i] !== 0 || s.flags[i] !== SlotFlag.Deleted) return;
    this.#negs.unlink(i, s.sized ? s.size[i]! : s.keys[i]!.length + ENTRY_OVERHEAD_BYTES);
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

  #evictHead(): void {
    const i = this.#lru.head;
    if (i === NONE) return;
    this.#evictions++;
    this.#remove(i, "evict");
  }

  /** Removes the slot at `i`; tells `onRemove` about evictions and expiries. */
  #remove(i: number, reason: RemovalReason | "delete"): void {
    const key = this.#s.keys[this.#touch(i)]!;
    const slot = reason !== "delete" && this.#onRemove !== undefined ? this.slotAt(i) : undefined;
    this.#unlinkIfNegative(i);
    this.#index.delete(key);
    this.#lru.unlink(i);
    if (this.#maxBytes > 0) this.#bytes -= this.#s.size[i]!;
    this.#s.keys[i] = undefined;
    this.#s.vals[i] = undefined;
    this.#s.free.push(i);
    if (slot !== undefined) this.#onRemove!(key, slot, reason as RemovalReason);
  }
}
