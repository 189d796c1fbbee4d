/**
 * The state the parts of a cache share: options, connection handles, the
 * owners of the local store (`freshness`, src/cache/freshness.ts) and of the
 * counters, the watcher and lifecycle flags. Plain fields, no behaviour
 * beyond emitting events and a few queries; each part (`read_path.ts`,
 * `writer.ts`, `apply.ts`, `sync.ts`, `sync_state.ts`, `warm_start.ts`,
 * `replay.ts`) is a set of functions over it.
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
import type { CacheEvent, CacheMode, CacheState, Change } from "../types.ts";
import { kvSubjectPrefix } from "../kv_layout.ts";
import type { Watcher } from "../watcher.ts";
import { Counters } from "./counters.ts";
import { Freshness } from "./freshness.ts";
import type { FreshnessOptions } from "./freshness_change.ts";
import { Reached } from "./reached.ts";

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

/** The shared state of one cache. */
export class CacheCore<T> {
  readonly bucket: string;
  readonly mode: CacheMode;
  readonly o: ResolvedOptions<T>;
  d: CacheDeps<T>;
  /** The local store and the rules of freshness over it (its only writer). */
  readonly freshness: Freshness;
  readonly flight = new SingleFlight<string, Slot | undefined>();
  /** Set right after construction, and on each attach, by `sync.ts` `installWatcher`. */
  watcher!: Watcher;
  readonly changes = new Broadcast<Change<T>>();
  readonly events = new Broadcast<CacheEvent>();
  /** Readers waiting for the watcher to apply a revision (rule 8, `at_least.ts`). */
  readonly reached = new Reached();
  prefix: string;
  // ---- sync state: readonly here, written only by transition() in sync_state.ts ----
  readonly state: CacheState = "starting";
  /** The facade mirrors `fresh` in a field of its own, so a hit reads one field. */
  onFresh: (fresh: boolean) => void = () => {};
  readonly since: number = Date.now();
  readonly connected: boolean = true;
  readonly disconnectedAt: number = 0;
  readonly resyncing: boolean = false;
  readonly resyncEpoch: boolean = false;
  readonly isReady: boolean = false;
  readonly closed: boolean = false;
  readonly ready: PromiseWithResolvers<void> = Promise.withResolvers<void>();
  /** A hit may be served without a check: derived from `state`, never stored. */
  get fresh(): boolean {
    return this.state === "synced";
  }
  // ----
  /** The last failure `status()` reports; written by `transition()` ("error"). */
  readonly lastError: string | undefined = undefined;
  lastResyncReason: string | undefined;
  resyncs = 0;
  /** The highest revision emitted to `changes()` readers in this incarnation of the bucket. */
  emittedRev = 0;
  lastCreated = 0;
  watching: Promise<void> | undefined;
  readonly aborter = new AbortController();
  /** Misses, fetches, loads, stale hits… (the facade counts hits itself). */
  readonly counters = new Counters();
  savedRevision = -1;
  lastInfo: StreamInfo | undefined;
  reconcileTimer: ReturnType<typeof setInterval> | undefined;
  stopStatus: (() => void) | undefined;
  snapshotTimer: ReturnType<typeof setInterval> | undefined;
  /** Whether `d` holds a real connection (false while opened from the snapshot only). */
  bound = true;
  /** Opened from the snapshot: the loop binding the connection once NATS is reachable. */
  binding: Promise<void> | undefined;

  /**
   * No I/O; `onRemove` hears the store's evictions and too-large refusals
   * (`overflow`: the first that made a replica lossy).
   */
  constructor(deps: CacheDeps<T>, onRemove: NonNullable<FreshnessOptions["onRemove"]>) {
    const o = deps.options;
    this.o = o;
    this.d = deps;
    this.bucket = o.bucket;
    this.mode = o.mode;
    this.prefix = deps.region?.writePrefix ?? kvSubjectPrefix(o.bucket);
    this.freshness = new Freshness({
      mode: o.mode,
      maxItems: o.maxItems,
      maxBytes: o.maxBytes,
      maxTtlMs: o.maxTtlMs,
      maxNegativeShare: o.maxNegativeShare,
      allowDirect: o.allowDirect,
      negativeTtlMs: o.negativeTtlMs,
      appliedRevision: () => this.watcher.lastRevision,
      onRemove,
    });
    this.ready.promise.catch(() => {});
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
  return c.mode === "replica" && c.fresh && c.freshness.holdsAll;
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
  if (!c.connected) throw new UnavailableError(`Cannot ${action}: NATS is disconnected`);
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
