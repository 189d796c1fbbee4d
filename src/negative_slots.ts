/**
 * The local store's negative slots (tombstones at revision 0: "absent as of a
 * fetch") and their own bound, `maxNegativeShare`: a second recency list over
 * the same slot indexes, oldest stored first, and their count and bytes. Past
 * the bound the oldest negative slot goes, so a flood of reads of
 * never-written keys displaces its own kind, not the values being read.
 * The list's arrays (8 B a slot) are made when the first negative slot is
 * linked: a replica that never fetched an absent key does not pay them.
 *
 * @module
 */
import { LruList, NONE } from "./lru_list.ts";
import type { SlotColumns } from "./slot_columns.ts";
import { SlotFlag } from "./slot.ts";
import { ENTRY_OVERHEAD_BYTES } from "./types.ts";

/**
 * The negative slots of a store and their bound.
 *
 * @example
 * ```ts
 * import { NegativeSlots } from "./negative_slots.ts";
 * const negs = NegativeSlots.bounded(0.25, { maxItems: 100, maxBytes: 0 })!;
 * negs.grow(8);
 * negs.link(0, 70);
 * console.log(negs.items, negs.victim(0)); // 1 -1
 * ```
 */
export class NegativeSlots {
  readonly #list = new LruList();
  /** Slot indexes the store has room for; the list grows to it at its first link. */
  #capacity = 0;
  /** Most negative slots and their bytes (0: no bound of that kind). */
  readonly #maxItems: number;
  readonly #maxBytes: number;
  #items = 0;
  #bytes = 0;
  #evictions = 0;

  /**
   * The bound of a store limited to `maxItems` slots and `maxBytes` bytes (0:
   * no limit of that kind) whose negative slots may take `share` of either;
   * undefined when `share` is 1 (no separate bound). Throws a `RangeError`
   * unless `share` is in (0, 1].
   */
  static bounded(
    share: number,
    store: { maxItems: number; maxBytes: number },
  ): NegativeSlots | undefined {
    if (!(share > 0 && share <= 1)) {
      throw new RangeError(
        `Cannot build local store: maxNegativeShare must be in (0, 1], got ${share}`,
      );
    }
    if (share === 1) return undefined;
    const of = (max: number) => max > 0 ? Math.max(1, Math.floor(share * max)) : 0;
    return new NegativeSlots(of(store.maxItems), of(store.maxBytes));
  }

  /** A bound of `maxItems` slots and `maxBytes` bytes (0: none of that kind). */
  constructor(maxItems: number, maxBytes: number) {
    this.#maxItems = maxItems;
    this.#maxBytes = maxBytes;
  }

  /** Negative slots held. */
  get items(): number {
    return this.#items;
  }

  /** Negative slots dropped by the bound since creation. */
  get evictions(): number {
    return this.#evictions;
  }

  /** Makes room for slot indexes below `capacity`. */
  grow(capacity: number): void {
    this.#capacity = capacity;
    if (this.#list.next.length > 0) this.#list.grow(capacity);
  }

  /** Forgets every negative slot (the store was cleared). */
  clear(): void {
    this.#list.clear();
    this.#items = 0;
    this.#bytes = 0;
  }

  /** Slot `i`, of `size` bytes, became negative. */
  link(i: number, size: number): void {
    if (this.#list.next.length < this.#capacity) this.#list.grow(this.#capacity);
    this.#list.link(i);
    this.#items++;
    this.#bytes += size;
  }

  /** Slot `i`, of `size` bytes, is no longer negative (replaced or removed). */
  unlink(i: number, size: number): void {
    this.#list.unlink(i);
    this.#items--;
    this.#bytes -= size;
  }

  /** Unlinks slot `i` of columns `s` if it is a negative slot (a revision-0 tombstone). */
  release(i: number, s: SlotColumns): void {
    if (s.rev[i] !== 0 || s.flags[i] !== SlotFlag.Deleted) return;
    this.unlink(i, s.sized ? s.size[i]! : s.keys[i]!.length + ENTRY_OVERHEAD_BYTES);
  }

  /**
   * The oldest negative slot while the bound is exceeded, never `keep` (the
   * one just stored), counted as evicted; {@link NONE} when within the bound.
   * The caller removes it from the store (which unlinks it here).
   */
  victim(keep: number): number {
    if (
      !((this.#maxItems > 0 && this.#items > this.#maxItems) ||
        (this.#maxBytes > 0 && this.#bytes > this.#maxBytes))
    ) {
      return NONE;
    }
    const h = this.#list.head;
    if (h === NONE || h === keep) return NONE;
    this.#evictions++;
    return h;
  }
}
