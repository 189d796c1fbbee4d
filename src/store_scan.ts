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
import { type Refusal, type Slot, SlotFlag } from "./slot.ts";
import type { SnapshotSource } from "./snapshot.ts";
import type { SlotTtl } from "./slot_ttl.ts";
import type { StoreImage } from "./store_image.ts";
import type { SlotColumns } from "./slot_columns.ts";
import type { ColdSlots } from "./cold_slots.ts";

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
  /** The slots' columns (a key is null while its slot is still in {@link image}). */
  readonly s: SlotColumns;
  /** The recency order. */
  readonly lru: LruList;
  /** The slots' deadlines. */
  readonly ttl: SlotTtl;
  /** Where slot `i`, whose key is null, is held (a snapshot's image or the cold slots). */
  held(i: number): ColdSlots | StoreImage;
  /** A copy of slot `i` (taking it out of the image first). */
  slotAt(i: number): Slot;
  /** Removes slot `i` (no revision check, no `onRemove`). */
  remove(i: number): void;
}

/**
 * Calls `fn` for every resident slot of `v`, most recently used first, with
 * its deadline on the wall clock (0 for none). A slot still in the image is
 * handed out as its key and its encoded bytes (a view of the snapshot's
 * buffer, {@link SlotFlag.RawBytes}), without taking it out. `fn` must not
 * change the store.
 *
 * @example
 * ```ts ignore
 * forEachSlot(view, (key, rev) => console.log(key, rev));
 * ```
 */
export function forEachSlot(v: SlotView, fn: SlotVisitor): void {
  const { lru, ttl, s } = v;
  for (let i = lru.tail; i !== NONE; i = lru.prev[i]!) {
    if (ttl.expired(i)) continue;
    const key = s.keys[i]!;
    if (key === null) {
      const image = v.held(i);
      const at = image.value(i);
      fn(image.key(i), s.rev[i]!, s.created[i]!, SlotFlag.RawBytes, at, ttl.deadline(i));
    } else {
      fn(key, s.rev[i]!, s.created[i]!, s.flags[i]!, s.vals[i], ttl.deadline(i));
    }
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
    const slot = v.slotAt(i); // takes it out of the image, which sets its key
    yield [v.s.keys[i]!, slot];
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

/**
 * Removes the slots of `v` at a revision in `[1, rev)`: their message is no
 * longer in the stream (purged, aged out or dropped by a limit) and nothing
 * newer was seen, so the key is gone. Slots at revision 0 (loader results,
 * negative fetches) are kept. Returns how many went.
 *
 * @example
 * ```ts ignore
 * const gone = dropBelow(view, firstSeqOfTheStream);
 * ```
 */
export function dropBelow(v: SlotView, rev: number): number {
  const r = v.s.rev;
  return removeWhere(v, (i) => r[i]! > 0 && r[i]! < rev);
}

/**
 * Removes the tombstones of `v` at a revision up to `rev`; returns how many.
 * A refused value ({@link SlotFlag.Rejected}) is not a tombstone to drop: its
 * key holds a value, which must keep answering "refused", not "absent".
 *
 * @example
 * ```ts ignore
 * const dropped = dropTombstones(view, lastRevision);
 * ```
 */
export function dropTombstones(v: SlotView, rev: number): number {
  const { rev: r, flags } = v.s;
  const mask = SlotFlag.Deleted | SlotFlag.Rejected;
  return removeWhere(v, (i) => (flags[i]! & mask) === SlotFlag.Deleted && r[i]! <= rev);
}

/**
 * The records a snapshot of `v` holds (see `src/snapshot.ts`): every value at
 * a revision above 0, most recently used first, with its deadline. A value
 * never read is written as held (encoded; a slot still in the image as its
 * key and value bytes, copied from the snapshot's buffer without decoding the
 * key), a decoded one through `encode`. A value the codec or schema refused
 * is written as it was stored, so that after a warm start it is refused
 * again (a DecodeError), never "absent". Tombstones and revision-0 slots
 * (loader results, negative fetches) are not written.
 *
 * @example
 * ```ts ignore
 * await writeSnapshot(path, { header, records: snapshotRecords(view, (v) => codec.encode(v)) });
 * ```
 */
export function snapshotRecords(
  v: SlotView,
  encode: (value: unknown) => Uint8Array,
): SnapshotSource {
  return (add) => {
    const { lru, ttl, s } = v;
    for (let i = lru.tail; i !== NONE; i = lru.prev[i]!) {
      const rev = s.rev[i]!;
      if (rev === 0 || ttl.expired(i)) continue;
      const key = s.keys[i]!;
      if (key === null) {
        const held = v.held(i);
        add(held.keyBytes(i), rev, s.created[i]!, held.value(i), ttl.deadline(i));
        continue;
      }
      const flags = s.flags[i]!;
      let held = s.vals[i] as string | Uint8Array;
      if ((flags & SlotFlag.Rejected) !== 0) held = (s.vals[i] as Refusal).encoded;
      else if ((flags & SlotFlag.Deleted) !== 0) continue;
      else if ((flags & SlotFlag.Raw) === 0) held = encode(s.vals[i]);
      add(key, rev, s.created[i]!, held, ttl.deadline(i));
    }
  };
}
