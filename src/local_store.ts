/**
 * The local store: a bounded LRU of revision-bearing slots (values and
 * tombstones) that enforces rule 1 (revision wins) and rule 6 (TTL alignment).
 *
 * @module
 */
import { LRUCache } from "lru-cache";
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";

/**
 * One resident key. `raw` holds the encoded bytes until the first read decodes
 * them (so a replica bootstrap does not pay for decoding keys nobody reads).
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
  readonly #lru: LRUCache<string, Slot>;
  readonly #maxTtlMs: number;
  readonly #maxBytes: number;
  #bucketTtlMs: number;
  readonly #now: () => number;
  readonly #onRemove: LocalStoreOptions["onRemove"];
  #evictions = 0;

  /** Builds an empty store; at least one of `maxItems`/`maxBytes` must be set. */
  constructor(options: LocalStoreOptions) {
    const { maxItems, maxBytes } = options;
    if (!maxItems && !maxBytes) {
      throw new RangeError("Cannot build local store: one of maxItems and maxBytes is required");
    }
    this.#maxTtlMs = options.maxTtlMs ?? 0;
    this.#maxBytes = maxBytes ?? 0;
    this.#bucketTtlMs = options.bucketTtlMs ?? 0;
    this.#now = options.now ?? Date.now;
    this.#onRemove = options.onRemove;
    const lruOptions = {
      ...(maxItems ? { max: maxItems } : {}),
      ...(maxBytes ? { maxSize: maxBytes, sizeCalculation: (s: Slot) => s.size } : {}),
      dispose: (slot: Slot, key: string, reason: LRUCache.DisposeReason) => {
        if (reason === "evict") this.#evictions++;
        if (reason === "evict" || reason === "expire") this.#onRemove?.(key, slot, reason);
      },
    } as LRUCache.Options<string, Slot, unknown>;
    this.#lru = new LRUCache<string, Slot>(lruOptions);
  }

  /** Number of resident slots. */
  get size(): number {
    return this.#lru.size;
  }

  /** Bytes counted against `maxBytes` (0 when only `maxItems` bounds the store). */
  get bytes(): number {
    return this.#lru.calculatedSize;
  }

  /** Slots dropped by the bounds since creation. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Sets the bucket TTL (read from the stream), ms; 0 for none. */
  set bucketTtlMs(ms: number) {
    this.#bucketTtlMs = ms;
  }

  /** The slot of `key`, marking it recently used; undefined if absent or expired. */
  get(key: string): Slot | undefined {
    return this.#lru.get(key);
  }

  /** The slot of `key` without touching its recency. */
  peek(key: string): Slot | undefined {
    return this.#lru.peek(key);
  }

  /** Whether `key` holds a slot (value or tombstone), without touching recency. */
  has(key: string): boolean {
    return this.#lru.has(key);
  }

  /**
   * Stores a value (`raw` bytes, decoded later) or a tombstone (`raw`
   * undefined) at `rev`, unless an equal or newer revision is resident.
   * `ttlMs` further bounds this slot's life (negative caching).
   */
  put(
    key: string,
    rev: number,
    created: number,
    raw: Uint8Array | undefined,
    gen = 0,
    ttlMs = 0,
  ): Applied {
    const held = this.#lru.peek(key);
    if (held !== undefined && held.rev >= rev && !(rev === 0 && held.rev === 0)) {
      if (held.rev === rev) held.gen = gen;
      return Applied.Older;
    }
    const ttl = this.#ttlFor(created, ttlMs);
    if (ttl < 0) {
      if (held !== undefined) this.#lru.delete(key);
      return Applied.Expired;
    }
    const slot: Slot = {
      rev,
      created,
      deleted: raw === undefined,
      raw,
      value: undefined,
      size: key.length + (raw?.byteLength ?? 0) + ENTRY_OVERHEAD_BYTES,
      gen,
    };
    return this.#set(key, slot, ttl, held);
  }

  /** Stores an already-decoded value (own writes). Same revision rule as {@link put}. */
  putValue(
    key: string,
    rev: number,
    created: number,
    value: unknown,
    encodedBytes: number,
  ): Applied {
    const held = this.#lru.peek(key);
    if (held !== undefined && held.rev >= rev && !(rev === 0 && held.rev === 0)) {
      return Applied.Older;
    }
    const ttl = this.#ttlFor(created, 0);
    if (ttl < 0) return Applied.Expired;
    const slot: Slot = {
      rev,
      created,
      deleted: false,
      raw: undefined,
      value,
      size: key.length + encodedBytes + ENTRY_OVERHEAD_BYTES,
      gen: held?.gen ?? 0,
    };
    return this.#set(key, slot, ttl, held);
  }

  #set(key: string, slot: Slot, ttl: number, held: Slot | undefined): Applied {
    // lru-cache silently refuses an entry larger than maxSize (and drops the
    // key's old value): say so, so the caller can serve it without holding it.
    if (this.#maxBytes > 0 && slot.size > this.#maxBytes) {
      if (held !== undefined) this.#lru.delete(key);
      this.#onRemove?.(key, slot, "too_large");
      return Applied.TooLarge;
    }
    this.#lru.set(key, slot, ttl > 0 ? { ttl } : undefined);
    return Applied.Stored;
  }

  /** Removes `key` (no revision check). */
  delete(key: string): void {
    this.#lru.delete(key);
  }

  /** Removes every slot. */
  clear(): void {
    this.#lru.clear();
  }

  /** Removes slots whose generation is below `gen` and whose revision is below `beforeRev`. */
  sweep(gen: number, beforeRev: number): number {
    let removed = 0;
    for (const [key, slot] of this.#lru.entries()) {
      if (slot.gen < gen && slot.rev < beforeRev) {
        this.#lru.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /**
   * Removes slots with a revision in `[1, rev)`: their message is no longer in
   * the stream (purged, aged out or dropped by a limit) and nothing newer was
   * seen, so the key is gone. Slots at revision 0 (loader results, negative
   * fetches) are kept.
   */
  dropBelow(rev: number): number {
    let removed = 0;
    for (const [key, slot] of this.#lru.entries()) {
      if (slot.rev > 0 && slot.rev < rev) {
        this.#lru.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Removes tombstones with a revision up to `rev`; returns how many. */
  dropTombstones(rev: number): number {
    let removed = 0;
    for (const [key, slot] of this.#lru.entries()) {
      if (slot.deleted && slot.rev <= rev) {
        this.#lru.delete(key);
        removed++;
      }
    }
    return removed;
  }

  /** Iterates resident slots, most recently used first. */
  entries(): IterableIterator<[string, Slot]> {
    return this.#lru.entries();
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
