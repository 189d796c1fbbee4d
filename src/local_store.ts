/**
 * The local store: a bounded LRU of revision-bearing slots (values and
 * tombstones) that enforces rule 1 (revision wins) and rule 6 (TTL alignment).
 *
 * It keeps its own LRU as parallel arrays (one `Map` from key to index, typed
 * arrays for revision, time, size and links) instead of one object per entry:
 * a hit is one `Map` lookup and one array read, like a plain LRU, and a
 * replica's never-read values cost their bytes and little else. Values are
 * held encoded until first read: as a one-byte string when the bytes are
 * ASCII (JSON almost always is), otherwise as a copy of the bytes.
 *
 * This file holds the store's columns, its hit path and its revision rule; a
 * slot's form is in `slot.ts`, the recency list in `lru_list.ts`, the TTLs in
 * `slot_ttl.ts`, the negative slots and their bound in `negative_slots.ts`,
 * the whole-store passes (visit, copy, sweep) in `store_scan.ts` and the
 * options in `local_store_options.ts`.
 *
 * @module
 */
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";
import { LruList, NONE } from "./lru_list.ts";
import { SlotTtl } from "./slot_ttl.ts";
import { NegativeSlots } from "./negative_slots.ts";
import type { LocalStoreOptions, StoredValue } from "./local_store_options.ts";
import {
  forEachSlot,
  removeWhere,
  slotEntries,
  type SlotView,
  type SlotVisitor,
} from "./store_scan.ts";
import {
  Applied,
  compact,
  rawBytes,
  type Refusal,
  type RemovalReason,
  type Slot,
  SlotFlag,
} from "./slot.ts";

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
  #keys: (string | undefined)[] = [];
  #vals: unknown[] = [];
  #rev = new Float64Array(0);
  #created = new Float64Array(0);
  #gen = new Uint32Array(0);
  /** Bytes of each slot, kept only when `maxBytes` bounds the store (4 B a slot otherwise saved). */
  #size = new Uint32Array(0);
  #flags = new Uint8Array(0);
  readonly #ttl: SlotTtl;
  #capacity = 0;
  /** Next never-used index. */
  #top = 0;
  #free: number[] = [];
  readonly #lru = new LruList();

  /** Builds an empty store; at least one of `maxItems`/`maxBytes` must be set. */
  constructor(options: LocalStoreOptions) {
    const { maxItems, maxBytes } = options;
    if (!maxItems && !maxBytes) {
      throw new RangeError("Cannot build local store: one of maxItems and maxBytes is required");
    }
    this.#maxItems = maxItems ?? 0;
    this.#maxBytes = maxBytes ?? 0;
    this.#negs = NegativeSlots.bounded(options.maxNegativeShare ?? 1, {
      maxItems: this.#maxItems,
      maxBytes: this.#maxBytes,
    });
    this.#ttl = new SlotTtl(
      options.maxTtlMs ?? 0,
      options.bucketTtlMs ?? 0,
      options.now ?? Date.now,
    );
    this.#onRemove = options.onRemove;
    this.#grow(Math.min(this.#maxItems || INITIAL_CAPACITY, INITIAL_CAPACITY));
  }

  /** Number of resident slots. */
  get size(): number {
    return this.#index.size;
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

  // ---- the hit path: indexes ------------------------------------------------

  /**
   * The index of `key`'s slot, marking it recently used, or -1 if absent or
   * expired (an expired slot is removed). Read it with the `…At(i)` methods
   * before the next change to the store.
   */
  find(key: string): number {
    const i = this.#index.get(key);
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
    const i = this.#index.get(key);
    if (i === undefined || (this.#ttl.expired(i))) return NONE;
    return i;
  }

  /** {@link SlotFlag} bits of the slot at `i`. */
  flagsAt(i: number): number {
    return this.#flags[i]!;
  }

  /** The decoded value at `i`, or its encoded form while a {@link SlotFlag.Raw} flag is set. */
  valueAt(i: number): unknown {
    return this.#vals[i];
  }

  /** The revision of the slot at `i`. */
  revAt(i: number): number {
    return this.#rev[i]!;
  }

  /** When the slot's value was written to KV, epoch ms. */
  createdAt(i: number): number {
    return this.#created[i]!;
  }

  /**
   * Replaces the encoded value at `i` by its decoded `value`, or, when
   * `rejected` is given (why the codec or schema refused the value), turns the
   * slot into a rejected tombstone that keeps the encoded value (a
   * {@link Refusal}). Size and revision stay.
   */
  setDecodedAt(i: number, value: unknown, rejected?: unknown): void {
    if (rejected === undefined) {
      this.#vals[i] = value;
      this.#flags[i] = 0;
    } else {
      const held = this.#vals[i];
      const encoded = (this.#flags[i]! & SlotFlag.Raw) !== 0
        ? held as string | Uint8Array
        : (held as Refusal | undefined)?.encoded ?? "";
      this.#vals[i] = { reason: rejected, encoded } satisfies Refusal;
      this.#flags[i] = SlotFlag.Deleted | SlotFlag.Rejected;
    }
  }

  /** The encoded bytes at `i` if it was never decoded. */
  rawAt(i: number): Uint8Array | undefined {
    const f = this.#flags[i]!;
    if ((f & SlotFlag.Raw) === 0) return undefined;
    return rawBytes(this.#vals[i] as string | Uint8Array);
  }

  /** A copy of the slot at `i`. */
  slotAt(i: number): Slot {
    const f = this.#flags[i]!;
    const raw = (f & SlotFlag.Raw) !== 0;
    const slot: Slot = {
      rev: this.#rev[i]!,
      created: this.#created[i]!,
      deleted: (f & SlotFlag.Deleted) !== 0,
      raw: raw ? rawBytes(this.#vals[i] as string | Uint8Array) : undefined,
      value: raw || (f & SlotFlag.Deleted) !== 0 ? undefined : this.#vals[i],
      size: this.#maxBytes > 0 ? this.#size[i]! : 0,
      gen: this.#gen[i]!,
    };
    if ((f & SlotFlag.Rejected) !== 0) slot.rejected = (this.#vals[i] as Refusal).reason;
    return slot;
  }

  /** Records that the resident slot of `key` at revision `rev` was decoded to `value`. */
  decoded(key: string, rev: number, value: unknown): void {
    const i = this.#encodedAt(key, rev);
    if (i !== NONE) this.setDecodedAt(i, value);
  }

  /** Records that the codec or schema refused the resident slot of `key` at `rev`, and why. */
  rejected(key: string, rev: number, why: unknown): void {
    const i = this.#encodedAt(key, rev);
    if (i !== NONE) this.setDecodedAt(i, undefined, why);
  }

  /** The index of `key`'s slot if it is at `rev` and still encoded, else {@link NONE}. */
  #encodedAt(key: string, rev: number): number {
    const i = this.#index.get(key);
    if (i === undefined || this.#rev[i] !== rev || (this.#flags[i]! & SlotFlag.Raw) === 0) {
      return NONE;
    }
    return i;
  }

  // ---- slot copies ------------------------------------------------------------

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

  // ---- writes -------------------------------------------------------------------

  /**
   * Stores a value (`raw` bytes, decoded later; copied, so the caller may
   * reuse them) or a tombstone (`raw` undefined) at `rev`, unless an equal or
   * newer revision is resident. `ttlMs` further bounds this slot's life
   * (negative caching).
   */
  put(
    key: string,
    rev: number,
    created: number,
    raw: Uint8Array | undefined,
    gen = 0,
    ttlMs = 0,
  ): Applied {
    const at = this.#index.size === 0 ? undefined : this.#index.get(key);
    const held = at === undefined || this.#ttl.expired(at) ? NONE : at;
    if (held !== NONE) {
      const heldRev = this.#rev[held]!;
      if (heldRev >= rev && !(rev === 0 && heldRev === 0)) {
        if (heldRev === rev) this.#gen[held] = gen;
        return Applied.Older;
      }
    }
    const ttl = this.#ttl.ttlFor(created, ttlMs);
    if (ttl < 0) {
      if (held !== NONE) this.#remove(held, "delete");
      return Applied.Expired;
    }
    const size = key.length + (raw?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES;
    if (this.#maxBytes > 0 && size > this.#maxBytes) {
      const refused = {
        rev,
        created,
        deleted: raw === undefined,
        raw,
        value: undefined,
        size,
        gen,
      };
      this.#refuse(key, held, refused);
      return Applied.TooLarge;
    }
    const value = raw === undefined ? undefined : compact(raw);
    const flags = raw === undefined
      ? SlotFlag.Deleted
      : typeof value === "string"
      ? SlotFlag.RawText
      : SlotFlag.RawBytes;
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
    const at = this.#index.get(key);
    const held = at === undefined || this.#ttl.expired(at) ? NONE : at;
    if (held !== NONE && this.#rev[held]! >= rev && !(rev === 0 && this.#rev[held] === 0)) {
      return Applied.Older;
    }
    const ttl = this.#ttl.ttlFor(created, 0);
    if (ttl < 0) return Applied.Expired;
    const gen = held === NONE ? 0 : this.#gen[held]!;
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
    const i = this.#index.get(key);
    if (i !== undefined) this.#remove(i, "delete");
  }

  /** Removes every slot. */
  clear(): void {
    this.#index.clear();
    this.#keys.fill(undefined);
    this.#vals.fill(undefined);
    this.#free = [];
    this.#top = 0;
    this.#lru.clear();
    this.#bytes = 0;
    this.#negs?.clear();
  }

  /** Removes slots whose generation is below `gen` and whose revision is below `beforeRev`. */
  sweep(gen: number, beforeRev: number): number {
    const v = this.#view();
    return removeWhere(v, (i) => this.#gen[i]! < gen && v.rev[i]! < beforeRev);
  }

  /**
   * Removes slots with a revision in `[1, rev)`: their message is no longer in
   * the stream (purged, aged out or dropped by a limit) and nothing newer was
   * seen, so the key is gone. Slots at revision 0 (loader results, negative
   * fetches) are kept.
   */
  dropBelow(rev: number): number {
    const v = this.#view();
    return removeWhere(v, (i) => v.rev[i]! > 0 && v.rev[i]! < rev);
  }

  /**
   * Removes tombstones with a revision up to `rev`; returns how many. A
   * refused value ({@link SlotFlag.Rejected}) is not a tombstone to drop: its
   * key holds a value, which must keep answering "refused", not "absent".
   */
  dropTombstones(rev: number): number {
    const v = this.#view();
    const mask = SlotFlag.Deleted | SlotFlag.Rejected;
    return removeWhere(v, (i) => (v.flags[i]! & mask) === SlotFlag.Deleted && v.rev[i]! <= rev);
  }

  /** Iterates resident slots (copies), most recently used first. */
  entries(): IterableIterator<[string, Slot]> {
    return slotEntries(this.#view());
  }

  /**
   * Calls `fn` for every resident slot, most recently used first, with its
   * value in compact encoded form when never decoded (see {@link SlotFlag})
   * and its deadline on the wall clock (`Date.now()` ms, 0 for none: rule 6's
   * `maxTtlMs`, bucket TTL or the value's own `Nats-TTL`, whichever ends
   * first). `fn` must not change the store.
   */
  forEach(fn: SlotVisitor): void {
    forEachSlot(this.#view(), fn);
  }

  /** The columns for one whole-store pass (src/store_scan.ts). */
  #view(): SlotView {
    return {
      keys: this.#keys,
      vals: this.#vals,
      rev: this.#rev,
      created: this.#created,
      flags: this.#flags,
      lru: this.#lru,
      ttl: this.#ttl,
      slotAt: (i) => this.slotAt(i),
      remove: (i) => this.#remove(i, "delete"),
    };
  }

  // ---- internals -------------------------------------------------------------------

  /**
   * Refuses `slot`, larger than `maxBytes`: like lru-cache, drops the key's
   * old value (`held`) and says so, so the caller can serve it without
   * holding it.
   */
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
    if (i !== undefined && this.#keys[i] !== key) i = this.#index.get(key); // moved by an eviction
    if (i === undefined) {
      if (this.#maxItems > 0 && this.#index.size >= this.#maxItems) this.#evictHead();
      i = this.#alloc();
      this.#keys[i] = key;
      this.#index.set(key, i);
      this.#lru.link(i);
    } else {
      if (i !== this.#lru.tail) this.#lru.moveToTail(i);
      if (this.#maxBytes > 0) this.#bytes -= this.#size[i]!;
      if (this.#isNegative(i)) this.#unlinkNegative(i);
    }
    this.#vals[i] = value;
    this.#flags[i] = flags;
    this.#rev[i] = rev;
    this.#created[i] = created;
    this.#gen[i] = gen;
    if (this.#maxBytes > 0) {
      this.#size[i] = size;
      const room = this.#maxBytes - size;
      while (this.#bytes > room) this.#evictHead();
      this.#bytes += size;
    }
    this.#ttl.set(i, ttl, this.#capacity);
    const negs = this.#negs;
    if (rev === 0 && flags === SlotFlag.Deleted && negs !== undefined) {
      negs.link(i, size);
      // Past maxNegativeShare the oldest negative slot goes, never this one.
      for (let h = negs.victim(i); h !== NONE; h = negs.victim(i)) this.#remove(h, "delete");
    }
  }

  /** Whether slot `i` counts as negative (linked in `#negs`). */
  #isNegative(i: number): boolean {
    return this.#negs !== undefined && this.#rev[i] === 0 && this.#flags[i] === SlotFlag.Deleted;
  }

  /** Unlinks negative slot `i`; its bytes are kept in `#size` only with `maxBytes`. */
  #unlinkNegative(i: number): void {
    const size = this.#maxBytes > 0 ? this.#size[i]! : this.#keys[i]!.length + ENTRY_OVERHEAD_BYTES;
    this.#negs!.unlink(i, size);
  }

  #alloc(): number {
    const f = this.#free.pop();
    if (f !== undefined) return f;
    if (this.#top === this.#capacity) this.#grow(this.#capacity * 2);
    return this.#top++;
  }

  #grow(capacity: number): void {
    if (this.#maxItems > 0) capacity = Math.min(capacity, this.#maxItems);
    capacity = Math.max(capacity, 1);
    const grown = <A extends Float64Array | Uint32Array | Uint8Array | Int32Array>(
      a: A,
      make: (n: number) => A,
    ): A => {
      const b = make(capacity);
      b.set(a as never);
      return b;
    };
    this.#rev = grown(this.#rev, (n) => new Float64Array(n));
    this.#created = grown(this.#created, (n) => new Float64Array(n));
    this.#gen = grown(this.#gen, (n) => new Uint32Array(n));
    if (this.#maxBytes > 0) this.#size = grown(this.#size, (n) => new Uint32Array(n));
    this.#flags = grown(this.#flags, (n) => new Uint8Array(n));
    this.#lru.grow(capacity);
    this.#negs?.grow(capacity);
    this.#ttl.grow(capacity);
    // #keys and #vals grow by assignment at their end (a preallocated
    // `new Array(n)` of this size would hold dictionary elements).
    this.#capacity = capacity;
  }

  #evictHead(): void {
    const i = this.#lru.head;
    if (i === NONE) return;
    this.#evictions++;
    this.#remove(i, "evict");
  }

  /** Removes the slot at `i`; tells `onRemove` about evictions and expiries. */
  #remove(i: number, reason: RemovalReason | "delete"): void {
    const key = this.#keys[i]!;
    const slot = reason !== "delete" && this.#onRemove !== undefined ? this.slotAt(i) : undefined;
    if (this.#isNegative(i)) this.#unlinkNegative(i);
    this.#index.delete(key);
    this.#lru.unlink(i);
    if (this.#maxBytes > 0) this.#bytes -= this.#size[i]!;
    this.#keys[i] = undefined;
    this.#vals[i] = undefined;
    this.#free.push(i);
    if (slot !== undefined) this.#onRemove!(key, slot, reason as RemovalReason);
  }
}
