/**
 * The local store's options and the shape of an already-decoded value it
 * stores (src/local_store.ts).
 *
 * @module
 */
import type { RemovalReason, Slot } from "./slot.ts";

/** An already-decoded value to store ({@link LocalStore.putValue}). */
export interface StoredValue {
  /** Revision (0: a loader result KV does not hold). */
  rev: number;
  /** When it was written, epoch ms. */
  created: number;
  /** The decoded value. */
  value: unknown;
  /** Length of its encoded form, bytes (counted against `maxBytes`). */
  encodedBytes: number;
}

/** Options of {@link LocalStore}. */
export interface LocalStoreOptions {
  /** Most slots. */
  maxItems?: number;
  /** Most bytes (key + value + {@link ENTRY_OVERHEAD_BYTES}). */
  maxBytes?: number;
  /** Longest life of a slot, ms, from when it was stored. */
  maxTtlMs?: number;
  /**
   * Largest share of `maxItems` (and of `maxBytes`) that negative slots
   * (tombstones at revision 0: "absent as of a fetch") may take, in (0, 1].
   * Past it the oldest negative slot goes, not a value. Default 1 (no
   * separate bound).
   */
  maxNegativeShare?: number;
  /** Bucket TTL, ms: a slot never outlives `created + bucketTtlMs`. */
  bucketTtlMs?: number;
  /** Called when a slot leaves because of the bounds (evict) or its TTL (expire), or cannot be held at all (too_large). */
  onRemove?: (key: string, slot: Slot, reason: RemovalReason) => void;
  /** Clock, for tests. */
  now?: () => number;
}
