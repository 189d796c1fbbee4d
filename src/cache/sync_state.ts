/**
 * The lifecycle state machine: starting → synced ⇄ stale, resyncing →
 * synced, any → closed (closed is final). `setState` is the only place the
 * state changes; `servable` is rule 7's "disconnected is not down".
 *
 * @module
 */
import type { CacheState } from "../types.ts";
import type { CacheCore } from "./core.ts";

export function setState<T>(c: CacheCore<T>, state: CacheState, reason: string): void {
  if (c.state === state || c.state === "closed") return;
  c.state = state;
  c.since = Date.now();
  c.fresh = state === "synced";
  c.onFresh(c.fresh);
  if (state === "synced") {
    c.emit({ type: "synced", at: c.since, revision: c.watcher.lastRevision });
  } else if (state === "stale") {
    c.emit({ type: "stale", at: c.since, reason });
  }
}

/** Whether resident entries may be served now (fresh, or stale within `staleIfErrorMs`). */
export function servable<T>(c: CacheCore<T>): boolean {
  if (c.fresh) return true;
  if (c.state === "closed") return false;
  if (c.state === "resyncing" && c.resyncEpoch) return false;
  if (c.connected || c.o.staleIfErrorMs === Infinity) return true;
  return Date.now() - c.disconnectedAt <= c.o.staleIfErrorMs;
}
