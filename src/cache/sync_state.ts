/**
 * The lifecycle state machine, in one place. `transition()` is the only code
 * that writes the lifecycle fields of the core (`state`, `connected`,
 * `disconnectedAt`, `resyncing`, `resyncEpoch`, `isReady`, `closed`,
 * `lastError`; they are
 * `readonly` on `CacheCore`, so another writer is a type error); the parts
 * report what happened as a {@link SyncEvent}.
 *
 * | from                       | event                                          | to        |
 * | -------------------------- | ---------------------------------------------- | --------- |
 * | starting, stale, resyncing | caught_up (connected, hub in sync)             | synced    |
 * | stale                      | hub regained (connected, watcher live)         | synced    |
 * | any but closed             | disconnected, connection_closed                | stale     |
 * | starting                   | snapshot_served                                | stale     |
 * | synced                     | restarting, hub lost                           | stale     |
 * | any but closed             | caught_up (connected, hub lost)                | stale     |
 * | any but closed             | resync                                         | resyncing |
 * | any                        | closed                                         | closed    |
 *
 * `closed` is final: no event leaves it. `fresh` (a hit may be served without
 * a check) is not stored: it is `state === "synced"`.
 *
 * Besides the state, two facts are tracked because they outlive it:
 * `connected` (rule 7: disconnected is not down, see {@link servable}) and
 * `resyncing` (a resync still running while the state went stale on a
 * disconnect; with `resyncEpoch`, a recreated bucket whose old entries must
 * not be served meanwhile).
 *
 * @module
 */
import type { CacheState } from "../types.ts";
import type { CacheCore } from "./core.ts";

/** The lifecycle fields, `readonly` on {@linkcode CacheCore}. */
type LifecycleField =
  | "state"
  | "since"
  | "connected"
  | "disconnectedAt"
  | "resyncing"
  | "resyncEpoch"
  | "isReady"
  | "closed"
  | "lastError";
/** The core with its lifecycle fields writable: only this module sees it so. */
type Lifecycle<T> =
  & Omit<CacheCore<T>, LifecycleField>
  & { -readonly [K in LifecycleField]: CacheCore<T>[K] };

/** Something that moves the lifecycle. */
export type SyncEvent =
  /** Opened from the snapshot while NATS is unreachable (state unchanged until served). */
  | { on: "open_unreachable" }
  /** The snapshot loaded while NATS is unreachable is served, as stale. */
  | { on: "snapshot_served"; reason: string }
  /** A connection is being attached (a cache opened from its snapshot). */
  | { on: "attaching" }
  /** Attaching failed; still unbound. */
  | { on: "attach_failed" }
  /** The connection reported a disconnect. */
  | { on: "disconnected" }
  /** The connection is back (the watcher resumes and reports caught_up). */
  | { on: "reconnected" }
  /** The connection is closed for good. */
  | { on: "connection_closed" }
  /** The watcher replaces its consumer. */
  | { on: "restarting"; reason: string }
  /** A regional mirror lost (`inSync: false`) or regained the hub. */
  | { on: "hub"; inSync: boolean; watcherLive: boolean }
  /** The local state is rebuilt from the stream. */
  | { on: "resync"; reason: string; epochChanged: boolean }
  /** The watcher applied everything up to `revision`. */
  | { on: "caught_up"; revision: number; hubInSync: boolean }
  /** Something failed that `status().lastError` reports (the state is moved by its own event). */
  | { on: "error"; message: string }
  /** `close()` began: no reads, writes or binds from now on. */
  | { on: "closing" }
  /** `close()` finished with the watcher. */
  | { on: "closed" };

/**
 * Applies `event` to the lifecycle of `c`. Returns false when the event
 * changed nothing because it did not apply (a disconnect while already
 * disconnected), so that the caller skips its side effects.
 */
export function transition<T>(core: CacheCore<T>, event: SyncEvent): boolean {
  const c = core as Lifecycle<T>;
  switch (event.on) {
    case "open_unreachable":
      c.connected = false;
      c.disconnectedAt = Date.now();
      return true;
    case "snapshot_served":
      setState(c, "stale", event.reason);
      return true;
    case "attaching":
      c.connected = true;
      return true;
    case "attach_failed":
      c.connected = false;
      return true;
    case "disconnected":
      if (!c.connected) return false;
      c.connected = false;
      c.disconnectedAt = Date.now();
      setState(c, "stale", "NATS disconnected");
      return true;
    case "reconnected":
      c.connected = true;
      return true;
    case "connection_closed":
      c.connected = false;
      c.disconnectedAt ||= Date.now();
      setState(c, "stale", "NATS connection closed");
      return true;
    case "restarting":
      if (c.state === "synced") setState(c, "stale", event.reason);
      return true;
    case "hub":
      if (!event.inSync) {
        if (c.state === "synced") setState(c, "stale", "the regional mirror cannot reach the hub");
      } else if (c.state === "stale" && c.connected && event.watcherLive) {
        setState(c, "synced", "the regional mirror reaches the hub again");
      }
      return true;
    case "resync":
      c.resyncing = true;
      c.resyncEpoch = event.epochChanged;
      setState(c, "resyncing", event.reason);
      return true;
    case "caught_up":
      c.resyncing = false;
      c.resyncEpoch = false;
      if (!event.hubInSync) {
        if (c.connected) setState(c, "stale", "the regional mirror cannot reach the hub");
      } else if (c.connected) setState(c, "synced", `caught up at revision ${event.revision}`);
      if (!c.isReady) {
        c.isReady = true;
        c.ready.resolve();
      }
      return true;
    case "error":
      c.lastError = event.message;
      return true;
    case "closing":
      c.closed = true;
      return true;
    case "closed":
      setState(c, "closed", "closed");
      c.onFresh(false);
      return true;
  }
}

/** The one writer of `state` (`fresh` is derived from it); closed is final. */
function setState<T>(c: Lifecycle<T>, state: CacheState, reason: string): void {
  if (c.state === state || c.state === "closed") return;
  c.state = state;
  c.since = Date.now();
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
