/**
 * A warm start's snapshot held as the local store's memory image: the store
 * takes the snapshot's columns (revision, write time, deadline) into its own
 * typed arrays in one pass, and leaves each key and value in the file's
 * buffer until first touched. Finding a key that is not yet in the store's
 * `Map` is a probe of an open-addressing table over the key bytes
 * (`key_table.ts`: FNV-1a, linear probing), the file's own when every record
 * loads into the slot of its number, else built at load; the first touch of
 * a slot (a read, its removal) moves it into the store's `Map` and out of
 * this image, so a hit after that is the store's usual hit; a new encoded
 * value makes it a cold slot instead (`cold_slots.ts`: no `Map` entry). Once every slot was touched or
 * removed, the image (and the file's buffer) is dropped.
 *
 * @module
 */
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";
import { type LruList, NONE } from "./lru_list.ts";
import type { SlotColumns } from "./slot_columns.ts";
import type { SnapshotImage } from "./snapshot.ts";
import type { SlotTtl } from "./slot_ttl.ts";
import { compact, rawFlag, type RemovalReason, type Slot, SlotFlag } from "./slot.ts";

import { EMPTY, hashAscii, hashBytes, indexKeys, keyTableSize } from "./key_table.ts";

/** A table entry whose slot left the image: probing goes on past it. */
const GONE = -2;
const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** The bounds and rules a store applies to an image's records as they load. */
export interface ImageBounds {
  /** At most this many slots; 0 for no bound. */
  maxItems: number;
  /** At most this many bytes (key bytes + value bytes + overhead per slot); 0 for no bound. */
  maxBytes: number;
  /** The store's TTL rules (rule 6): a record already past them is not loaded. */
  ttl: SlotTtl;
}

/** Which records of an image load, into which slots, and what was left out. */
export interface ImageFit {
  /** Slots loaded: slot `s` holds record `records[s]`. */
  count: number;
  /** The record of each slot; undefined when slot `s` is record `s` (nothing left out before it). */
  records: Uint32Array | undefined;
  /** Each slot's life from now, ms (0 for unbounded; see `SlotTtl.ttlFor`); undefined for none. */
  ttls: Float64Array | undefined;
  /** Each slot's bytes (key bytes + value bytes + overhead); undefined without `maxBytes`. */
  sizes: Uint32Array | undefined;
  /** Total of `sizes`. */
  bytes: number;
  /** Records left out by the bounds, with why (records past their deadline are not listed). */
  dropped: [record: number, reason: RemovalReason][];
}

/**
 * Picks the records of `img` that a store bounded by `b` loads: in file order
 * (most recently used first), those still alive, up to the first that does
 * not fit; a record larger than `maxBytes` alone is left out as `too_large`,
 * every record after the bounds are reached as `evict`.
 *
 * @example
 * ```ts ignore
 * const fit = fitImage(image, { maxItems: 100, maxBytes: 0, ttl });
 * console.log(fit.count, fit.dropped.length);
 * ```
 */
export function fitImage(img: SnapshotImage, b: ImageBounds): ImageFit {
  const n = img.count;
  const cap = b.maxItems > 0 ? Math.min(n, b.maxItems) : n;
  // The common case, a replica without TTLs or byte bound: the first `cap`
  // records load as they are, in one copy per column (no pass per record).
  if (b.maxBytes === 0 && !b.ttl.bounded && (img.deadline === undefined || allZero(img.deadline))) {
    const dropped: [number, RemovalReason][] = [];
    for (let r = cap; r < n; r++) dropped.push([r, "evict"]);
    return { count: cap, records: undefined, ttls: undefined, sizes: undefined, bytes: 0, dropped };
  }
  const records = new Uint32Array(cap);
  const ttls = new Float64Array(cap);
  const sizes = new Uint32Array(cap);
  const dropped: [number, RemovalReason][] = [];
  const now = Date.now();
  let count = 0;
  let bytes = 0;
  let full = false;
  for (let r = 0; r < n; r++) {
    const deadline = img.deadline?.[r] ?? 0;
    const left = deadline === 0 ? 0 : Math.ceil(deadline - now);
    if (deadline !== 0 && left <= 0) continue;
    const ttl = b.ttl.ttlFor(img.created[r]!, left);
    if (ttl < 0) continue;
    const size = img.keyOff[r + 1]! - img.keyOff[r]! + img.valOff[r + 1]! - img.valOff[r]! +
      ENTRY_OVERHEAD_BYTES;
    if (b.maxBytes > 0 && size > b.maxBytes) {
      dropped.push([r, "too_large"]);
      continue;
    }
    if (!full && (count === cap || (b.maxBytes > 0 && bytes + size > b.maxBytes))) full = true;
    if (full) {
      dropped.push([r, "evict"]);
      continue;
    }
    records[count] = r;
    ttls[count] = ttl;
    sizes[count] = size;
    bytes += size;
    count++;
  }
  return { count, records, ttls, sizes, bytes, dropped };
}

/** Whether every value of `a` is 0 (a plain loop: `every()` with a callback is ~10× slower here). */
function allZero(a: Float64Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== 0) return false;
  return true;
}

/**
 * The keys and values of the slots a store loaded from a snapshot and has not
 * touched since: slot `s` is record `records[s]` of the image.
 */
export class StoreImage {
  readonly #img: SnapshotImage;
  readonly #records: Uint32Array | undefined;
  /** Open addressing over key bytes: a slot index, {@link EMPTY} or {@link GONE}. */
  readonly #table: Int32Array;
  readonly #mask: number;
  #scratch = new Uint8Array(256);
  /** Slots still held here (neither touched nor removed). */
  pending: number;

  /**
   * Indexes slots `0 … fit.count - 1` of `img`, as `fit` placed them: with
   * the file's key table when slot `s` is record `s` for every record, else
   * with a table built here.
   */
  constructor(img: SnapshotImage, fit: ImageFit) {
    this.#img = img;
    this.#records = fit.records;
    this.pending = fit.count;
    if (fit.records === undefined && fit.count === img.count) {
      this.#table = img.keyTable; // a view of the file's buffer, written to as slots leave
    } else {
      this.#table = new Int32Array(keyTableSize(fit.count)).fill(EMPTY);
      indexKeys(this.#table, { ...img, count: fit.count, records: fit.records });
    }
    this.#mask = this.#table.length - 1;
  }

  /** The record of slot `s`. */
  #record(s: number): number {
    return this.#records === undefined ? s : this.#records[s]!;
  }

  /** The slot holding `key`, or {@link NONE}. */
  find(key: string): number {
    let h = hashAscii(key);
    let bytes: Uint8Array | undefined;
    if (h === undefined) {
      bytes = this.#encode(key);
      h = hashBytes(bytes, 0, bytes.length);
    }
    for (let p = h & this.#mask;; p = (p + 1) & this.#mask) {
      const s = this.#table[p]!;
      if (s === EMPTY) return NONE;
      if (s === GONE) continue;
      const r = this.#record(s);
      if (bytes === undefined ? this.#sameAscii(key, r) : this.#sameBytes(bytes, r)) return s;
    }
  }

  /** Whether record `r`'s key is `key`, all ASCII. */
  #sameAscii(key: string, r: number): boolean {
    const { keys, keyOff } = this.#img;
    const from = keyOff[r]!;
    if (keyOff[r + 1]! - from !== key.length) return false;
    for (let j = 0; j < key.length; j++) if (keys[from + j] !== key.charCodeAt(j)) return false;
    return true;
  }

  /** Whether record `r`'s key is the UTF-8 `bytes`. */
  #sameBytes(bytes: Uint8Array, r: number): boolean {
    const { keys, keyOff } = this.#img;
    const from = keyOff[r]!;
    if (keyOff[r + 1]! - from !== bytes.length) return false;
    for (let j = 0; j < bytes.length; j++) if (keys[from + j] !== bytes[j]) return false;
    return true;
  }

  /** The key of slot `s`. */
  key(s: number): string {
    const r = this.#record(s);
    return decoder.decode(this.#img.keys.subarray(this.#img.keyOff[r], this.#img.keyOff[r + 1]));
  }

  /** The key of slot `s` as UTF-8: a view of the file's buffer, to copy before keeping. */
  keyBytes(s: number): Uint8Array {
    const r = this.#record(s);
    return this.#img.keys.subarray(this.#img.keyOff[r], this.#img.keyOff[r + 1]);
  }

  /** The encoded value of slot `s`: a view of the file's buffer, to copy before keeping. */
  value(s: number): Uint8Array {
    const r = this.#record(s);
    return this.#img.values.subarray(this.#img.valOff[r], this.#img.valOff[r + 1]);
  }

  /**
   * Takes the slot of `key` out of the image into the store: its key into
   * `c.keys` and `index`, its value into `c.vals` in compact form. Returns the
   * slot, or {@link NONE} when the image does not hold `key`.
   */
  take(key: string, c: SlotColumns, index: Map<string, number>): number {
    const s = this.find(key);
    if (s === NONE) return NONE;
    const v = compact(this.value(s));
    c.vals[s] = v;
    c.flags[s] = rawFlag(v);
    c.keys[s] = key;
    index.set(key, s);
    this.leave(s, c);
    return s;
  }

  /** Slot `s` of columns `c` leaves the image (its key and value are set by the caller). */
  leave(s: number, c: SlotColumns): void {
    this.#drop(s);
    if (this.pending === 0) c.own(); // the last slot: the snapshot's buffer can go
  }

  #drop(s: number): void {
    const r = this.#record(s);
    const { keys, keyOff } = this.#img;
    let p = hashBytes(keys, keyOff[r]!, keyOff[r + 1]!) & this.#mask;
    while (this.#table[p] !== s) p = (p + 1) & this.#mask;
    this.#table[p] = GONE;
    this.pending--;
  }

  #encode(key: string): Uint8Array {
    if (this.#scratch.length < key.length * 3) this.#scratch = new Uint8Array(key.length * 3);
    return this.#scratch.subarray(0, encoder.encodeInto(key, this.#scratch).written);
  }
}

/**
 * Fills slots `0 … o.fit.count - 1` of empty columns `c` from `img` as `o.fit`
 * placed them (at generation `o.gen`, their deadlines in `o.ttl`), linked in
 * `o.lru` with slot 0 the most recently used, and returns the image that
 * keeps their keys and values (their keys are null in `c` until taken), or
 * undefined when no slot was filled.
 *
 * @example
 * ```ts ignore
 * const image = fillColumns(columns, snapshot.image, { fit, lru, ttl, gen: 0 });
 * ```
 */
export function fillColumns(
  c: SlotColumns,
  img: SnapshotImage,
  o: { fit: ImageFit; lru: LruList; ttl: SlotTtl; gen: number },
): StoreImage | undefined {
  const { fit } = o;
  const { records, ttls } = fit;
  const n = fit.count;
  c.fillImage(n);
  if (records === undefined && n === c.capacity) {
    // The file's columns become the store's: views of its buffer, no copy
    // and no fresh memory to fault in (see `SlotColumns.borrowed`).
    c.rev = img.rev.subarray(0, n);
    c.created = img.created.subarray(0, n);
    c.borrowed = true;
  } else if (records === undefined) {
    c.rev.set(img.rev.subarray(0, n));
    c.created.set(img.created.subarray(0, n));
  } else {
    const { rev, created } = img;
    for (let s = 0; s < n; s++) {
      c.rev[s] = rev[records[s]!]!;
      c.created[s] = created[records[s]!]!;
    }
  }
  if (ttls !== undefined) {
    for (let s = 0; s < n; s++) if (ttls[s]! > 0) o.ttl.set(s, ttls[s]!, c.capacity);
  }
  c.flags.fill(SlotFlag.RawBytes, 0, n);
  c.gen.fill(o.gen, 0, n);
  if (c.sized && fit.sizes !== undefined) c.size.set(fit.sizes.subarray(0, n));
  o.lru.chain(n);
  return n === 0 ? undefined : new StoreImage(img, fit);
}

/**
 * The key and a slot copy of each record `fit` left out (for the store's
 * `onRemove`), at generation `gen`.
 *
 * @example
 * ```ts ignore
 * for (const [key, , reason] of droppedSlots(image, { fit, gen: 0 })) console.log(key, reason);
 * ```
 */
export function* droppedSlots(
  img: SnapshotImage,
  { fit, gen }: { fit: ImageFit; gen: number },
): Generator<[string, Slot, RemovalReason]> {
  for (const [r, reason] of fit.dropped) {
    const key = decoder.decode(img.keys.subarray(img.keyOff[r], img.keyOff[r + 1]));
    const raw = img.values.slice(img.valOff[r], img.valOff[r + 1]);
    const size = img.keyOff[r + 1]! - img.keyOff[r]! + raw.byteLength + ENTRY_OVERHEAD_BYTES;
    const created = img.created[r]!;
    const slot = { rev: img.rev[r]!, created, deleted: false, raw, value: undefined, size, gen };
    yield [key, slot, reason];
  }
}
