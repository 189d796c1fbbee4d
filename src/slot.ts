/**
 * A slot of the local store: what a resident key is (revision, write time,
 * bytes, decoded value or tombstone), its flag bits, the outcome of an
 * insertion, why a slot leaves, and the compact form an encoded value is
 * held in until first read (a one-byte string when the bytes are ASCII,
 * otherwise a copy of the bytes).
 *
 * @module
 */
/**
 * One resident key, as handed out by `LocalStore.get()`/`LocalStore.peek()`
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
  /** Bytes counted against `maxBytes` (0 when only `maxItems` bounds the store). */
  size: number;
  /** Resync generation that last confirmed this slot (replica mode). */
  gen: number;
}

/**
 * Why a slot left the store (or never entered it): `evict` (bounds), `expire`
 * (TTL), `too_large` (the slot alone exceeds `maxBytes`).
 */
export type RemovalReason = "evict" | "expire" | "too_large";

/**
 * Result of an insertion attempt: `Stored`; `Older` (an equal or newer
 * revision is resident, nothing changed); `Expired` (already past its TTL);
 * `TooLarge` (bigger than `maxBytes` on its own: not held, and an older
 * revision of the key is dropped so it cannot be served instead).
 */
export const Applied = { Stored: 1, Older: 2, Expired: 3, TooLarge: 4 } as const;
/** One of the {@link Applied} results. */
export type Applied = typeof Applied[keyof typeof Applied];

/** Flag bits of a slot (see `LocalStore.flagsAt()`). */
export const SlotFlag = {
  /** A tombstone. */
  Deleted: 1,
  /** `valueAt()` is the encoded value as an ASCII string, not decoded yet. */
  RawText: 2,
  /** `valueAt()` is the encoded value as bytes, not decoded yet. */
  RawBytes: 4,
  /** Either raw form. */
  Raw: 6,
  /** A stored value the codec or schema refused (with Deleted); `valueAt()` is its {@link Refusal}. */
  Rejected: 8,
  /**
   * The slot is cold (`cold_slots.ts`): its key and encoded value are bytes in
   * the store's slabs, its key column null, its value column the address. Never seen outside the
   * store: finding a slot takes it out of the cold slots first.
   */
  Cold: 16,
} as const;

/**
 * What a refused slot holds: why the codec or schema refused the value, and
 * the value in its compact encoded form, kept so that a snapshot saves it
 * (and a warm start refuses it again) instead of losing the key to "absent".
 */
export interface Refusal {
  /** Why it was refused. */
  reason: unknown;
  /** The encoded value as it was held (see {@link compact}). */
  encoded: string | Uint8Array;
}

// Not `fatal`: Deno's fatal decoder is several times slower, and the check
// below tells ASCII apart without it.
const asciiDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
const encoder = new TextEncoder();

/**
 * The compact form of encoded bytes: an ASCII string (one byte per byte in
 * V8) when every byte is ASCII, otherwise a copy of the bytes.
 */
export function compact(raw: Uint8Array): string | Uint8Array {
  if (raw.byteLength === 0) return "";
  const text = asciiDecoder.decode(raw);
  // Valid multi-byte sequences make the text shorter and every invalid byte
  // becomes one U+FFFD, so: same length and no U+FFFD ⇔ every byte was ASCII.
  if (text.length === raw.byteLength && text.indexOf("\uFFFD") === -1) return text;
  return raw.slice();
}

/** The {@link SlotFlag} of a value held in compact form `v`: `RawText` or `RawBytes`. */
export function rawFlag(v: string | Uint8Array): number {
  return typeof v === "string" ? SlotFlag.RawText : SlotFlag.RawBytes;
}

/** The bytes of a compact value. */
export function rawBytes(v: string | Uint8Array): Uint8Array {
  return typeof v === "string" ? encoder.encode(v) : v;
}
