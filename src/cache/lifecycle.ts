/**
 * The lifecycle of a cache (`Lifecycle`), its one owner: all of it
 * `#private`, moved only by {@link Lifecycle.transition} (the table below)
 * and three verbs (`recordError`, `startFailed`, `close`), read through
 * getters. It is a few small discriminated unions, each carrying its own
 * data, rather than one union over their product (docs/architecture.md says
 * why):
 *
 * - the phase: `starting`, `synced`, `stale` (with its reason), `resyncing`
 *   (with its reason) or `closed`, each with the time it began (`since`);
 * - the link: `up`, or `down` since a time (rule 7: disconnected is not down,
 *   src/cache/offline.ts reads it), or `attaching` a connection to a cache
 *   opened from its snapshot (connected, but still down since that time if
 *   the attach fails); a connection closed while up is down from then;
 * - the rebuild: none, or a resync `running` (with whether the bucket was
 *   recreated), which outlives the `resyncing` phase when a disconnect makes
 *   the cache stale meanwhile;
 * - readiness: `waiting` or `ready`, and the `ready` promise, settled only
 *   here (caught up, start failed, closing);
 * - closing: `open`, `asked` (close() called: a last snapshot is saved,
 *   reads still answered) or `refusing` (reads, writes and binds refused),
 *   with the promise of the close;
 * - and `lastError`, what `status()` reports.
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
 * a check) is not stored: it is the phase `synced`. A change of phase emits
 * `synced`/`stale` and calls `onFresh` (the facade mirrors `fresh` in a field
 * of its own so that a hit reads one field; the core keeps `Reached` in step).
 *
 * @module
 */
import { ClosedError } from "../errors.ts";
import type { CacheEvent, CacheState } from "../types.ts";

/** Something that moves the lifecycle. */
export type SyncEvent =
  /** Opened from the snapshot while NATS is unreachable (state unchanged until served). */
  | { on: "open_unreachable" }
  /** The snapshot loaded while NATS is unreachable is served, as stale. */
  | { on: "snapshot_served"; reason: string }
  /** A connection is being attached (a cache opened from its snapshot). */
  | { on: "attaching" }
  /** Attaching failed; still unbound, down since before. */
  | { on: "attach_failed" }
  /** Attaching succeeded: the watcher runs on the new connection. */
  | { on: "attached" }
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
  /** `close()` began waiting on NATS: no reads, writes or binds from now on; `ready` rejects. */
  | { on: "closing" }
  /** `close()` finished with the watcher. */
  | { on: "closed" };

/** Where the cache is in following its bucket, since when. */
type Phase =
  | { kind: "starting"; since: number }
  | { kind: "synced"; since: number }
  | { kind: "stale"; since: number; reason: string }
  | { kind: "resyncing"; since: number; reason: string }
  | { kind: "closed"; since: number };

/** The connection as the cache sees it (rule 7). */
type Link =
  | { kind: "up" }
  | { kind: "down"; since: number }
  /** A cache opened from its snapshot attaches a connection: counted as up, down since `since`. */
  | { kind: "attaching"; since: number };

/** A resync in flight (it may outlive the `resyncing` phase: a disconnect makes the cache stale). */
type Rebuild = { kind: "none" } | { kind: "running"; epochChanged: boolean };

/** Whether the cache has caught up once. */
type Readiness = { kind: "waiting" } | { kind: "ready" };

/** How far `close()` has come. */
type Closing =
  | { kind: "open" }
  /** close() was called: a last snapshot is saved; reads are still answered. */
  | { kind: "asked"; done: Promise<void> }
  /** Reads, writes and binds are refused; the waits on NATS settle. */
  | { kind: "refusing"; done: Promise<void> };

/** What the lifecycle tells the rest of the cache. */
export interface LifecycleOptions {
  /** Emits a `synced` or `stale` event. */
  emit: (event: CacheEvent) => void;
  /** The revision the watcher applied last (the `synced` event's). */
  revision: () => number;
  /** Called with `fresh` on every change of phase, and with false once closed. */
  onFresh: (fresh: boolean) => void;
}

/**
 * The lifecycle of one cache.
 *
 * @example
 * ```ts ignore
 * const life = new Lifecycle({ emit, revision: () => 0, onFresh: () => {} });
 * life.transition({ on: "caught_up", revision: 7, hubInSync: true });
 * life.fresh; // true
 * ```
 */
export class Lifecycle {
  #phase: Phase = { kind: "starting", since: Date.now() };
  #link: Link = { kind: "up" };
  #rebuild: Rebuild = { kind: "none" };
  #readiness: Readiness = { kind: "waiting" };
  readonly #ready = Promise.withResolvers<void>();
  #closing: Closing = { kind: "open" };
  #lastError: string | undefined;
  readonly #o: LifecycleOptions;

  /** No I/O; `ready` is not rejected unhandled when nobody waits on it. */
  constructor(options: LifecycleOptions) {
    this.#o = options;
    this.#ready.promise.catch(() => {});
  }

  /** The phase, as `status().state` reports it. */
  get state(): CacheState {
    return this.#phase.kind;
  }
  /** When the phase began, ms since the epoch. */
  get since(): number {
    return this.#phase.since;
  }
  /** A hit may be served without a check: the phase is `synced`. */
  get fresh(): boolean {
    return this.#phase.kind === "synced";
  }
  /** Whether the connection is up (or being attached). */
  get connected(): boolean {
    return this.#link.kind !== "down";
  }
  /** Since when the connection is down (0 while up: read it only when not connected). */
  get disconnectedAt(): number {
    return this.#link.kind === "up" ? 0 : this.#link.since;
  }
  /** Whether a resync is in flight (also when a disconnect made the cache stale meanwhile). */
  get resyncing(): boolean {
    return this.#rebuild.kind === "running";
  }
  /** Whether the resync in flight is of a recreated bucket (its old entries must not be served). */
  get resyncEpoch(): boolean {
    return this.#rebuild.kind === "running" && this.#rebuild.epochChanged;
  }
  /** Whether the cache has caught up once. */
  get isReady(): boolean {
    return this.#readiness.kind === "ready";
  }
  /** Resolves once the cache caught up; rejects if its start fails or it closes first. */
  get ready(): Promise<void> {
    return this.#ready.promise;
  }
  /** Whether reads, writes and binds are refused (closing has passed its last snapshot). */
  get closed(): boolean {
    return this.#closing.kind === "refusing";
  }
  /** The last failure `status()` reports. */
  get lastError(): string | undefined {
    return this.#lastError;
  }

  /**
   * Records a failure for `status().lastError` (the phase is moved by its own
   * event, if at all).
   */
  recordError(message: string): void {
    this.#lastError = message;
  }

  /** The cache's start failed: `ready` rejects with `err`. */
  startFailed(err: unknown): void {
    this.#ready.reject(err);
  }

  /**
   * Closes once: the first call runs `run` (which moves the lifecycle with
   * `closing` and `closed`), every call returns the same promise.
   */
  close(run: () => Promise<void>): Promise<void> {
    if (this.#closing.kind !== "open") return this.#closing.done;
    const done = Promise.withResolvers<void>();
    this.#closing = { kind: "asked", done: done.promise };
    run().then(done.resolve, done.reject);
    return done.promise;
  }

  /**
   * Applies `event`. Returns false when the event changed nothing because it
   * did not apply (a disconnect while already disconnected), so that the
   * caller skips its side effects.
   */
  transition(event: SyncEvent): boolean {
    switch (event.on) {
      case "open_unreachable":
        this.#link = { kind: "down", since: Date.now() };
        return true;
      case "snapshot_served":
        this.#enter("stale", event.reason);
        return true;
      case "attaching":
        this.#link = { kind: "attaching", since: this.#downSince() };
        return true;
      case "attach_failed":
        this.#link = { kind: "down", since: this.#downSince() };
        return true;
      case "attached":
        if (this.#link.kind === "attaching") this.#link = { kind: "up" };
        return true;
      case "reconnected":
        this.#link = { kind: "up" };
        return true;
      case "disconnected":
        if (this.#link.kind === "down") return false;
        this.#link = { kind: "down", since: Date.now() };
        this.#enter("stale", "NATS disconnected");
        return true;
      case "connection_closed":
        this.#link = { kind: "down", since: this.#downSince() };
        this.#enter("stale", "NATS connection closed");
        return true;
      case "restarting":
        if (this.fresh) this.#enter("stale", event.reason);
        return true;
      case "hub":
        this.#hub(event.inSync, event.watcherLive);
        return true;
      case "resync":
        this.#rebuild = { kind: "running", epochChanged: event.epochChanged };
        this.#enter("resyncing", event.reason);
        return true;
      case "caught_up":
        this.#caughtUp(event.hubInSync);
        return true;
      case "closing":
        this.#closing = {
          kind: "refusing",
          done: this.#closing.kind === "open" ? Promise.resolve() : this.#closing.done,
        };
        this.#ready.reject(new ClosedError("wait for ready"));
        return true;
      case "closed":
        this.#enter("closed");
        this.#o.onFresh(false);
        return true;
    }
  }

  /** Since when the link is down, or now if it is up (a close while up starts the count now). */
  #downSince(): number {
    return this.#link.kind === "up" ? Date.now() : this.#link.since;
  }

  /** A regional mirror lost or regained the hub. */
  #hub(inSync: boolean, watcherLive: boolean): void {
    if (!inSync) {
      if (this.fresh) {
        this.#enter("stale", "the regional mirror cannot reach the hub");
      }
    } else if (this.#phase.kind === "stale" && this.connected && watcherLive) {
      this.#enter("synced");
    }
  }

  /** The watcher applied everything: the resync is over, and the cache is ready (once). */
  #caughtUp(hubInSync: boolean): void {
    this.#rebuild = { kind: "none" };
    if (!hubInSync) {
      if (this.connected) {
        this.#enter("stale", "the regional mirror cannot reach the hub");
      }
    } else if (this.connected) this.#enter("synced");
    if (this.#readiness.kind === "waiting") {
      this.#readiness = { kind: "ready" };
      this.#ready.resolve();
    }
  }

  /** The one writer of the phase (`since` is stamped here); closed is final. */
  #enter(kind: CacheState, reason = ""): void {
    const from = this.#phase.kind;
    if (from === kind || from === "closed") return;
    const since = Date.now();
    this.#phase = kind === "stale" || kind === "resyncing"
      ? { kind, since, reason }
      : { kind, since };
    this.#o.onFresh(kind === "synced");
    if (kind === "synced") {
      this.#o.emit({ type: "synced", at: since, revision: this.#o.revision() });
    } else if (kind === "stale") {
      this.#o.emit({ type: "stale", at: since, reason });
    }
  }
}
