/**
 * The synchronous hit of a cache, for the HTTP facade's GET fast path: the
 * entry of a resident, fresh, plain value without a promise, counted as a hit
 * exactly as `getEntry()` counts it. Anything else (absent, a tombstone, a
 * value not decoded yet, not synced, stale) is `undefined`, and the caller
 * awaits `getEntry()`, which decides it. Reached through a symbol, so that
 * `ReadonlyCache` keeps its public shape; a cache without it (another
 * implementation of the interface) always takes the awaited path.
 *
 * @module
 */
import type { Entry, ReadonlyCache } from "./types.ts";

/**
 * The method a cache answers synchronous hits with.
 *
 * @example
 * ```ts ignore
 * import { SYNC_HIT } from "./sync_hit.ts";
 * const e = (cache as SyncHitSource<unknown>)[SYNC_HIT]("user.1");
 * ```
 */
export const SYNC_HIT: unique symbol = Symbol("kvedge.syncHit");

/**
 * A cache that can answer a hit without a promise.
 *
 * @example
 * ```ts ignore
 * import { SYNC_HIT, type SyncHitSource } from "./sync_hit.ts";
 * const canHitNow = (c: object): c is SyncHitSource<unknown> => SYNC_HIT in c;
 * ```
 */
export interface SyncHitSource<T> {
  /** The entry of a fresh, resident, decoded value (counted as a hit), else `undefined`. */
  [SYNC_HIT](key: string): Entry<T> | undefined;
}

/**
 * The entry of `key` if `cache` holds it fresh and can say so without a
 * promise (counted as a hit), else `undefined`: then await `getEntry()`.
 *
 * @example
 * ```ts ignore
 * import { syncHit } from "./sync_hit.ts";
 * const e = syncHit(cache, "user.1") ?? await cache.getEntry("user.1");
 * ```
 */
export function syncHit<T>(cache: ReadonlyCache<T>, key: string): Entry<T> | undefined {
  const source = cache as Partial<SyncHitSource<T>>;
  return source[SYNC_HIT] === undefined ? undefined : source[SYNC_HIT](key);
}
