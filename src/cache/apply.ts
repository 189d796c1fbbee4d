/**
 * Applying a revision to the local store, from any source: the watcher
 * (`onChange`), a miss fetch (`keep`) and an own delete (`applyDelete`).
 * Rule 1 (revision wins) is `LocalStore.put`; rule 2 (tombstones) and the
 * watcher's half of rule 3 (recording into a reservation) are here. This
 * module is the one writer of what says whether a missing slot means
 * "absent": `lossy`, `partial` and the replica's `tombstones` count, and of
 * `emittedRev`, which keeps `changes()` from repeating a change.
 *
 * @module
 */
import { Applied, type Slot } from "../slot.ts";
import type { Operation } from "../types.ts";
import { type CacheCore, impliedAbsent, toChange } from "./core.ts";

/** A `bootstrap` progress event is emitted every this many applied changes. */
const BOOTSTRAP_EVENT_EVERY = 10_000;

export function onChange<T>(
  c: CacheCore<T>,
  key: string,
  op: Operation,
  rev: number,
  created: number,
  data: Uint8Array,
  _pending: number,
  ttlMs = 0,
): void {
  c.counters.add("applied");
  c.lastCreated = created;
  if (!c.watcher.caughtUp && c.counters.add("bootstrapApplied") % BOOTSTRAP_EVENT_EVERY === 0) {
    c.emit({
      type: "bootstrap",
      at: Date.now(),
      applied: c.counters.get("bootstrapApplied"),
      pending: c.watcher.pending,
    });
  }
  // A revision at or below the last one emitted comes again in a re-read
  // (a resync, a WAN heal): new to readers only if the store had older.
  const past = rev <= c.emittedRev;
  const heldRev = past ? c.store.peek(key)?.rev ?? 0 : 0;
  let stored = false;
  if (c.mode === "replica" || c.store.has(key)) {
    // The store keeps its own compact copy of `data`. Rule 6: a value with
    // its own TTL never outlives it here, even if the server's expiry marker
    // never arrives (a regional mirror cut off for longer than the bucket's
    // marker TTL never copies it: docs/topologies.md).
    stored = op === "PUT"
      ? c.store.put(key, rev, created, data, c.gen, keyTtlLeft(created, ttlMs)) === Applied.Stored
      : applyDelete(c, key, rev, created);
  }
  // Rule 3 in both modes: a miss in flight keeps the higher of its answer and this.
  if (c.reservations.size > 0) {
    const r = c.reservations.get(key);
    if (r !== undefined && rev > r.rev) {
      r.rev = rev;
      r.created = created;
      r.raw = op === "PUT" ? data.slice() : undefined;
      r.ttlMs = ttlMs;
    }
  }
  // changes(): a revision past every one emitted, or one the store did not
  // have (a re-read after a resync or a WAN heal brings the bucket again:
  // what readers had is not repeated, what they lacked comes now).
  if (!past) {
    if (c.changes.active) {
      c.changes.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
    }
    c.emittedRev = rev;
  } else if (stored && heldRev < rev && c.changes.active) {
    c.changes.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
  }
  // Rule 8: bookmarked reads waiting for this revision may go on.
  c.reached.advance(rev);
}

/**
 * What is left of a per-key TTL of `ttlMs` for a value written at `created`
 * (epoch ms, the server's clock), ms from now: 0 for none, at least 1.
 */
export function keyTtlLeft(created: number, ttlMs: number): number {
  if (ttlMs <= 0) return 0;
  return Math.max(1, Math.ceil(created + ttlMs - Date.now()));
}

/** Applies a delete of `key` at `rev`; true if the store changed (it held something older). */
export function applyDelete<T>(
  c: CacheCore<T>,
  key: string,
  rev: number,
  created: number,
  own = false,
): boolean {
  if (
    c.mode === "replica" && !c.lossy &&
    (impliedAbsent(c, rev) || (!own && !c.o.allowDirect))
  ) {
    // No slot says "absent" as well as a tombstone here: the watcher will
    // bring nothing older for the key, and a miss in flight holds a
    // reservation (rule 3) while a later one reads the leader, which has
    // this delete. A complete replica answers such misses itself.
    const held = c.store.peek(key);
    if (held === undefined || held.rev <= rev) c.store.delete(key);
    return held !== undefined && held.rev < rev;
  }
  // Rule 2: an own delete the watcher has not reached yet (it may still
  // deliver an earlier PUT), a lazy cache's delete, or a replica's delete
  // while direct gets may answer from a lagging replica, leaves a
  // tombstone; a replica drops it when the watcher has passed it.
  if (c.store.put(key, rev, created, undefined, c.gen) === Applied.Stored) {
    if (c.mode === "replica") c.tombstones++;
    return true;
  }
  return false;
}

/** A fetched result: its revision, write time, bytes (undefined: absent) and own TTL left, ms. */
export interface Fetched {
  /** Revision (0: absent as of the fetch). */
  rev: number;
  /** When it was written, epoch ms. */
  created: number;
  /** The value's bytes; undefined for a delete or an absent key. */
  raw: Uint8Array | undefined;
  /** How long it may still live, ms; 0 for no TTL of its own. */
  ttlMs?: number;
}

/** Stores a fetched result by the revision rule and returns what is resident (or would be). */
export function keep<T>(c: CacheCore<T>, key: string, fetched: Fetched): Slot {
  const { rev, created, raw, ttlMs = 0 } = fetched;
  if (c.mode === "replica" && impliedAbsent(c, rev) && !c.store.has(key)) {
    // The watcher applied this revision or a later one and holds nothing for
    // the key: it was deleted since (a stale answer, e.g. a lagging replica).
    return { rev, created, deleted: true, raw: undefined, value: undefined, size: 0, gen: 0 };
  }
  const res = c.store.put(key, rev, created, raw, c.gen, ttlMs);
  if (res === Applied.Stored && raw === undefined && c.mode === "replica") c.tombstones++;
  if (res === Applied.Older || res === Applied.Stored) return c.store.peek(key)!;
  // Not held: expired (absent), or too large to hold (served once, as a miss).
  const deleted = res === Applied.Expired || raw === undefined;
  return {
    rev,
    created,
    deleted,
    raw: deleted ? undefined : raw,
    value: undefined,
    size: 0,
    gen: 0,
  };
}

/** A recreated bucket starts its revisions again: `changes()` readers get them all. */
export function forgetEmitted<T>(c: CacheCore<T>): void {
  c.emittedRev = 0;
}

/**
 * The store no longer holds every key of the bucket: entries were evicted
 * (`partial` false) or a partial snapshot was loaded (`partial` true, until
 * a full resync reads every key). A missing slot is not "absent" from now on.
 */
export function markLossy<T>(c: CacheCore<T>, partial: boolean): void {
  c.lossy = true;
  if (partial) c.partial = true;
}

/**
 * A replica caught up (`resynced`: after a full read of the bucket): what a
 * partial snapshot lacked is here now, and tombstones the watcher has passed
 * say nothing a missing slot does not.
 */
export function replicaCaughtUp<T>(c: CacheCore<T>, resynced: boolean): void {
  if (resynced && c.partial && !c.overflowed) {
    c.partial = false;
    c.lossy = c.o.maxTtlMs > 0;
  }
  if (c.tombstones > 0 && !c.lossy) {
    c.store.dropTombstones(c.watcher.lastRevision);
    c.tombstones = 0;
  }
}
