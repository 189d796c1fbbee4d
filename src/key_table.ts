/**
 * The open-addressing key table a snapshot carries (format 4) and a warm
 * start's image probes (`store_image.ts`): one 32-bit entry per position, a
 * record index or {@link EMPTY}, found by FNV-1a over the key's UTF-8 bytes
 * and linear probing; its size is a power of two at least twice the count, so
 * it is at most half full. Written with the snapshot, so a warm start takes
 * it as a view of the file instead of hashing every key again.
 *
 * @module
 */

/** A position holding no record. */
export const EMPTY = -1;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/**
 * Positions of the key table of `count` records: a power of two, at least 16
 * and at least `2 × count`.
 *
 * @example
 * ```ts
 * import { keyTableSize } from "./key_table.ts";
 * console.log(keyTableSize(0), keyTableSize(1000)); // 16 2048
 * ```
 */
export function keyTableSize(count: number): number {
  let size = 16;
  while (size < count * 2) size *= 2;
  return size;
}

/**
 * FNV-1a of `b[from..to)`, as 32 bits (not masked).
 *
 * @example
 * ```ts
 * import { hashBytes } from "./key_table.ts";
 * console.log(hashBytes(new Uint8Array([97]), 0, 1) === hashBytes(new Uint8Array([97]), 0, 1)); // true
 * ```
 */
export function hashBytes(b: Uint8Array, from: number, to: number): number {
  let h = FNV_OFFSET;
  for (let j = from; j < to; j++) h = Math.imul(h ^ b[j]!, FNV_PRIME);
  return h;
}

/**
 * FNV-1a of `key`'s UTF-8 bytes when every character is ASCII (its bytes are
 * its char codes: no encoding); `undefined` otherwise (encode it and use
 * {@link hashBytes}). The same value as `hashBytes` of the encoded key.
 *
 * @example
 * ```ts
 * import { hashAscii, hashBytes } from "./key_table.ts";
 * console.log(hashAscii("a") === hashBytes(new Uint8Array([97]), 0, 1), hashAscii("é")); // true undefined
 * ```
 */
export function hashAscii(key: string): number | undefined {
  let h = FNV_OFFSET;
  for (let j = 0; j < key.length; j++) {
    const c = key.charCodeAt(j);
    if (c > 0x7f) return undefined;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  return h;
}

/** The keys a table indexes: entry `s` is keyed by the bytes of record `records[s]` (or `s`). */
export interface TableKeys {
  /** The key block: record `r`'s key is `keys[keyOff[r]..keyOff[r + 1])`, UTF-8. */
  keys: Uint8Array;
  /** `count + 1` offsets (or more) into `keys`. */
  keyOff: Uint32Array;
  /** Entries to index: `0 … count - 1`. */
  count: number;
  /** The record of each entry; undefined when entry `s` is record `s`. */
  records?: Uint32Array | undefined;
}

/**
 * Fills `table` (all {@link EMPTY}, of {@link keyTableSize} positions or
 * more, a power of two) with the entries of `k`.
 *
 * @example
 * ```ts
 * import { EMPTY, indexKeys, keyTableSize } from "./key_table.ts";
 * const table = new Int32Array(keyTableSize(2)).fill(EMPTY);
 * indexKeys(table, { keys: new Uint8Array([97, 98]), keyOff: new Uint32Array([0, 1, 2]), count: 2 });
 * console.log(table.filter((e) => e !== EMPTY).length); // 2
 * ```
 */
export function indexKeys(table: Int32Array, k: TableKeys): void {
  const { keys, keyOff, count, records } = k;
  const mask = table.length - 1;
  // One pass over every key, FNV-1a inline, so that it is optimized while it runs.
  for (let s = 0; s < count; s++) {
    const r = records === undefined ? s : records[s]!;
    const to = keyOff[r + 1]!;
    let h = FNV_OFFSET;
    for (let j = keyOff[r]!; j < to; j++) h = Math.imul(h ^ keys[j]!, FNV_PRIME);
    h &= mask;
    while (table[h] !== EMPTY) h = (h + 1) & mask;
    table[h] = s;
  }
}

/**
 * Whether a table read from a file holds each record below `count` exactly
 * once and nothing else but {@link EMPTY} (at least one, so a probe ends).
 * The file's checksum already says it is the table its writer made with
 * {@link indexKeys}; this keeps a table of another writer from pointing
 * out of the records, and a lookup compares the key bytes, so a table
 * passing it never hands out another key's value.
 *
 * @example
 * ```ts
 * import { validTable } from "./key_table.ts";
 * const table = new Int32Array(16).fill(-1);
 * table[3] = 0;
 * console.log(validTable(table, 1)); // true
 * table[4] = 0;
 * console.log(validTable(table, 1)); // false: record 0 twice
 * ```
 */
export function validTable(table: Int32Array, count: number): boolean {
  if (table.length < keyTableSize(count) || (table.length & (table.length - 1)) !== 0) return false;
  // Bit v of `seen` for each entry v = record + 1 (0 for EMPTY): no branch
  // but the range check, which a valid table never takes (~3× faster than a
  // branch per EMPTY on a 1M-record table).
  const seen = new Int32Array((count + 1 + 31) >>> 5);
  let filled = 0;
  for (let p = 0; p < table.length; p++) {
    const v = table[p]! + 1;
    if (v < 0 || v > count) return false;
    seen[v >>> 5]! |= 1 << (v & 31);
    filled += (v | -v) >>> 31; // 1 unless EMPTY
  }
  let distinct = 0;
  for (let w = 0; w < seen.length; w++) distinct += popcount(seen[w]!);
  // An EMPTY (bit 0), `count` entries and `count` distinct records: each record once.
  return (seen[0]! & 1) === 1 && filled === count && distinct - 1 === count;
}

function popcount(x: number): number {
  x = x - ((x >>> 1) & 0x55555555);
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  return Math.imul((x + (x >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}
