/**
 * The local store's cold slots: values never read since they arrived (a
 * replica's bootstrap, the watcher's changes to keys nobody read), held as
 * bytes in shared slabs instead of one JavaScript string and one `Map`
 * entry per key. Each entry is `[key length][value length]` (LEB128) then the
 * key's UTF-8 bytes and the encoded value, appended to the current slab
 * (256 KiB; an entry over 32 KiB gets a slab of its own). A cold slot's
 * address, slab × 2¹⁸ + offset, is its entry in the store's value column (a
 * small integer there, below 2³¹ for the first 2 GiB of slabs: no column of
 * its own). Finding a key is a probe of an open-addressing table of slot
 * indexes over the key bytes (FNV-1a, linear probing, at most 80 % full), the
 * same hash as the snapshot's image (`store_image.ts`); each table entry
 * carries the hash's top 4 bits above the slot index, so that a probe reads
 * a key only when it may match.
 *
 * A slot leaves when it is first read (the store takes its key and value into
 * its `Map` and columns), changed to something that is not encoded bytes, or
 * removed; its bytes become garbage. Once the garbage outweighs the live
 * bytes (and a few slabs), the live entries are copied into fresh slabs and
 * the old ones dropped, so the slabs stay within about twice the live bytes;
 * with no slot left, every slab but one goes.
 *
 * @module
 */
import { NONE } from "./lru_list.ts";
import { hashAscii, hashBytes } from "./key_table.ts";

const EMPTY = -1;
/** A table entry whose slot left: probing goes on past it. */
const GONE = -2;
const SLAB_BYTES = 256 * 1024;
/** An entry larger than this gets a slab of its own (so a shared slab's unused end stays small). */
const OWN_SLAB = 32 * 1024;
/** A slab's share of the address space: a shared slab's size (one of its own has offset 0 only). */
const SLAB_SPAN = SLAB_BYTES;
/** Garbage below this many bytes is never compacted (copying would cost more than it frees). */
const MIN_GARBAGE = 4 * SLAB_BYTES;
const NO_SLAB = new Uint8Array(0);
/** A table entry's bits for the slot index: more slots than a JavaScript array holds (V8: 2²⁷ − 1). */
const SLOT_BITS = 27;
const SLOT_MASK = 2 ** SLOT_BITS - 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Cold slots of one store, indexed by the store's slot numbers.
 *
 * @example
 * ```ts ignore
 * const cold = new ColdSlots({ vals: [] });
 * cold.add(3, "a", new Uint8Array([1, 2]));
 * console.log(cold.find("a"), cold.value(3)); // 3 Uint8Array [1, 2]
 * ```
 */
export class ColdSlots {
  /** The store's value column, where a cold slot's address is. */
  readonly #c: { vals: unknown[] };
  #slabs: Uint8Array[] = [];
  /** The slab new entries go to. */
  #cur = -1;
  /** Bytes used in slab {@link #cur}. */
  #used = 0;
  /** Bytes of every slab. */
  #slabBytes = 0;
  /** Bytes of the entries of cold slots. */
  #liveBytes = 0;
  /**
   * Open addressing over key bytes: {@link EMPTY}, {@link GONE} or a slot
   * index with the top bits of its key's hash above it ({@link entryOf}): a
   * probe compares those before it reads the slot's key (a new key's probes
   * would read the value column and a slab at random for every slot they pass).
   */
  #table = new Int32Array(16).fill(EMPTY);
  /** Table entries that are not {@link EMPTY}. */
  #filled = 0;
  #scratch = new Uint8Array(256);
  /** The last ASCII key {@link find} did not find, and its hash. */
  #missed: string | undefined;
  #missedHash = 0;
  /** Slots held here. */
  pending = 0;

  /** Bytes held in slabs (live entries and garbage). */
  get slabBytes(): number {
    return this.#slabBytes;
  }

  /** Cold slots of the store whose value column is `c.vals` (read anew each time: it grows). */
  constructor(c: { vals: unknown[] }) {
    this.#c = c;
  }

  /** The address of cold slot `s`. */
  #at(s: number): number {
    return this.#c.vals[s] as number;
  }

  /** Holds `raw` as the value of `key` in slot `s` (not held yet); sets its value column. */
  add(s: number, key: string, raw: Uint8Array): void {
    // The store adds a key right after a lookup missed it (a new key): its hash is known.
    const ascii = key === this.#missed ? this.#missedHash : hashAscii(key);
    this.#missed = undefined;
    const kb = ascii === undefined ? this.#encode(key) : undefined;
    const h = kb === undefined ? ascii! : hashBytes(kb, 0, kb.length);
    const keyLen = kb === undefined ? key.length : kb.length;
    const need = varintBytes(keyLen) + varintBytes(raw.byteLength) + keyLen + raw.byteLength;
    const a = this.#place(need);
    this.#c.vals[s] = a;
    const slab = this.#slabs[Math.floor(a / SLAB_SPAN)]!;
    let o = putVarint(slab, a % SLAB_SPAN, keyLen);
    o = putVarint(slab, o, raw.byteLength);
    if (kb === undefined) {
      for (let j = 0; j < keyLen; j++) slab[o + j] = key.charCodeAt(j);
    } else slab.set(kb, o);
    slab.set(raw, o + keyLen);
    this.#liveBytes += need;
    if ((this.#filled + 1) * 5 > this.#table.length * 4) this.#rehash(this.pending + 1);
    const mask = this.#table.length - 1;
    let p = h & mask;
    while (this.#table[p]! >= 0) p = (p + 1) & mask;
    if (this.#table[p] === EMPTY) this.#filled++;
    this.#table[p] = entryOf(s, h);
    this.pending++;
  }

  /** The cold slot holding `key`, or {@link NONE}. */
  find(key: string): number {
    if (this.pending === 0) return NONE;
    let h = hashAscii(key);
    let bytes: Uint8Array | undefined;
    if (h === undefined) {
      bytes = this.#encode(key);
      h = hashBytes(bytes, 0, bytes.length);
    }
    const table = this.#table;
    const tag = h >>> (SLOT_BITS + 1);
    const mask = table.length - 1;
    for (let p = h & mask;; p = (p + 1) & mask) {
      const e = table[p]!;
      if (e === EMPTY) {
        if (bytes === undefined) {
          this.#missed = key;
          this.#missedHash = h;
        }
        return NONE;
      }
      if (e === GONE || e >>> SLOT_BITS !== tag) continue;
      const s = e & SLOT_MASK;
      if (bytes === undefined ? this.#sameAscii(key, s) : this.#sameBytes(bytes, s)) return s;
    }
  }

  /** The key of cold slot `s`. */
  key(s: number): string {
    return decoder.decode(this.keyBytes(s));
  }

  /** The key of cold slot `s` as UTF-8: a view of a slab, to copy before keeping. */
  keyBytes(s: number): Uint8Array {
    const a = this.#at(s);
    const slab = this.#slabs[Math.floor(a / SLAB_SPAN)]!;
    let o = a % SLAB_SPAN;
    const keyLen = getVarint(slab, o);
    o += varintBytes(keyLen);
    o += varintBytes(getVarint(slab, o));
    return slab.subarray(o, o + keyLen);
  }

  /** The encoded value of cold slot `s`: a view of a slab, to copy before keeping. */
  value(s: number): Uint8Array {
    const a = this.#at(s);
    const slab = this.#slabs[Math.floor(a / SLAB_SPAN)]!;
    let o = a % SLAB_SPAN;
    const keyLen = getVarint(slab, o);
    o += varintBytes(keyLen);
    const valLen = getVarint(slab, o);
    o += varintBytes(valLen) + keyLen;
    return slab.subarray(o, o + valLen);
  }

  /** Lets cold slot `s` go (its bytes become garbage, compacted later). */
  drop(s: number): void {
    const a = this.#at(s);
    const k = Math.floor(a / SLAB_SPAN);
    const slab = this.#slabs[k]!;
    const o = a % SLAB_SPAN;
    const keyLen = getVarint(slab, o);
    const valLen = getVarint(slab, o + varintBytes(keyLen));
    const from = o + varintBytes(keyLen) + varintBytes(valLen);
    const mask = this.#table.length - 1;
    const h = hashBytes(slab, from, from + keyLen);
    let p = h & mask;
    for (const want = entryOf(s, h); this.#table[p] !== want; p = (p + 1) & mask) {
      // Past its run of entries: a broken invariant fails, never spins.
      if (this.#table[p] === EMPTY) throw new Error(`cold slot ${s} is not in its key table`);
    }
    this.#table[p] = GONE;
    const len = from - o + keyLen + valLen;
    this.#liveBytes -= len;
    if (len > OWN_SLAB) { // a slab of its own: it goes now
      this.#slabs[k] = NO_SLAB;
      this.#slabBytes -= slab.length;
    }
    if (--this.pending === 0) this.#empty();
    else {
      const garbage = this.#slabBytes - this.#liveBytes;
      if (garbage > MIN_GARBAGE && garbage > this.#liveBytes) this.#compact();
    }
  }

  /** Lets every cold slot go and frees the slabs. */
  clear(): void {
    this.#slabs = [];
    this.#cur = -1;
    this.#used = this.#slabBytes = this.#liveBytes = 0;
    this.#table = new Int32Array(16).fill(EMPTY);
    this.#filled = 0;
    this.pending = 0;
  }

  /**
   * No slot left: every slab goes but the current one, kept for the next
   * entry (a lazy cache's miss is stored cold and read at once, often the
   * only cold slot: it must not cost a fresh slab and table each time).
   */
  #empty(): void {
    const cur = this.#cur < 0 ? undefined : this.#slabs[this.#cur]!;
    this.#slabs = cur === undefined ? [] : [cur];
    this.#cur = cur === undefined ? -1 : 0;
    this.#used = this.#liveBytes = 0;
    this.#slabBytes = cur?.length ?? 0;
    if (this.#table.length > 1024) this.#table = new Int32Array(16).fill(EMPTY);
    else this.#table.fill(EMPTY);
    this.#filled = 0;
  }

  /** The address of `need` fresh bytes: in the current slab, a new one, or one of their own. */
  #place(need: number): number {
    if (need > OWN_SLAB) return this.#newSlab(need) * SLAB_SPAN;
    if (this.#cur < 0 || SLAB_BYTES - this.#used < need) {
      this.#cur = this.#newSlab(SLAB_BYTES);
      this.#used = 0;
    }
    const a = this.#cur * SLAB_SPAN + this.#used;
    this.#used += need;
    return a;
  }

  #newSlab(bytes: number): number {
    this.#slabs.push(new Uint8Array(bytes));
    this.#slabBytes += bytes;
    return this.#slabs.length - 1;
  }

  /** Makes the table hold `n` slots without a rebuild on the way (then at most 80 % full). */
  reserve(n: number): void {
    // #rehash(m) leaves room for 1.6 m: asked for 25/32 of n, it leaves room for 1.25 n.
    if (n * 5 > this.#table.length * 4) this.#rehash(Math.ceil((n * 25) / 32));
  }

  /** Rebuilds the table for `n` slots (no {@link GONE} left). */
  #rehash(n: number): void {
    let size = 16;
    while (size * 5 < n * 8) size *= 2; // at most 62.5 % full after, 80 % before the next
    const old = this.#table;
    const table = this.#table = new Int32Array(size).fill(EMPTY);
    const mask = size - 1;
    this.#filled = 0;
    for (let q = 0; q < old.length; q++) {
      const e = old[q]!;
      if (e < 0) continue;
      const s = e & SLOT_MASK;
      const a = this.#at(s);
      const slab = this.#slabs[Math.floor(a / SLAB_SPAN)]!;
      const o = a % SLAB_SPAN;
      const keyLen = getVarint(slab, o);
      const from = o + varintBytes(keyLen) + varintBytes(getVarint(slab, o + varintBytes(keyLen)));
      const h = hashBytes(slab, from, from + keyLen);
      let p = h & mask;
      while (table[p] !== EMPTY) p = (p + 1) & mask;
      table[p] = entryOf(s, h);
      this.#filled++;
    }
  }

  /** Copies the live entries into fresh slabs and drops the old ones (a slab of its own is kept). */
  #compact(): void {
    const old = this.#slabs;
    this.#slabs = [];
    this.#cur = -1;
    this.#used = this.#slabBytes = 0;
    const table = this.#table;
    for (let q = 0; q < table.length; q++) {
      const e = table[q]!;
      if (e < 0) continue;
      const s = e & SLOT_MASK;
      const a = this.#at(s);
      const slab = old[Math.floor(a / SLAB_SPAN)]!;
      const o = a % SLAB_SPAN;
      const keyLen = getVarint(slab, o);
      const valLen = getVarint(slab, o + varintBytes(keyLen));
      const len = varintBytes(keyLen) + varintBytes(valLen) + keyLen + valLen;
      if (len > OWN_SLAB) { // a slab of its own stays as it is
        this.#slabs.push(slab);
        this.#slabBytes += slab.length;
        this.#c.vals[s] = (this.#slabs.length - 1) * SLAB_SPAN;
        continue;
      }
      const to = this.#place(len);
      this.#c.vals[s] = to;
      this.#slabs[Math.floor(to / SLAB_SPAN)]!.set(slab.subarray(o, o + len), to % SLAB_SPAN);
    }
  }

  #sameAscii(key: string, s: number): boolean {
    const a = this.#at(s);
    const slab = this.#slabs[Math.floor(a / SLAB_SPAN)]!;
    let o = a % SLAB_SPAN;
    const keyLen = getVarint(slab, o);
    if (keyLen !== key.length) return false;
    o += varintBytes(keyLen);
    while (slab[o]! >= 0x80) o++; // the value's length
    o++;
    for (let j = 0; j < keyLen; j++) if (slab[o + j] !== key.charCodeAt(j)) return false;
    return true;
  }

  #sameBytes(bytes: Uint8Array, s: number): boolean {
    const k = this.keyBytes(s);
    if (k.length !== bytes.length) return false;
    for (let j = 0; j < k.length; j++) if (k[j] !== bytes[j]) return false;
    return true;
  }

  #encode(key: string): Uint8Array {
    if (this.#scratch.length < key.length * 3) this.#scratch = new Uint8Array(key.length * 3);
    return this.#scratch.subarray(0, encoder.encodeInto(key, this.#scratch).written);
  }
}

/** The table entry of slot `s` whose key hashes to `h`: the hash's top 4 bits, then `s`. */
function entryOf(s: number, h: number): number {
  if (s > SLOT_MASK) throw new RangeError(`Cannot hold cold slot ${s}: past ${SLOT_MASK}`);
  return ((h >>> (SLOT_BITS + 1)) << SLOT_BITS) | s;
}

function varintBytes(n: number): number {
  return n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x200000 ? 3 : n < 0x10000000 ? 4 : 5;
}

function putVarint(b: Uint8Array, o: number, n: number): number {
  while (n >= 0x80) {
    b[o++] = (n & 0x7f) | 0x80;
    n >>>= 7;
  }
  b[o++] = n;
  return o;
}

function getVarint(b: Uint8Array, o: number): number {
  const c = b[o]!;
  if (c < 0x80) return c; // the common case: under 128 bytes
  let n = c & 0x7f;
  let scale = 0x80;
  for (let at = o + 1;; at++, scale *= 0x80) {
    const d = b[at]!;
    n += (d & 0x7f) * scale;
    if (d < 0x80) return n;
  }
}
