/**
 * The cache's watcher handler for a data message (`onChange`): counts it,
 * hands it to the store's owner (`Freshness.apply`, src/cache/freshness.ts,
 * where rules 1–3 and 6 are), tells `changes()` readers and wakes bookmarked
 * reads. This module is the one writer of `emittedRev`, which keeps
 * `changes()` from repeating a change, and of `lastCreated` (the lag).
 *
 * @module
 */
import type { Operation } from "../types.ts";
import { type CacheCore, toChange } from "./core.ts";

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
  // Rules 1–3 and 6: whether the store takes it, and a reservation records it.
  const stored = c.freshness.apply({ source: "watch", key, op, rev, created, raw: data, ttlMs });
  // changes(): a revision past every one emitted, or one the store did not
  // have (a re-read after a resync or a WAN heal brings the bucket again:
  // what readers had is not repeated, what they lacked comes now; the store
  // changed only if it held an older revision or none).
  if (rev > c.emittedRev) {
    if (c.changes.active) {
      c.changes.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
    }
    c.emittedRev = rev;
  } else if (stored && c.changes.active) {
    c.changes.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
  }
  // Rule 8: bookmarked reads waiting for this revision may go on.
  c.reached.advance(rev);
}

/** A recreated bucket starts its revisions again: `changes()` readers get them all. */
export function forgetEmitted<T>(c: CacheCore<T>): void {
  c.emittedRev = 0;
}
