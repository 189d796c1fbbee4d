/**
 * The read side of a cache as a handle of its own: the write methods are not
 * there at all.
 *
 * @module
 */
import { SYNC_HIT, type SyncHitSource } from "../sync_hit.ts";
import type { ReadonlyCache } from "../types.ts";

/**
 * A view of `c` with only the read side.
 *
 * @example
 * ```ts ignore
 * const reader = readonlyView(cache); // no set(), delete()...
 * ```
 */
export function readonlyView<T>(
  c: ReadonlyCache<T> & SyncHitSource<T>,
): ReadonlyCache<T> & SyncHitSource<T> {
  return {
    [SYNC_HIT]: (k) => c[SYNC_HIT](k),
    get bucket() {
      return c.bucket;
    },
    get mode() {
      return c.mode;
    },
    ready: (o) => c.ready(o),
    bookmark: () => c.bookmark(),
    get: (k, o) => c.get(k, o),
    peek: (k) => c.peek(k),
    getEntry: (k, o) => c.getEntry(k, o),
    keys: (f, o) => c.keys(f, o),
    history: (k, o) => c.history(k, o),
    changes: (o) => c.changes(o),
    events: (o) => c.events(o),
    stats: () => c.stats(),
    status: () => c.status(),
    close: () => c.close(),
    [Symbol.asyncDispose]: () => c.close(),
  };
}
