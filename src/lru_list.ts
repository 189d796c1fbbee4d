/**
 * The recency order of the local store's slots: a doubly linked list over
 * slot indexes, kept in typed arrays (no object per entry), least recently
 * used at the head.
 *
 * @module
 */

/** The index that stands for "no slot". */
export const NONE = -1;

/** A doubly linked list of slot indexes, least recently used first. */
export class LruList {
  /** The next more recently used slot of each slot, or {@link NONE}. */
  next = new Int32Array(0);
  /** The next less recently used slot of each slot, or {@link NONE}. */
  prev = new Int32Array(0);
  /** Least recently used. */
  head = NONE;
  /** Most recently used. */
  tail = NONE;

  /** Appends `i` as most recently used. */
  link(i: number): void {
    this.prev[i] = this.tail;
    this.next[i] = NONE;
    if (this.tail !== NONE) this.next[this.tail] = i;
    else this.head = i;
    this.tail = i;
  }

  /** Takes `i` out of the list. */
  unlink(i: number): void {
    const p = this.prev[i]!;
    const n = this.next[i]!;
    if (p !== NONE) this.next[p] = n;
    else this.head = n;
    if (n !== NONE) this.prev[n] = p;
    else this.tail = p;
  }

  /** Makes `i` the most recently used. */
  moveToTail(i: number): void {
    this.unlink(i);
    this.link(i);
  }

  /** Links slots `0 … n - 1` of an empty list, slot 0 the most recently used. */
  chain(n: number): void {
    const { next, prev } = this;
    for (let i = 0; i < n; i++) {
      next[i] = i - 1;
      prev[i] = i + 1;
    }
    if (n === 0) return;
    prev[n - 1] = NONE;
    this.head = n - 1;
    this.tail = 0;
  }

  /** Empties the list. */
  clear(): void {
    this.head = this.tail = NONE;
  }

  /** Makes room for `capacity` slots, keeping the links (or, emptied, the first `capacity`). */
  grow(capacity: number): void {
    const next = new Int32Array(capacity);
    next.set(this.next.subarray(0, Math.min(this.next.length, capacity)));
    this.next = next;
    const prev = new Int32Array(capacity);
    prev.set(this.prev.subarray(0, Math.min(this.prev.length, capacity)));
    this.prev = prev;
  }
}
