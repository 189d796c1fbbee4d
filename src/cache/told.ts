/**
 * What `changes()` readers were told last: a ring of the last
 * {@link TOLD_RING} changes (key, revision, write time, deleted or not). A
 * rebuild of the same incarnation of the bucket (its sequence seen going
 * backwards, or its replicas disagreeing: nats-server 2.9,
 * docs/nats-versions.md) re-reads revisions the readers had; a change equal
 * to one of these is not told again. `ToldLog` owns it all: the highest
 * revision told, the ring, and during a rebuild what was told before; the
 * sync loop (src/cache/sync_loop.ts) asks it for each watcher message.
 *
 * @module
 */
import type { Slot } from "../slot.ts";

/** Changes remembered, per cache with `changes()` readers (about 25 bytes each with the key's reference). */
export const TOLD_RING = 1024;

/** A change as told at one revision. */
export interface Told {
  key: string;
  /** Write time, epoch ms. */
  created: number;
  /** A delete or purge. */
  deleted: boolean;
}

/**
 * The last {@link TOLD_RING} changes told, oldest overwritten first.
 *
 * @example
 * ```ts
 * import { ToldRing } from "./told.ts";
 * const ring = new ToldRing();
 * ring.record(7, { key: "a", created: Date.now(), deleted: false });
 * const told = new Map();
 * ring.addTo(told);
 * console.log(told.get(7)?.key); // "a"
 * ```
 */
export class ToldRing {
  // Allocated at the first change told (a cache without readers needs none).
  #revs: Float64Array | undefined;
  #created = new Float64Array(0);
  #deleted = new Uint8Array(0);
  #keys: string[] = [];
  #next = 0;
  #size = 0;

  /** Remembers that `told.key` was told at `rev`. */
  record(rev: number, told: Told): void {
    if (this.#revs === undefined) {
      this.#revs = new Float64Array(TOLD_RING);
      this.#created = new Float64Array(TOLD_RING);
      this.#deleted = new Uint8Array(TOLD_RING);
      this.#keys = new Array(TOLD_RING).fill("");
    }
    const i = this.#next;
    this.#revs[i] = rev;
    this.#created[i] = told.created;
    this.#deleted[i] = told.deleted ? 1 : 0;
    this.#keys[i] = told.key;
    this.#next = (i + 1) % TOLD_RING;
    if (this.#size < TOLD_RING) this.#size++;
  }

  /** Adds every change remembered to `into`, by revision. */
  addTo(into: Map<number, Told>): void {
    for (let n = 0; n < this.#size; n++) {
      const i = (this.#next - 1 - n + TOLD_RING) % TOLD_RING;
      const rev = this.#revs![i]!;
      if (!into.has(rev)) {
        into.set(rev, {
          key: this.#keys[i]!,
          created: this.#created[i]!,
          deleted: this.#deleted[i] === 1,
        });
      }
    }
  }

  /** Forgets everything (a recreated bucket: its revisions start again). */
  clear(): void {
    this.#size = 0;
    this.#next = 0;
  }
}

/**
 * What `changes()` readers of one cache were told: whether a watcher message
 * is news for them. A revision past every one told is; so is one the store
 * did not hold (a re-read after a resync or a WAN heal brings the bucket
 * again: what readers had is not repeated, what they lacked comes now). A
 * rebuild of the same incarnation ({@link rebuild}) empties the store first:
 * until the re-read passes the last revision told before, a change equal to
 * one told then is not news.
 *
 * @example
 * ```ts
 * import { ToldLog } from "./told.ts";
 * const log = new ToldLog();
 * console.log(log.news("a", 1, 5, false, true, true)); // true
 * log.rebuild(false);
 * console.log(log.news("a", 1, 5, false, true, true)); // false: told before the rebuild
 * ```
 */
export class ToldLog {
  /** The highest revision told in this incarnation of the bucket. */
  #emittedRev = 0;
  readonly #ring = new ToldRing();
  /** During a rebuild of the same incarnation: what readers were told before, by revision. */
  #before: { revs: Map<number, Told>; until: number } | undefined;

  /**
   * Whether the change of `key` at `rev` (written at `created`, a delete or
   * not) is news for the readers. `stored`: the store took it (it held an
   * older revision or none); `active`: some reader listens (only then is it
   * remembered as told). Positional: called per watcher message.
   */
  news(
    key: string,
    rev: number,
    created: number,
    deleted: boolean,
    stored: boolean,
    active: boolean,
  ): boolean {
    const before = this.#before;
    const told = before?.revs.get(rev);
    // The re-read passed every revision told before: from here on all is news.
    if (before !== undefined && rev >= before.until) this.#before = undefined;
    if (
      told !== undefined && told.key === key && told.created === created &&
      told.deleted === deleted
    ) {
      if (rev > this.#emittedRev) this.#emittedRev = rev;
      return false;
    }
    const news = rev > this.#emittedRev || stored;
    if (rev > this.#emittedRev) this.#emittedRev = rev;
    if (!news || !active) return false;
    this.#ring.record(rev, { key, created, deleted });
    return true;
  }

  /**
   * The store is about to be emptied for a rebuild. A recreated bucket starts
   * its revisions again: readers get them all. The same incarnation rebuilt
   * (its sequence seen going backwards, or its replicas disagreeing:
   * nats-server 2.9, docs/nats-versions.md) is re-read from a revision the
   * readers had passed (a replica from the start): what was told, and what a
   * replica's store held (`held`), is not told again until the re-read passes
   * it. A stream that really lost revisions keeps that record until new
   * writes pass them.
   */
  rebuild(recreated: boolean, held?: Iterable<[string, Slot]>): void {
    this.#emittedRev = 0;
    if (recreated) {
      this.#before = undefined;
      this.#ring.clear();
      return;
    }
    // A second rebuild before the first re-read passed it keeps what the first knew.
    const told = this.#before?.revs ?? new Map<number, Told>();
    this.#ring.addTo(told);
    for (const [key, slot] of held ?? []) {
      if (slot.rev <= 0 || told.has(slot.rev)) continue;
      told.set(slot.rev, {
        key,
        created: slot.created,
        deleted: slot.deleted && slot.rejected === undefined,
      });
    }
    let until = 0;
    for (const rev of told.keys()) until = Math.max(until, rev);
    this.#before = told.size > 0 ? { revs: told, until } : undefined;
  }

  /**
   * The watcher caught up at `rev`: past every revision told before the
   * rebuild, every change from now on is news. (Short of them, as when a
   * stale stream info said the stream ended lower, the re-read goes on.)
   */
  caughtUp(rev: number): void {
    if (this.#before !== undefined && rev >= this.#before.until) this.#before = undefined;
  }
}
