/**
 * Whole-store passes over the local store's slots, most recently used first:
 * visiting every resident slot (a snapshot save, a local key listing),
 * copying them out, and removing those a predicate picks (the sweeps after a
 * resync, a purge or a catch-up). They run over a {@link SlotView} the store
 * builds for one pass, never on the hit or write path.
 *
 * @module
 */
import type { LruList } from "./lru_list.ts";
import { NONE } from "./lru_list.ts";
import type { Slot } from "./slot.ts";
import type { SlotTtl } from "./slot_ttl.ts";

/** Receives one resident slot of a pass (see {@link forEachSlot}). */
export type SlotVisitor = (
  key: string,
  rev: number,
  created: number,
  flags: number,
  value: unknown,
  deadline: number,
) => void;

/**
 * The local store's columns as one pass sees them: valid for that pass only
 * (the store replaces its arrays when it grows).
 */
export interface SlotView {
  /** Each slot's key. */
  readonly keys: readonly (string | undefined)[];
  /** Each slot's value or encoded form. */
  readonly vals: readonly unknown[];
  /** Each slot's revision. */
  readonly rev: Float64Array;
  /** Each slot's write time. */
  readonly created: Float64Array;
  /** Each slot's {@link SlotFlag} bits. */
  readonly flags: Uint8Array;
  /** The recency order. */
  readonly lru: LruList;
  /** The slots' deadlines. */
  readonly ttl: SlotTtl;
  /** A copy of slot `i`. */
  slotAt(i: number): Slot;
  /** Removes slot `i` (no revision check, no `onRemove`). */
  remove(i: number): void;
}

/**
 * Calls `fn` for every resident slot of `v`, most recently used first, with
 * its deadline on the wall clock (0 for none). `fn` must not change the store.
 *
 * @example
 * ```ts ignore
 * forEachSlot(view, (key, rev) => console.log(key, rev));
 * ```
 */
export function forEachSlot(v: SlotView, fn: SlotVisitor): void {
  const { lru, ttl } = v;
  for (let i = lru.tail; i !== NONE; i = lru.prev[i]!) {
    if (ttl.expired(i)) continue;
    fn(v.keys[i]!, v.rev[i]!, v.created[i]!, v.flags[i]!, v.vals[i], ttl.deadline(i));
  }
}

/**
 * Copies of the resident slots of `v` with their keys, most recently used first.
 *
 * @example
 * ```ts ignore
 * for (const [key, slot] of slotEntries(view)) console.log(key, slot.rev);
 * ```
 */
export function* slotEntries(v: SlotView): IterableIterator<[string, Slot]> {
  for (let i = v.lru.tail; i !== NONE; i = v.lru.prev[i]!) {
    if (v.ttl.expired(i)) continue;
    yield [v.keys[i]!, v.slotAt(i)];
  }
}

/**
 * Removes the resident slots of `v` that `drop` picks; returns how many.
 *
 * @example
 * ```ts ignore
 * const removed = removeWhere(view, (i) => view.rev[i]! < 10);
 * ```
 */
export function removeWhere(v: SlotView, drop: (i: number) => boolean): number {
  let removed = 0;
  for (let i = v.lru.tail; i !== NONE;) {
    const prev = v.lru.prev[i]!;
    if (!(v.ttl.expired(i)) && drop(i)) {
      v.remove(i);
      removed++;
    }
    i = prev;
  }
  return removed;
}
