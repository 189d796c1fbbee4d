/**
 * A snapshot being written (`src/snapshot.ts` is the format): one growing
 * buffer per column (revision, created, deadline, key and value offsets) and
 * per block (keys, values), laid out as the file at the end with the key
 * table (`key_table.ts`) built over the keys, so a million records cost no
 * object each.
 *
 * @module
 */

import { EMPTY, indexKeys, keyTableSize } from "./key_table.ts";

const encoder = new TextEncoder();

/** A byte buffer that doubles when full. */
class Growing {
  buf: Uint8Array;
  view: DataView;
  at = 0;
  constructor(size = 1 << 16) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
  }
  reserve(n: number): void {
    if (this.at + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.at + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.at));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  get bytes(): Uint8Array {
    return this.buf.subarray(0, this.at);
  }
}

/**
 * The columns of a snapshot being written, each growing on its own; `file()`
 * lays them out as `src/snapshot.ts` says.
 */
export class SnapshotColumns {
  readonly nums = [new Growing(), new Growing(), new Growing()] as const; // rev, created, deadline
  readonly keyOff = new Growing();
  readonly valOff = new Growing();
  readonly keys = new Growing();
  readonly values = new Growing(1 << 20);
  count = 0;
  /** Whether a record has a deadline (else the file leaves the deadline column out). */
  deadlines = false;

  constructor() {
    this.keyOff.view.setUint32(0, 0, true);
    this.valOff.view.setUint32(0, 0, true);
    this.keyOff.at = this.valOff.at = 4;
  }

  add(
    key: string | Uint8Array,
    rev: number,
    created: number,
    value: Uint8Array | string,
    deadline = 0,
  ) {
    const { nums: [r, c, d], keys, values } = this;
    r.reserve(8);
    c.reserve(8);
    d.reserve(8);
    r.view.setFloat64(r.at, rev, true);
    c.view.setFloat64(c.at, created, true);
    d.view.setFloat64(d.at, deadline, true);
    r.at = c.at = d.at = r.at + 8;
    if (deadline !== 0) this.deadlines = true;
    append(keys, key);
    append(values, value);
    if (values.at > 0xffffffff || keys.at > 0xffffffff) {
      throw new RangeError("Cannot write snapshot: over 4 GiB of keys or values");
    }
    this.#offset(this.keyOff, keys.at);
    this.#offset(this.valOff, values.at);
    this.count++;
  }

  #offset(g: Growing, at: number): void {
    g.reserve(4);
    g.view.setUint32(g.at, at, true);
    g.at += 4;
  }

  /**
   * The whole file but its checksum: `lead` (magic, header, padding; a
   * multiple of 8 bytes), then the body, aligned as the layout says (the
   * deadline column only if {@link deadlines}), with `tail` bytes left at the
   * end for the checksum.
   */
  file(lead: Uint8Array, tail: number): Uint8Array {
    const [rev, created, deadline] = this.nums;
    const cols = [rev, created, ...(this.deadlines ? [deadline] : []), this.keyOff, this.valOff];
    const parts = [lead, ...cols.map((g) => g.bytes)];
    const columnsEnd = parts.reduce((n, p) => n + p.byteLength, 0);
    const tableSize = keyTableSize(this.count);
    const blocksAt = align8(columnsEnd + tableSize * 4);
    const out = new Uint8Array(blocksAt + this.keys.at + this.values.at + tail);
    let at = 0;
    for (const p of parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    const table = new Int32Array(out.buffer, columnsEnd, tableSize).fill(EMPTY);
    const keyOff = new Uint32Array(this.keyOff.buf.buffer, 0, this.count + 1);
    indexKeys(table, { keys: this.keys.buf, keyOff, count: this.count });
    out.set(this.keys.bytes, blocksAt);
    out.set(this.values.bytes, blocksAt + this.keys.at);
    return out;
  }
}

/** Appends `v` to `g`: bytes as they are, text as UTF-8. */
function append(g: Growing, v: string | Uint8Array): void {
  if (typeof v === "string") {
    g.reserve(v.length * 3); // the worst case of UTF-8: 3 bytes per UTF-16 unit
    g.at += encoder.encodeInto(v, g.buf.subarray(g.at)).written;
  } else {
    g.reserve(v.byteLength);
    g.buf.set(v, g.at);
    g.at += v.byteLength;
  }
}

/**
 * `n` rounded up to a multiple of 8.
 *
 * @example
 * ```ts
 * import { align8 } from "./snapshot_columns.ts";
 * console.log(align8(13)); // 16
 * ```
 */
export function align8(n: number): number {
  return (n + 7) & ~7;
}
