/**
 * The state the parts of a cache share: options, and the owners of each
 * piece of it — the local store (`freshness`, src/cache/freshness.ts), the
 * sync loop (`sync`: the watcher, the connection's handles, timers,
 * src/cache/sync_loop.ts), the lifecycle (`life`, src/cache/lifecycle.ts),
 * bookmarked reads (`reached`), the counters and the snapshot's mark. No
 * behaviour beyond wiring them, emitting events and a few queries; each part
 * (`read_path.ts`, `writer.ts`, `offline.ts`, `warm_start.ts`, `replay.ts`…)
 * is a set of functions over it that asks the owners.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { JetStreamClient, JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { Broadcast } from "../broadcast.ts";
import { KeyError, UnavailableError } from "../errors.ts";
import { matchesFilter } from "../keys.ts";
import type { Slot } from "../slot.ts";
import type { ResolvedOptions } from "../options.ts";
import type { RegionLink } from "../region.ts";
import { SingleFlight } from "../single_flight.ts";
import type { CacheEvent, CacheMode, Change } from "../types.ts";
import type { Watcher } from "../watcher.ts";
import { Counters } from "./counters.ts";
import { Freshness } from "./freshness.ts";
import { Lifecycle } from "./lifecycle.ts";
import { Reached } from "./reached.ts";
import { SnapshotMark } from "./snapshot_mark.ts";

/** The connection and the handles bound to it (what a cache opened from its snapshot lacks). */
export interface CacheLink {
  nc: NatsConnection;
  /** Manager for the watcher's control calls (stream info, consumer create); a generous timeout. */
  jsm: JetStreamManager;
  /** Client for writes (timeout = writeTimeoutMs). */
  js: JetStreamClient;
  /** KV handle for reads, listings and history. */
  kv: KV;
  /** Stream info read at open. */
  info: StreamInfo;
  /** A regional edge: the local mirror's link to the hub, and where writes go. */
  region?: { link: RegionLink; writePrefix: string };
}

/** What `openCache()` hands to the cache (everything already connected, or see `startUnbound()`). */
export interface CacheDeps<T> extends CacheLink {
  options: ResolvedOptions<T>;
  ownsConnection: boolean;
  /** The connection's inbox prefix. */
  inboxPrefix?: string;
}

/**
 * The sync loop as the other parts see it: what they read of it, and the two
 * steps of closing. Its one implementation, `SyncLoop`
 * (src/cache/sync_loop.ts), holds all of it `#private`; this interface keeps
 * core.ts from importing it (the loop's files import the core).
 */
export interface SyncView<T> {
  /** The current watcher: read its position here; only the loop makes, places, starts or stops it. */
  readonly watcher: Watcher;
  /** The connection and its handles (swapped only when a cache opened from its snapshot binds). */
  readonly link: CacheDeps<T>;
  /** Where writes go: the bucket's subjects, or a regional edge's hub prefix. */
  readonly writePrefix: string;
  /** The current watcher's start (or attach) while it has not settled; undefined otherwise. */
  readonly starting: Promise<void> | undefined;
  /** Whether `link` holds a real connection (false while opened from the snapshot only). */
  readonly bound: boolean;
  /** The last stream info read (at open, by the watcher, by reconciliation). */
  readonly lastInfo: StreamInfo | undefined;
  readonly resyncs: number;
  readonly lastResyncReason: string | undefined;
  /** The write time of the last change the watcher applied (the lag). */
  readonly lastCreated: number;
  /** The first step of closing: the timers and the hub link stop. */
  stopTimers(): void;
  /** The last step of closing: the status loop stops; a bind in flight and the watcher settle. */
  stop(settle: (p: Promise<unknown>) => Promise<unknown>): Promise<void>;
}

/** What the facade plugs into a core: its sync loop, and its mirror of `fresh`. */
export interface CoreParts<T> {
  /** Makes the sync loop over the core (called last in the core's constructor). */
  sync: (core: CacheCore<T>) => SyncView<T>;
  /** Called on every change of `life.fresh`. */
  onFresh: (fresh: boolean) => void;
}

/** The shared state of one cache. */
export class CacheCore<T> {
  readonly bucket: string;
  readonly mode: CacheMode;
  readonly o: ResolvedOptions<T>;
  /** The local store and the rules of freshness over it (its only writer). */
  readonly freshness: Freshness;
  readonly flight = new SingleFlight<string, Slot | undefined>();
  /** The sync loop (src/cache/sync_loop.ts): the watcher, the connection, timers, binding. */
  readonly sync: SyncView<T>;
  readonly changes = new Broadcast<Change<T>>();
  readonly events = new Broadcast<CacheEvent>();
  /** Readers waiting for the watcher to apply a revision (rule 8, `at_least.ts`). */
  readonly reached = new Reached();
  /** The lifecycle (phase, link, readiness, closing, `lastError`), its own owner. */
  readonly life: Lifecycle;
  readonly aborter = new AbortController();
  /** Misses, fetches, loads, stale hits… (the facade counts hits itself). */
  readonly counters = new Counters();
  /** The revision the warm-start snapshot holds (written by warm_start.ts). */
  readonly snapshotMark = new SnapshotMark();

  /**
   * No I/O; `parts.sync` makes the sync loop over this core (the facade
   * passes `SyncLoop`'s constructor; it runs last, when every other field is
   * set), `parts.onFresh` hears every change of `life.fresh` (the facade's
   * mirror of it). The store's evictions and too-large refusals are reported
   * as events.
   */
  constructor(deps: CacheDeps<T>, parts: CoreParts<T>) {
    const o = deps.options;
    this.o = o;
    this.bucket = o.bucket;
    this.mode = o.mode;
    this.freshness = new Freshness({
      mode: o.mode,
      maxItems: o.maxItems,
      maxBytes: o.maxBytes,
      maxTtlMs: o.maxTtlMs,
      maxNegativeShare: o.maxNegativeShare,
      allowDirect: o.allowDirect,
      negativeTtlMs: o.negativeTtlMs,
      appliedRevision: () => this.sync.watcher.lastRevision,
      onRemove: (removed) => this.#onRemoved(removed),
    });
    this.life = new Lifecycle({
      emit: (event) => this.emit(event),
      revision: () => this.sync.watcher.lastRevision,
      onFresh: (fresh) => {
        parts.onFresh(fresh);
        // Bookmarked reads wait for "applied up to"; synced is when it is known.
        if (fresh) this.reached.advance(this.sync.watcher.lastRevision);
        else this.reached.reset();
      },
    });
    this.sync = parts.sync(this);
  }

  /** The store dropped `key` for its bounds (`overflow`: the first time a replica lost a key). */
  #onRemoved(
    removed: { key: string; reason: "evict" | "too_large"; overflow: boolean },
  ): void {
    const { key, reason } = removed;
    if (removed.overflow) {
      this.emit({ type: "overflow", at: Date.now(), entries: this.freshness.view.size });
    }
    if (this.events.active || this.o.onEvent) {
      this.emit({
        type: "evicted",
        at: Date.now(),
        key,
        reason: reason === "evict" ? "bounds" : "too large",
      });
    }
  }

  emit(event: CacheEvent): void {
    if (this.o.onEvent) {
      try {
        this.o.onEvent(event);
      } catch {
        // A logging hook must not break the cache.
      }
    }
    this.events.emit(event);
  }
}

/**
 * Whether this replica holds the whole bucket now, so that listing it needs
 * no I/O: synced, caught up since its last clear, and nothing dropped
 * locally (no eviction, no local TTL, no partial snapshot).
 */
export function listsLocally<T>(c: CacheCore<T>): boolean {
  return c.mode === "replica" && c.life.fresh && c.freshness.holdsAll;
}

export function assertInFilter<T>(c: CacheCore<T>, key: string, action: string): void {
  if (c.o.keys !== ">" && !matchesFilter(c.o.keys, key)) {
    throw new KeyError(
      `Cannot ${action}: key "${key}" is outside this cache's filter "${c.o.keys}"`,
      key,
    );
  }
}

export function assertUp<T>(c: CacheCore<T>, action: string): void {
  if (!c.life.connected) throw new UnavailableError(`Cannot ${action}: NATS is disconnected`);
}

/** Decodes (codec, then schema) without keeping anything; undefined if refused. */
export function decodeOrUndefined<T>(c: CacheCore<T>, raw: Uint8Array): T | undefined {
  try {
    const v = c.o.codec.decode(raw);
    if (!c.o.schema) return v;
    const r = c.o.schema.safeParse(v);
    return r.success ? r.data : undefined;
  } catch {
    return undefined;
  }
}

/**
 * A watcher message as a `Change` for `changes()` readers: `ch` (key,
 * operation, revision, time) with the value decoded from `data` for a PUT.
 * Fills and returns `ch` itself (no second object per message).
 */
export function toChange<T>(c: CacheCore<T>, ch: Change<T>, data: Uint8Array): Change<T> {
  if (ch.operation === "PUT") {
    const v = decodeOrUndefined(c, data);
    if (v !== undefined) ch.value = v;
  }
  return ch;
}
