/**
 * The local store's slots as columns: one array per field (key, value,
 * revision, write time, generation, bytes, flags) indexed by slot, their
 * growth, and a slot's forms read from them (a copy, its encoded bytes, its
 * decoded or refused value). The store (`local_store.ts`) decides which key
 * has which slot and what may be written; this holds what a slot is.
 *
 * Like the recency list (`lru_list.ts`), the columns are plain fields the
 * store reads and writes in place: a hit is one array read per field.
 *
 * @module
 */
import { rawBytes, type Refusal, type Slot, SlotFlag } from "./slot.ts";

/** The slots of one store, one typed array (or plain array) per field. */
export class SlotColumns {
  /** Each slot's key; null while the slot is still in the store's image, undefined when free. */
  keys: (string | null | undefined)[] = [];
  /**
   * Each slot's value: decoded, encoded (see {@link SlotFlag}), a {@link Refusal}, or undefined;
   * a cold slot's address in the store's slabs (`cold_slots.ts`).
   */
  vals: unknown[] = [];
  /** Each slot's revision. */
  rev: Float64Array<ArrayBufferLike> = new Float64Array(0);
  /** Each slot's write time, epoch ms. */
  created: Float64Array<ArrayBufferLike> = new Float64Array(0);
  /** Each slot's resync generation. */
  gen = new Uint32Array(0);
  /** Each slot's bytes, kept only when {@link sized} (4 B a slot otherwise saved). */
  size = new Uint32Array(0);
  /** Each slot's {@link SlotFlag} bits. */
  flags = new Uint8Array(0);
  /** Slots the typed arrays have room for. */
  capacity = 0;
  /** Next never-used slot. */
  top = 0;
  /** Slots freed since, reused first. */
  free: number[] = [];
  /**
   * Whether {@link rev} and {@link created} are views of a snapshot's buffer
   * (taken as they are by a warm start), which they keep alive: replaced by
   * arrays of their own when they grow, are cleared, or by {@link own}.
   */
  borrowed = false;
  /** Whether `maxBytes` bounds the store, so {@link size} is kept. */
  readonly sized: boolean;

  /** Empty columns; `sized` when the store counts bytes. */
  constructor(sized: boolean) {
    this.sized = sized;
  }

  /** Makes room for `capacity` slots, keeping them (or, emptied, the first `capacity`). */
  grow(capacity: number): void {
    const grown = <A extends Float64Array | Uint32Array | Uint8Array>(
      a: A,
      make: (n: number) => A,
    ): A => {
      const b = make(capacity);
      b.set(a.subarray(0, Math.min(a.length, capacity)) as never);
      return b;
    };
    this.rev = grown(this.rev, (n) => new Float64Array(n));
    this.created = grown(this.created, (n) => new Float64Array(n));
    this.gen = grown(this.gen, (n) => new Uint32Array(n));
    if (this.sized) this.size = grown(this.size, (n) => new Uint32Array(n));
    this.flags = grown(this.flags, (n) => new Uint8Array(n));
    this.borrowed = false;
    // keys and vals: `new Array(n).fill(null)` is V8's fast path (packed, 8 B a
    // slot; growing by assignment at the end leaves 15–30 % unused), then the
    // used slots copied in. Slots past `top` hold null, never read.
    this.keys = grownArray(this.keys, { used: this.top, capacity });
    this.vals = grownArray(this.vals, { used: this.top, capacity });
    this.capacity = capacity;
  }

  /**
   * Makes empty columns hold `n` slots still in the store's image: `keys` and
   * `vals` become `n` nulls (filled with null at once: V8's fast path, where
   * `undefined` or a push per slot costs ~50–100 ns a slot), unless they
   * already are: an empty store just grown for the image has all-null arrays
   * of its capacity (`grow`), and filling 1M slots again cost ~10 ms.
   */
  fillImage(n: number): void {
    if (this.top !== 0 || this.keys.length < n) this.keys = new Array(n).fill(null);
    if (this.top !== 0 || this.vals.length < n) this.vals = new Array(n).fill(null);
    this.top = n;
  }

  /** Frees every slot (new arrays: filling a million slots with undefined is slow in V8). */
  clear(): void {
    if (this.borrowed) {
      this.rev = new Float64Array(this.capacity);
      this.created = new Float64Array(this.capacity);
      this.borrowed = false;
    }
    this.keys = [];
    this.vals = [];
    this.free = [];
    this.top = 0;
  }

  /** Copies {@link borrowed} columns into arrays of their own, so the snapshot's buffer can go. */
  own(): void {
    if (!this.borrowed) return;
    this.rev = this.rev.slice();
    this.created = this.created.slice();
    this.borrowed = false;
  }

  /** A copy of slot `i`. */
  slotAt(i: number): Slot {
    const f = this.flags[i]!;
    const raw = (f & SlotFlag.Raw) !== 0;
    const slot: Slot = {
      rev: this.rev[i]!,
      created: this.created[i]!,
      deleted: (f & SlotFlag.Deleted) !== 0,
      raw: raw ? rawBytes(this.vals[i] as string | Uint8Array) : undefined,
      value: raw || (f & SlotFlag.Deleted) !== 0 ? undefined : this.vals[i],
      size: this.sized ? this.size[i]! : 0,
      gen: this.gen[i]!,
    };
    if ((f & SlotFlag.Rejected) !== 0) slot.rejected = (this.vals[i] as Refusal).reason;
    return slot;
  }

  /** Whether slot `i` is at revision `rev` and still encoded (never decoded). */
  encodedAt(i: number, rev: number): boolean {
    return this.rev[i] === rev && (this.flags[i]! & SlotFlag.Raw) !== 0;
  }

  /** The encoded bytes of slot `i` if it was never decoded. */
  rawAt(i: number): Uint8Array | undefined {
    if ((this.flags[i]! & SlotFlag.Raw) === 0) return undefined;
    return rawBytes(this.vals[i] as string | Uint8Array);
  }

  /**
   * Replaces the encoded value of slot `i` by its decoded `value`, or, when
   * `rejected` is given (why the codec or schema refused the value), turns
   * the slot into a rejected tombstone that keeps the encoded value (a
   * {@link Refusal}). Size and revision stay.
   */
  setDecodedAt(i: number, value: unknown, rejected?: unknown): void {
    if (rejected === undefined) {
      this.vals[i] = value;
      this.flags[i] = 0;
    } else {
      const held = this.vals[i];
      const encoded = (this.flags[i]! & SlotFlag.Raw) !== 0
        ? held as string | Uint8Array
        : (held as Refusal | undefined)?.encoded ?? "";
      this.vals[i] = { reason: rejected, encoded } satisfies Refusal;
      this.flags[i] = SlotFlag.Deleted | SlotFlag.Rejected;
    }
  }
}

/** `a`'s first `used` elements in a new array of `capacity` elements, the rest null. */
function grownArray<T>(
  a: T[],
  { used, capacity }: { used: number; capacity: number },
): (T | null)[] {
  const b: (T | null)[] = new Array(capacity).fill(null);
  for (let i = 0; i < used; i++) b[i] = a[i]!;
  return b;
}
