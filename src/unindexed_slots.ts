/**
 * The local store's slots whose key is not in its `Map` (their key and value
 * columns are null): a warm start's snapshot still held as the store's image
 * (`store_image.ts`) and the cold slots, values never read held as bytes in
 * slabs (`cold_slots.ts`, {@link SlotFlag.Cold}). Finding a key the `Map`
 * lacks looks here; a slot's first read takes it into the `Map` and columns,
 * a new encoded value for it makes it (or keeps it) cold.
 *
 * @module
 */
import { NONE } from "./lru_list.ts";
import { ColdSlots } from "./cold_slots.ts";
import type { SlotColumns } from "./slot_columns.ts";
import type { StoreImage } from "./store_image.ts";
import { compact, rawFlag, type Slot, SlotFlag } from "./slot.ts";

/**
 * The image and the cold slots of one store, over its columns and `Map`.
 *
 * @example
 * ```ts ignore
 * const off = new UnindexedSlots(columns, index);
 * const i = index.get(key) ?? off.find(key, true);
 * ```
 */
export class UnindexedSlots {
  /** Slots loaded from a snapshot and not touched since. */
  image: StoreImage | undefined;
  /** Values never read, as bytes. */
  readonly cold: ColdSlots;
  readonly #s: SlotColumns;
  readonly #index: Map<string, number>;

  /** Slots of the store with columns `s` and key index `index`. */
  constructor(s: SlotColumns, index: Map<string, number>) {
    this.#s = s;
    this.#index = index;
    this.cold = new ColdSlots(s);
  }

  /** Slots held here. */
  get pending(): number {
    return (this.image?.pending ?? 0) + this.cold.pending;
  }

  /**
   * The slot of `key` if the image or a cold slot holds it, taken into the
   * `Map` first when `warm` (else left where it is, its key null: see
   * {@link release} and {@link heat}); else undefined.
   */
  find(key: string, warm: boolean): number | undefined {
    const image = this.image;
    if (image !== undefined) {
      const i = warm ? image.take(key, this.#s, this.#index) : image.find(key);
      if (image.pending === 0) this.image = undefined;
      if (i !== NONE) return i;
    }
    const c = this.cold.find(key);
    if (c === NONE) return undefined;
    if (!warm) return c;
    const v = compact(this.cold.value(c));
    this.heat(c, key);
    this.#s.vals[c] = v;
    this.#s.flags[c] = rawFlag(v);
    return c;
  }

  /** Slot `i` (of `key`), cold or in the image, made an ordinary one: its key into the `Map` (set its value next). */
  heat(i: number, key: string): number {
    this.release(i);
    this.#s.keys[i] = key;
    this.#index.set(key, i);
    return i;
  }

  /** Slot `i`, cold or in the image, lets its entry go without making its key (set its new value next). */
  release(i: number): void {
    if ((this.#s.flags[i]! & SlotFlag.Cold) !== 0) {
      this.cold.drop(i);
      return;
    }
    const image = this.image!;
    image.leave(i, this.#s);
    if (image.pending === 0) this.image = undefined;
  }

  /** Slot `i`, taken into the `Map` first if it is held here (its key null). */
  touch(i: number): number {
    if (this.#s.keys[i] === null) this.find(this.held(i).key(i), true);
    return i;
  }

  /** A copy of slot `i` (its bytes copied out of a slab if it is cold). */
  slotAt(i: number): Slot {
    const slot = this.#s.slotAt(i);
    if ((this.#s.flags[i]! & SlotFlag.Cold) === 0) return slot;
    slot.value = undefined;
    slot.raw = this.cold.value(i).slice();
    return slot;
  }

  /** Where slot `i`, whose key is null, is held. */
  held(i: number): ColdSlots | StoreImage {
    return (this.#s.flags[i]! & SlotFlag.Cold) !== 0 ? this.cold : this.image!;
  }

  /** Lets every slot go. */
  clear(): void {
    this.image = undefined;
    this.cold.clear();
  }
}
