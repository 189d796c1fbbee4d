/**
 * The sync loop (`SyncLoop`), owner of what keeps the cache following the
 * bucket, all `#private`: the watcher (made, placed, started and stopped only
 * here) and its data path, the connection's handles (swapped only when a cache
 * opened from its snapshot binds), the last stream info, the resync count, the
 * timers (reconciliation, snapshot), the status loop and the hub link. The
 * other parts read it through `SyncView` (src/cache/core.ts).
 *
 * Rule 5 (convergence) is decided here: each message goes to the store's
 * owner, the watcher's callbacks (caught up, resync, history gap, stream info)
 * drive the store's sweeps, reconciliation restarts a watcher whose stream
 * changed without an event, and a regional mirror is re-read before it is
 * vouched for again. Rule 7 (disconnected is not down) is src/cache/offline.ts.
 *
 * @module
 */
import type { StreamInfo } from "@nats-io/jetstream";
import type { UnavailableError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { kvSubjectPrefix } from "../kv_layout.ts";
import { Watcher } from "../watcher.ts";
import { Backoff, delay, unref } from "../async.ts";
import { describe } from "../describe.ts";
import { followConnection } from "./offline.ts";
import type { Operation } from "../types.ts";
import { type CacheCore, type CacheDeps, type CacheLink, type SyncView, toChange } from "./core.ts";
import { loadSnapshot, type SnapshotPosition, startSnapshotTimer } from "./warm_start.ts";
import { ToldLog } from "./told.ts";
import { reconcileOnce } from "./reconcile.ts";
import { StartGate } from "./start_gate.ts";
import type { ResyncRequest, StartFrom } from "../watcher_handler.ts";

/** A `bootstrap` progress event is emitted every this many applied changes. */
const BOOTSTRAP_EVENT_EVERY = 10_000;

/** The sync loop of one cache; constructed by `CacheCore` (no I/O), started by the facade. */
export class SyncLoop<T> implements SyncView<T> {
  readonly #c: CacheCore<T>;
  #link: CacheDeps<T>;
  #writePrefix: string;
  #watcher: Watcher;
  /** The current watcher's start (or attach), while and after it runs. */
  readonly #watching = new StartGate();
  /** Whether `#link` holds a real connection (false while opened from the snapshot only). */
  #bound = true;
  /** Opened from the snapshot: the loop binding the connection once NATS is reachable. */
  #binding: Promise<void> | undefined;
  #lastInfo: StreamInfo | undefined;
  /** The stream's leader as last known: a read during an election (none) keeps it. */
  #leader: string | undefined;
  #resyncs = 0;
  /** What `changes()` readers were told (never a change twice). */
  readonly #told = new ToldLog();
  /** The write time of the last change applied (the lag). */
  #lastCreated = 0;
  #lastResyncReason: string | undefined;
  #reconcileTimer: ReturnType<typeof setInterval> | undefined;
  #snapshotTimer: ReturnType<typeof setInterval> | undefined;
  #stopStatus: (() => void) | undefined;

  /** No I/O: reads the stream info taken at open and places the first watcher. */
  constructor(c: CacheCore<T>, deps: CacheDeps<T>) {
    this.#c = c;
    this.#link = deps;
    this.#writePrefix = deps.region?.writePrefix ?? kvSubjectPrefix(c.bucket);
    this.#readStreamInfo(deps.info);
    this.#watcher = this.#install({
      epoch: deps.info.created,
      streamLastSeq: deps.info.state.last_seq,
    });
  }

  get watcher(): Watcher {
    return this.#watcher;
  }
  get link(): CacheDeps<T> {
    return this.#link;
  }
  get writePrefix(): string {
    return this.#writePrefix;
  }
  get starting(): Promise<void> | undefined {
    return this.#watching.pending;
  }
  get bound(): boolean {
    return this.#bound;
  }
  get lastInfo(): StreamInfo | undefined {
    return this.#lastInfo;
  }
  get resyncs(): number {
    return this.#resyncs;
  }
  get lastResyncReason(): string | undefined {
    return this.#lastResyncReason;
  }
  get lastCreated(): number {
    return this.#lastCreated;
  }

  /** Starts the watcher and follows the connection (once, at open); resolves once it runs. */
  async start(): Promise<void> {
    const c = this.#c;
    this.#follow();
    let from: StartFrom | "resume" = c.mode === "replica"
      ? { kind: "snapshot" }
      : { kind: "seq", seq: this.#link.info.state.last_seq + 1 };
    if (from.kind === "seq") {
      this.#watcher.place({
        lastRevision: from.seq - 1,
        streamMessages: this.#link.info.state.messages,
      });
    }
    if (c.mode === "replica" && c.o.snapshot) {
      // The resumed watcher reads the stream's info while the image loads.
      const resume = () => this.#watching.set(this.#watcher.start("resume", "warm start"));
      if (await this.#loadSnapshot(this.#link.info.created, resume)) from = "resume";
      this.#snapshotTimer = startSnapshotTimer(c);
    }
    if (this.#watching.promise === undefined) {
      const why = from === "resume" ? "warm start" : c.mode === "replica" ? "bootstrap" : "start";
      this.#watching.set(this.#watcher.start(from, why));
    }
    try {
      await this.#watching.promise;
    } catch (err) {
      const e = mapNatsError(err, { action: `watch bucket "${c.bucket}"`, bucket: c.bucket });
      c.life.startFailed(e);
      throw e;
    }
  }

  /**
   * Instead of {@link start}, for a replica whose NATS is unreachable at open:
   * serves its snapshot as stale and binds once NATS answers (resuming after
   * checking the snapshot's epoch). Rejects with `cause` without a snapshot.
   */
  async startUnbound(bind: () => Promise<CacheLink>, cause: UnavailableError): Promise<void> {
    const c = this.#c;
    this.#bound = false;
    c.life.transition({ on: "open_unreachable" });
    if (!(await this.#loadSnapshot(undefined))) throw cause;
    c.life.recordError(`NATS unreachable at open: ${cause.message}`);
    c.life.transition({
      on: "snapshot_served",
      reason: "NATS unreachable at open: serving the snapshot",
    });
    c.emit({ type: "disconnected", at: c.life.disconnectedAt });
    this.#snapshotTimer = startSnapshotTimer(c);
    this.#binding = this.#bindLoop(bind);
  }

  /** The first step of closing: the timers and the hub link stop. */
  stopTimers(): void {
    if (this.#snapshotTimer !== undefined) clearInterval(this.#snapshotTimer);
    if (this.#reconcileTimer !== undefined) clearInterval(this.#reconcileTimer);
    this.#link.region?.link.close();
  }

  /** The last step of closing: the status loop stops; a bind in flight and the watcher settle. */
  async stop(settle: (p: Promise<unknown>) => Promise<unknown>): Promise<void> {
    this.#stopStatus?.();
    if (this.#binding) await settle(this.#binding);
    await settle(this.#watcher.close());
  }

  /** Makes the cache's watcher, placed at `at` (see `Watcher.place`). */
  #install(at: Parameters<Watcher["place"]>[0]): Watcher {
    const watcher = this.#newWatcher();
    watcher.place(at);
    this.#watcher = watcher;
    return watcher;
  }

  #newWatcher(): Watcher {
    const c = this.#c;
    return new Watcher({
      nc: this.#link.nc,
      jsm: this.#link.jsm,
      bucket: c.bucket,
      filter: c.o.keys,
      heartbeatMs: c.o.heartbeatMs,
      inboxPrefix: this.#link.inboxPrefix,
      handler: {
        onChange: (key, op, rev, created, data, _pending, ttlMs) => {
          this.#onChange(key, op, rev, created, data, ttlMs);
          // The mirror delivers while cut off: it hears the hub again.
          this.#link.region?.link.nudge();
        },
        onCaughtUp: (rev) => this.#onCaughtUp(rev),
        onResync: (req) => this.#onResync(req.reason, req),
        onHistoryGap: (first) => {
          // Resume from the stream's first sequence instead of re-reading the
          // bucket: whatever left the stream below it was either replaced by a
          // later change (delivered now) or is gone from the bucket, and
          // `onCaughtUp` drops those entries.
          c.freshness.historyGap(first);
          return true;
        },
        onRestart: (reason) => {
          c.life.transition({ on: "restarting", reason });
        },
        onStarted: ({ from, pending, reason }) => {
          if (from.kind === "snapshot") c.freshness.expect(pending); // room for the whole bucket
          if (reason !== "bootstrap" && reason !== "start") {
            c.emit({
              type: "watcher_restart",
              at: Date.now(),
              reason,
              fromRevision: from.kind === "seq" ? from.seq : 0,
            });
          }
        },
        onError: (message) => {
          c.life.recordError(message);
          c.emit({ type: "error", at: Date.now(), message });
        },
        onStreamInfo: (info) => this.#readStreamInfo(info),
      },
    });
  }

  /** Loads the warm-start snapshot, placing the watcher at its position (then `resume`); false if refused. */
  async #loadSnapshot(epoch: string | undefined, resume?: () => void): Promise<boolean> {
    const from = { storage: this.#c.o.snapshot!.storage, epoch };
    const verified = (at: SnapshotPosition) => {
      this.#watcher.place(at);
      resume?.();
    };
    return (await loadSnapshot(this.#c, from, { verified })) !== undefined;
  }

  /** Retries `bind` with jittered backoff until it succeeds and the watcher runs, or close. */
  async #bindLoop(bind: () => Promise<CacheLink>): Promise<void> {
    const c = this.#c;
    const backoff = new Backoff({ firstMs: 250, maxMs: 5_000, jitter: "half" });
    while (!c.life.closed) {
      let link: CacheLink | undefined;
      try {
        link = await bind();
        if (!c.life.closed) {
          await this.#attach(link);
          // A close that stopped waiting for this attach (its deadline) has
          // already passed the connection by: close a connection we own here.
          if (c.life.closed && this.#link.ownsConnection) await link.nc.close().catch(() => {});
          return;
        }
      } catch (err) {
        c.life.recordError(`NATS unreachable since open: ${describe(err)}`);
      }
      if (link && this.#link.ownsConnection) await link.nc.close().catch(() => {});
      await delay(backoff.next(), { signal: c.aborter.signal });
    }
  }

  /** Takes the connection of a cache opened from its snapshot and resumes from it. */
  async #attach(link: CacheLink): Promise<void> {
    const c = this.#c;
    const { epoch, lastRevision } = this.#watcher;
    const unbound = this.#link;
    this.#link = { ...this.#link, ...link };
    // The snapshot's epoch: a recreated bucket makes the watcher resync (the
    // snapshot is thrown away) instead of merging revisions that do not compare.
    const watcher = this.#install({
      epoch,
      lastRevision,
      streamLastSeq: link.info.state.last_seq,
    });
    c.life.transition({ on: "attaching" });
    // What the loader said while NATS was unreachable is not checked against
    // KV: drop it now, as on a reconnect, so that the next read asks KV and a
    // synced cache never serves it as a fresh hit (rule 5).
    c.freshness.reconnected();
    try {
      await this.#watching.set(watcher.start("resume", "warm start (NATS reachable again)"));
    } catch (err) {
      this.#watching.clear();
      c.life.transition({ on: "attach_failed" });
      this.#link = unbound;
      throw err;
    }
    this.#bound = true;
    this.#writePrefix = link.region?.writePrefix ?? this.#writePrefix;
    c.life.transition({ on: "attached" });
    c.emit({ type: "connected", at: Date.now() });
    this.#follow();
  }

  /** Follows the connection's status, the hub link and reconciliation (at start, or once bound). */
  #follow(): void {
    this.#stopStatus = followConnection(this.#c, this.#link.nc, {
      disconnected: () => this.#watcher.disconnected(),
      reconnected: () => this.#watcher.reconnected(),
    });
    this.#link.region?.link.start((inSync) => this.#onHubLink(inSync), () => this.#mirrorRead());
    if (this.#c.o.reconcileMs > 0) this.#startReconcile();
  }

  /**
   * A data message: counted, handed to the store's owner (`Freshness.apply`: rules 1–3, 6),
   * told to `changes()` readers, and bookmarked reads woken.
   */
  #onChange(
    key: string,
    op: Operation,
    rev: number,
    created: number,
    data: Uint8Array,
    ttlMs = 0,
  ): void {
    const c = this.#c;
    c.counters.add("applied");
    this.#lastCreated = created;
    if (
      !this.#watcher.caughtUp && c.counters.add("bootstrapApplied") % BOOTSTRAP_EVENT_EVERY === 0
    ) {
      c.emit({
        type: "bootstrap",
        at: Date.now(),
        applied: c.counters.get("bootstrapApplied"),
        pending: this.#watcher.pending,
      });
    }
    const stored = c.freshness.apply({ source: "watch", key, op, rev, created, raw: data, ttlMs });
    // changes(): only what is news to its readers (src/cache/told.ts).
    if (this.#told.news(key, rev, created, op !== "PUT", stored, c.changes.active)) {
      c.changes.emit(toChange(c, { key, operation: op, revision: rev, createdMs: created }, data));
    }
    // Rule 8: bookmarked reads waiting for this revision may go on.
    c.reached.advance(rev);
  }

  #onCaughtUp(rev: number): void {
    const c = this.#c;
    this.#told.caughtUp(rev);
    c.freshness.caughtUp({ resynced: c.life.resyncing });
    c.counters.resetBootstrap();
    c.life.transition({
      on: "caught_up",
      revision: rev,
      hubInSync: this.#link.region?.link.inSync !== false,
    });
  }

  #onResync(reason: string, { epochChanged, recreated }: ResyncRequest): StartFrom {
    const c = this.#c;
    this.#resyncs++;
    this.#lastResyncReason = reason;
    c.life.transition({ on: "resync", reason, epochChanged });
    c.emit({ type: "resync", at: Date.now(), reason });
    const last = this.#lastInfo?.state.last_seq ?? 0;
    // Before the store is emptied: what it held is what readers knew.
    if (epochChanged) {
      this.#told.rebuild(
        recreated === true,
        c.mode === "replica" ? c.freshness.view.entries() : [],
      );
    }
    c.freshness.resync({ epochChanged, nextRevision: last + 1 });
    if (c.mode === "replica") return { kind: "snapshot" };
    return { kind: "seq", seq: last + 1 };
  }

  /** A regional mirror lost or regained the hub: fresh only while it is in sync. */
  #onHubLink(inSync: boolean): void {
    const c = this.#c;
    const why = this.#link.region?.link.diagnosis();
    if (!inSync && why !== undefined) {
      c.life.recordError(`Cannot vouch for the regional mirror of "${c.bucket}": ${why}`);
      c.emit({ type: "error", at: Date.now(), message: c.life.lastError! });
    }
    if (inSync && this.#bound && this.#watching.promise !== undefined && !c.life.closed) {
      // A mirror copying its backlog after a cut does not always store it in
      // order (on nats-server 2.9.10 a consumer got a newer message first and
      // older ones were stored below it afterwards, docs/nats-versions.md): the
      // watcher may have passed sequences filled in later. Re-read the mirror
      // before vouching for it again; until then the cache is not synced. A
      // lazy edge's resync drops what it holds (its negative entries too, which
      // a revision the watcher passed would never correct): the next reads
      // fetch from the mirror, which holds everything now.
      void this.#watcher.resync("the regional mirror reaches the hub again: re-reading it");
    }
    c.life.transition({
      on: "hub",
      inSync,
      watcherLive: this.#watcher.caughtUp && !this.#watcher.restarting,
    });
  }

  /**
   * A read of the regional mirror's state begins: once it answers, a mirror
   * that holds messages the watcher passed before they were stored (a backlog
   * copied out of order, docs/nats-versions.md) is re-read. Only a watcher
   * over the whole bucket can tell (with a key filter it sees only some).
   */
  #mirrorRead(): (info: StreamInfo) => void {
    const c = this.#c;
    const watcher = this.#watcher;
    if (c.o.keys !== ">") return () => {};
    const mark = watcher.tally.mark(watcher.lastRevision);
    return (info) => {
      const unseen = watcher.tally.unseen(mark, info.state);
      if (unseen === 0 || watcher !== this.#watcher || c.life.closed || !this.#bound) return;
      void watcher.resync(
        `the regional mirror holds ${unseen} message(s) stored below its watcher's position: re-reading it`,
      );
    };
  }

  #readStreamInfo(info: StreamInfo): void {
    const c = this.#c;
    this.#lastInfo = info;
    this.#leader = info.cluster?.leader || this.#leader;
    // Entries older than the stream's first message are gone from the bucket:
    // swept now if the watcher is caught up (and the cache ready), else at its
    // catch-up.
    c.freshness.streamInfo({
      firstSeq: info.state.first_seq,
      bucketTtlMs: Math.floor((info.config.max_age ?? 0) / 1e6),
      settled: this.#watcher?.caughtUp === true && !this.#watcher.restarting,
      ready: c.life.isReady,
    });
  }

  /**
   * Periodic reconciliation: a stream purge, a recreated bucket, a lost tail
   * or a new leader produce no watcher event, so the stream's state is
   * compared now and then (src/cache/reconcile.ts).
   */
  #startReconcile(): void {
    const c = this.#c;
    this.#reconcileTimer = setInterval(() => {
      const w = this.#watcher;
      if (!c.life.fresh || w.restarting) return;
      void reconcileOnce({
        bucket: c.bucket,
        jsm: this.#link.jsm,
        closed: () => c.life.closed,
        watcher: w,
        leader: () => this.#leader,
        read: (info) => this.#readStreamInfo(info),
      });
    }, c.o.reconcileMs);
    unref(this.#reconcileTimer);
  }
}
