/**
 * Rule 7, disconnected is not down, in one place: what the cache does while
 * NATS is unreachable and when it comes back.
 *
 * - The connection's status is followed ({@link followConnection}): a
 *   disconnect makes the cache stale (the lifecycle's table,
 *   src/cache/lifecycle.ts) and pauses the watcher; a reconnect drops what
 *   the loader answered offline (`Freshness.reconnected`: not checked against
 *   KV) and the watcher resumes from its last applied revision, or, when it
 *   cannot (a recreated bucket, a history that no longer reaches it), asks the
 *   sync loop for a resync and says so (a `resync` event).
 * - Resident entries are still served, marked stale ({@link servable}, within
 *   `staleIfErrorMs`; never during a resync of a recreated bucket).
 * - A miss never waits for NATS: the loader answers, or it fails now
 *   ({@link missOffline}, {@link fellOffline}).
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { describe } from "../describe.ts";
import { UnavailableError } from "../errors.ts";
import type { CacheCore } from "./core.ts";

/** Whether resident entries may be served now (fresh, or stale within `staleIfErrorMs`). */
export function servable<T>(c: CacheCore<T>): boolean {
  if (c.life.fresh) return true;
  if (c.life.state === "closed") return false;
  if (c.life.state === "resyncing" && c.life.resyncEpoch) return false;
  if (c.life.connected || c.o.staleIfErrorMs === Infinity) return true;
  return Date.now() - c.life.disconnectedAt <= c.o.staleIfErrorMs;
}

/**
 * A miss of `key` while NATS is down: true when the loader answers it,
 * `UnavailableError` at once without one; false while connected.
 */
export function missOffline<T>(c: CacheCore<T>, key: string): boolean {
  if (c.life.connected) return false;
  if (c.o.loader) return true;
  throw new UnavailableError(`Cannot get "${key}": NATS is disconnected`);
}

/** A miss's read failed and NATS is down now: whether the loader answers instead. */
export function fellOffline<T>(c: CacheCore<T>): boolean {
  return !c.life.connected && Boolean(c.o.loader);
}

/**
 * Options of {@link followConnection}: its hooks, what the connection's
 * status asks of the watcher (the sync loop's, src/cache/sync_loop.ts).
 */
export interface FollowConnectionOptions {
  /** The connection dropped: the watcher stops expecting messages. */
  disconnected(): void;
  /** The connection is back: the watcher resumes (or asks for a resync). */
  reconnected(): void;
}

/**
 * Follows `nc`'s status for cache `c` until it closes, telling the watcher
 * through the hooks in `watcher`; returns what stops following (nats.js's
 * status iterator has stop(): a shared connection keeps no listener of a
 * closed, or never opened, cache).
 */
export function followConnection<T>(
  c: CacheCore<T>,
  nc: NatsConnection,
  watcher: FollowConnectionOptions,
): () => void {
  const status = nc.status();
  (async () => {
    for await (const s of status) {
      if (c.life.closed) return;
      if (s.type === "disconnect") {
        if (!c.life.transition({ on: "disconnected" })) continue;
        watcher.disconnected();
        c.emit({ type: "disconnected", at: c.life.disconnectedAt });
      } else if (s.type === "error") {
        // e.g. a permissions violation on the watcher's subjects: say so.
        c.life.recordError(describe(s.error));
        c.emit({ type: "error", at: Date.now(), message: c.life.lastError! });
      } else if (s.type === "reconnect") {
        c.life.transition({ on: "reconnected" });
        c.freshness.reconnected();
        c.emit({ type: "connected", at: Date.now() });
        watcher.reconnected();
      }
    }
  })().catch(() => {});
  nc.closed().then(() => {
    if (c.life.closed) return;
    c.life.transition({ on: "connection_closed" });
  });
  return () => (status as { stop?: () => void }).stop?.();
}
