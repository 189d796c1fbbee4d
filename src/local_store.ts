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
 * @module
 */
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";

/**
 * One resident key, as handed out by {@link LocalStore.get}/{@link LocalStore.peek}
 * (a copy: changing it does not change the store). `raw` holds the encoded
 * bytes while the value was never decoded.
 */
export interface Slot {
  /** KV revision this slot came from; 0 for "absent as of a fetch" with no revision. */
  rev: number;
  /** When the value was written to KV, epoch ms. */
  created: number;
  /** Tombstone: the key is absent (deleted, purged, never written, or rejected). */
  deleted: boolean;
  /** Encoded bytes not decoded yet, or `undefined` once decoded (or for tombstones). */
  raw: Uint8Array | undefined;
  /** Decoded value (valid when `raw` is undefined and not deleted). */
  value: unknown;
  /** Why the stored value was refused (codec or schema); such a slot is also a tombstone. */
  rejected?: unknown;
  /** Bytes counted against `maxBytes`. */
  size: number;
  /** Resync generation that last confirmed this slot (replica mode). */
  gen: number;
}

/**
 * Why a slot left the store (or never entered it): `evict` (bounds), `expire`
 * (TTL), `too_large` (the slot alone exceeds `maxBytes`).
 */
export type RemovalReason = "evict" | "expire" | "too_large";

/** Options of {@link LocalStore}. */
export interface LocalStoreOptions {
  /** Most slots. */
  maxItems?: number;
  /** Most bytes (key + value + {@link ENTRY_OVERHEAD_BYTES}). */
  maxBytes?: number;
  /** Longest life of a slot, ms, from when it was stored. */
  maxTtlMs?: number;
  /** Bucket TTL, ms: a slot never outlives `created + bucketTtlMs`. */
  bucketTtlMs?: number;
  /** Called when a slot leaves because of the bounds (evict) or its TTL (expire), or cannot be held at all (too_large). */
  onRemove?: (key: string, slot: Slot, reason: RemovalReason) => void;
  /** Clock, for tests. */
  now?: () => number;
}

/**
 * Result of an insertion attempt: `Stored`; `Older` (an equal or newer
 * revision is resident, nothing changed); `Expired` (already past its TTL);
 * `TooLarge` (bigger than `maxBytes` on its own: not held, and an older
 * revision of the key is dropped so it cannot be served instead).
 */
export const Applied = { Stored: 1, Older: 2, Expired: 3, TooLarge: 4 } as const;
/** One of the {@link Applied} results. */
export type Applied = typeof Applied[keyof typeof Applied];

/** Flag bits of a slot (see {@link LocalStore.flagsAt}). */
export const SlotFlag = {
  /** A tombstone. */
  Deleted: 1,
  /** `valueAt()` is the encoded value as an ASCII string, not decoded yet. */
  RawText: 2,
  /** `valueAt()` is the encoded value as bytes, not decoded yet. */
  RawBytes: 4,
  /** Either raw form. */
  Raw: 6,
  /** A stored value the codec or schema refused (with Deleted); `valueAt()` is why. */
  Rejected: 8,
} as const;

const NONE = -1;
const INITIAL_CAPACITY = 1024;
// Not `fatal`: Deno's fatal decoder is several times slower, and the check
// below tells ASCII apart without it.
const asciiDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * The compact form of encoded bytes: an ASCII string (one byte per byte in
 * V8) when every byte is ASCII, otherwise a copy of the bytes.
 */
function compact(raw: Uint8Array): string | Uint8Array {
  if (raw.byteLength === 0) return "";
  const text = asciiDecoder.decode(raw);
  // Valid multi-byte sequences make the text shorter and every invalid byte
  // becomes one U+FFFD, so: same length and no U+FFFD ⇔ every byte was ASCII.
  if (text.length === raw.byteLength && text.indexOf("\uFFFD") === -1) return text;
  return raw.slice();
}

/** The bytes of a compact value. */
export function rawBytes(v: string | Uint8Array): Uint8Array {
  return typeof v === "string" ? encoder.encode(v) : v;
}

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
  readonly #maxTtlMs: number;
  readonly #maxBytes: number;
  #bucketTtlMs: number;
  readonly #now: () => number;
  readonly #onRemove: LocalStoreOptions["onRemove"];
  #evictions = 0;
  #bytes = 0;

  readonly #index = new Map<string, number>();
  #keys: (string | undefined)[] = [];
  #vals: unknown[] = [];
  #rev = new Float64Array(0);
  #created = new Float64Array(0);
  #gen = new Uint32Array(0);
  #size = new Uint32Array(0);
  #flags = new Uint8Array(0);
  #next = new Int32Array(0);
  #prev = new Int32Array(0);
  /** Expiry per slot (`performance.now()` ms, 0 for none); allocated on the first TTL. */
  #expires: Float64Array | undefined;
  #capacity = 0;
  /** Next never-used index. */
  #top = 0;
  #free: number[] = [];
  /** Least recently used. */
  #head = NONE;
  /** Most recently used. */
  #tail = NONE;

  /** Builds an empty store; at least one of `maxItems`/`maxBytes` must be set. */
  constructor(options: LocalStoreOptions) {
    const { maxItems, maxBytes } = options;
    if (!maxItems && !maxBytes) {
      throw new RangeError("Cannot build local store: one of maxItems and maxBytes is required");
    }
    this.#maxItems = maxItems ?? 0;
    this.#maxTtlMs = options.maxTtlMs ?? 0;
    this.#maxBytes = maxBytes ?? 0;
    this.#bucketTtlMs = options.bucketTtlMs ?? 0;
    this.#now = options.now ?? Date.now;
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

  /** Sets the bucket TTL (read from the stream), ms; 0 for none. */
  set bucketTtlMs(ms: number) {
    this.#bucketTtlMs = ms;
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
    if (this.#expires !== undefined && this.#expired(i)) {
      this.#remove(i, "expire");
      return NONE;
    }
    if (i !== this.#tail) this.#moveToTail(i);
    return i;
  }

  /** The index of `key`'s slot without touching its recency, or -1. */
  findQuiet(key: string): number {
    const i = this.#index.get(key);
    if (i === undefined || (this.#expires !== undefined && this.#expired(i))) return NONE;
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
   * slot into a rejected tombstone. Size and revision stay.
   */
  setDecodedAt(i: number, value: unknown, rejected?: unknown): void {
    if (rejected === undefined) {
      this.#vals[i] = value;
      this.#flags[i] = 0;
    } else {
      this.#vals[i] = rejected;
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
      size: this.#size[i]!,
      gen: this.#gen[i]!,
    };
    if ((f & SlotFlag.Rejected) !== 0) slot.rejected = this.#vals[i];
    return slot;
  }

  /** Records that the resident slot of `key` at revision `rev` was decoded (or rejected, and why). */
  decoded(key: string, rev: number, value: unknown, rejected?: unknown): void {
    const i = this.#index.get(key);
    if (i === undefined || this.#rev[i] !== rev || (this.#flags[i]! & SlotFlag.Raw) === 0) return;
    this.setDecodedAt(i, value, rejected);
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
    const held = at === undefined || this.#stale(at) ? NONE : at;
    if (held !== NONE) {
      const heldRev = this.#rev[held]!;
      if (heldRev >= rev && !(rev === 0 && heldRev === 0)) {
        if (heldRev === rev) this.#gen[held] = gen;
        return Applied.Older;
      }
    }
    const ttl = this.#ttlFor(created, ttlMs);
    if (ttl < 0) {
      if (held !== NONE) this.#remove(held, "delete");
      return Applied.Expired;
    }
    const size = key.length + (raw?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES;
    if (this.#tooLarge(key, size, held, rev, created, raw, gen)) return Applied.TooLarge;
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
   * Stores a value already in its compact encoded form (a snapshot record):
   * as {@link put} of its bytes, where `byteLength` is their length.
   */
  putEncoded(
    key: string,
    rev: number,
    created: number,
    encoded: string | Uint8Array,
    byteLength: number,
    gen = 0,
  ): Applied {
    const at = this.#index.size === 0 ? undefined : this.#index.get(key);
    const held = at === undefined || this.#stale(at) ? NONE : at;
    if (held !== NONE && this.#rev[held]! >= rev) {
      if (this.#rev[held] === rev) this.#gen[held] = gen;
      return Applied.Older;
    }
    const ttl = this.#ttlFor(created, 0);
    if (ttl < 0) {
      if (held !== NONE) this.#remove(held, "delete");
      return Applied.Expired;
    }
    const size = key.length + byteLength + ENTRY_OVERHEAD_BYTES;
    const flags = typeof encoded === "string" ? SlotFlag.RawText : SlotFlag.RawBytes;
    if (this.#tooLarge(key, size, held, rev, created, rawBytes(encoded), gen)) {
      return Applied.TooLarge;
    }
    this.#set(key, at, rev, created, encoded, flags, size, gen, ttl);
    return Applied.Stored;
  }

  /** Stores an already-decoded value (own writes). Same revision rule as {@link put}. */
  putValue(
    key: string,
    rev: number,
    created: number,
    value: unknown,
    encodedBytes: number,
  ): Applied {
    const at = this.#index.get(key);
    const held = at === undefined || this.#stale(at) ? NONE : at;
    if (held !== NONE && this.#rev[held]! >= rev && !(rev === 0 && this.#rev[held] === 0)) {
      return Applied.Older;
    }
    const ttl = this.#ttlFor(created, 0);
    if (ttl < 0) return Applied.Expired;
    const gen = held === NONE ? 0 : this.#gen[held]!;
    const size = key.length + encodedBytes + ENTRY_OVERHEAD_BYTES;
    if (this.#maxBytes > 0 && size > this.#maxBytes) {
      if (held !== NONE) this.#remove(held, "delete");
      this.#onRemove?.(
        key,
        { rev, created, deleted: false, raw: undefined, value, size, gen },
        "too_large",
      );
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
    this.#head = this.#tail = NONE;
    this.#bytes = 0;
  }

  /** Removes slots whose generation is below `gen` and whose revision is below `beforeRev`. */
  sweep(gen: number, beforeRev: number): number {
    return this.#removeWhere((i) => this.#gen[i]! < gen && this.#rev[i]! < beforeRev);
  }

  /**
   * Removes slots with a revision in `[1, rev)`: their message is no longer in
   * the stream (purged, aged out or dropped by a limit) and nothing newer was
   * seen, so the key is gone. Slots at revision 0 (loader results, negative
   * fetches) are kept.
   */
  dropBelow(rev: number): number {
    return this.#removeWhere((i) => this.#rev[i]! > 0 && this.#rev[i]! < rev);
  }

  /** Removes tombstones with a revision up to `rev`; returns how many. */
  dropTombstones(rev: number): number {
    return this.#removeWhere((i) =>
      (this.#flags[i]! & SlotFlag.Deleted) !== 0 && this.#rev[i]! <= rev
    );
  }

  /** Iterates resident slots (copies), most recently used first. */
  *entries(): IterableIterator<[string, Slot]> {
    for (let i = this.#tail; i !== NONE; i = this.#prev[i]!) {
      if (this.#expires !== undefined && this.#expired(i)) continue;
      yield [this.#keys[i]!, this.slotAt(i)];
    }
  }

  /**
   * Calls `fn` for every resident slot, most recently used first, with its
   * value in compact encoded form when never decoded (see {@link SlotFlag}).
   * `fn` must not change the store.
   */
  forEach(
    fn: (key: string, rev: number, created: number, flags: number, value: unknown) => void,
  ): void {
    for (let i = this.#tail; i !== NONE; i = this.#prev[i]!) {
      if (this.#expires !== undefined && this.#expired(i)) continue;
      fn(this.#keys[i]!, this.#rev[i]!, this.#created[i]!, this.#flags[i]!, this.#vals[i]);
    }
  }

  // ---- internals -------------------------------------------------------------------

  #tooLarge(
    key: string,
    size: number,
    held: number,
    rev: number,
    created: number,
    raw: Uint8Array | undefined,
    gen: number,
  ): boolean {
    // Like lru-cache, refuse an entry larger than maxBytes (and drop the key's
    // old value) — and say so, so the caller can serve it without holding it.
    if (this.#maxBytes === 0 || size <= this.#maxBytes) return false;
    if (held !== NONE) this.#remove(held, "delete");
    this.#onRemove?.(
      key,
      { rev, created, deleted: raw === undefined, raw, value: undefined, size, gen },
      "too_large",
    );
    return true;
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
      this.#link(i);
    } else {
      if (i !== this.#tail) this.#moveToTail(i);
      this.#bytes -= this.#size[i]!;
    }
    this.#vals[i] = value;
    this.#flags[i] = flags;
    this.#rev[i] = rev;
    this.#created[i] = created;
    this.#gen[i] = gen;
    this.#size[i] = size;
    if (this.#maxBytes > 0) {
      const room = this.#maxBytes - size;
      while (this.#bytes > room) this.#evictHead();
    }
    this.#bytes += size;
    if (ttl > 0) {
      if (this.#expires === undefined) this.#expires = new Float64Array(this.#capacity);
      this.#expires[i] = performance.now() + ttl;
    } else if (this.#expires !== undefined) {
      this.#expires[i] = 0;
    }
  }

  #stale(i: number): boolean {
    return this.#expires !== undefined && this.#expired(i);
  }

  #expired(i: number): boolean {
    const e = this.#expires![i]!;
    return e !== 0 && performance.now() > e;
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
    this.#size = grown(this.#size, (n) => new Uint32Array(n));
    this.#flags = grown(this.#flags, (n) => new Uint8Array(n));
    this.#next = grown(this.#next, (n) => new Int32Array(n));
    this.#prev = grown(this.#prev, (n) => new Int32Array(n));
    if (this.#expires) this.#expires = grown(this.#expires, (n) => new Float64Array(n));
    // #keys and #vals grow by assignment at their end (a preallocated
    // `new Array(n)` of this size would hold dictionary elements).
    this.#capacity = capacity;
  }

  /** Appends `i` as most recently used. */
  #link(i: number): void {
    this.#prev[i] = this.#tail;
    this.#next[i] = NONE;
    if (this.#tail !== NONE) this.#next[this.#tail] = i;
    else this.#head = i;
    this.#tail = i;
  }

  #unlink(i: number): void {
    const p = this.#prev[i]!;
    const n = this.#next[i]!;
    if (p !== NONE) this.#next[p] = n;
    else this.#head = n;
    if (n !== NONE) this.#prev[n] = p;
    else this.#tail = p;
  }

  #moveToTail(i: number): void {
    this.#unlink(i);
    this.#link(i);
  }

  #evictHead(): void {
    const i = this.#head;
    if (i === NONE) return;
    this.#evictions++;
    this.#remove(i, "evict");
  }

  /** Removes the slot at `i`; tells `onRemove` about evictions and expiries. */
  #remove(i: number, reason: RemovalReason | "delete"): void {
    const key = this.#keys[i]!;
    const slot = reason !== "delete" && this.#onRemove !== undefined ? this.slotAt(i) : undefined;
    this.#index.delete(key);
    this.#unlink(i);
    this.#bytes -= this.#size[i]!;
    this.#keys[i] = undefined;
    this.#vals[i] = undefined;
    this.#free.push(i);
    if (slot !== undefined) this.#onRemove!(key, slot, reason as RemovalReason);
  }

  #removeWhere(drop: (i: number) => boolean): number {
    let removed = 0;
    for (let i = this.#tail; i !== NONE;) {
      const prev = this.#prev[i]!;
      if (!(this.#expires !== undefined && this.#expired(i)) && drop(i)) {
        this.#remove(i, "delete");
        removed++;
      }
      i = prev;
    }
    return removed;
  }

  /** Remaining life of a slot written at `created`: 0 for unbounded, negative if already expired. */
  #ttlFor(created: number, extraMs: number): number {
    let ttl = this.#maxTtlMs;
    if (extraMs > 0 && (ttl === 0 || extraMs < ttl)) ttl = extraMs;
    if (this.#bucketTtlMs > 0) {
      const left = created + this.#bucketTtlMs - this.#now();
      if (left <= 0) return -1;
      if (ttl === 0 || left < ttl) ttl = Math.ceil(left);
    }
    return ttl;
  }
}
