/**
 * The watcher: an ordered push consumer over a KV stream, built directly on
 * JetStream so that its heartbeats, flow control and gaps are visible (nats.js
 * `kv.watch()` hides them and notices a dead consumer only after ~60 s).
 *
 * It delivers every change in stream order to a synchronous handler (no await
 * per message), detects consumer-sequence gaps and missed heartbeats, and on
 * every restart checks the stream's epoch (creation time, sequence range)
 * before it resumes from the last applied revision — or asks for a full resync.
 *
 * @module
 */
import type { Msg, Subscription } from "@nats-io/nats-core";
import { nuid } from "@nats-io/nats-core";
import type { Operation } from "./types.ts";
import { kvStreamName, kvSubjectPrefix, operationOf, ttlOfHeader } from "./kv_layout.ts";
import { describe } from "./describe.ts";
import { isPermissionDenied } from "./nats_errors.ts";
import { unref } from "./async.ts";
import { inboxPrefixOf } from "./connect.ts";
import { AppliedMark, judgeResume, type SeenMessage } from "./resume_check.ts";
import { purgeMaySkip } from "./purge_skip.ts";
import type { StartFrom, WatcherOptions, WatcherPlacement } from "./watcher_handler.ts";
import { WatcherConsumers } from "./watcher_consumers.ts";
import { RestartPolicy, type RestartStage } from "./watcher_restart.ts";
import { consumerConfig, planStart } from "./watcher_start.ts";
import { MirrorTally } from "./mirror_tally.ts";
import { type Ask, askIn, caughtUpIn, WatcherLifecycle } from "./watcher_phase.ts";
import { AckSubject } from "./ack_subject.ts";

const DEFAULT_CONTROL_TIMEOUT_MS = 15_000;

/**
 * Keeps one consumer alive over the bucket and feeds the handler.
 *
 * @example
 * ```ts ignore
 * const w = new Watcher({ nc, jsm, bucket: "users", filter: ">", heartbeatMs: 5000, handler });
 * await w.start({ kind: "snapshot" }, "bootstrap");
 * ```
 */
export class Watcher {
  readonly #o: WatcherOptions;
  readonly #prefix: string;
  readonly #stream: string;
  #sub: Subscription | undefined;
  #consumer = "";
  #dseq = 0;
  #lastRev = 0;
  /** What was delivered at {@link lastRevision}, when this watcher delivered it. */
  readonly #applied = new AppliedMark();
  /** Set when the current consumer starts at the applied revision: its first message is judged. */
  #verify: SeenMessage | undefined;
  /** A subscription whose deliveries must no longer be applied (it saw the replicas disagree). */
  #rejected: Subscription | undefined;
  #pending = 0;
  #snapshotTarget = 0;
  #streamLastSeq = 0;
  #lastActivityMs = Date.now();
  #epoch: string | undefined;
  #watchdog: ReturnType<typeof setInterval> | undefined;
  /** The lifecycle: one phase with its data, and the connection beside it (src/watcher_phase.ts). */
  readonly #phase = new WatcherLifecycle({
    restarting: (reason) => this.#o.handler.onRestart(reason),
    loop: (reason) => this.#restartLoop(reason),
  });
  readonly #policy = new RestartPolicy();
  readonly #consumers: WatcherConsumers;
  readonly #ack = new AckSubject();
  /** Its deliveries against the stream's message count: a mirror's late fills (src/mirror_tally.ts). */
  readonly tally: MirrorTally = new MirrorTally();

  /** Builds an idle watcher; no I/O until {@link start}. */
  constructor(options: WatcherOptions) {
    this.#o = options;
    this.#prefix = kvSubjectPrefix(options.bucket);
    this.#stream = kvStreamName(options.bucket);
    this.#consumers = new WatcherConsumers({
      nc: options.nc,
      jsm: options.jsm,
      stream: this.#stream,
    });
  }

  /** Highest revision delivered to the handler. */
  get lastRevision(): number {
    return this.#lastRev;
  }

  /**
   * Where this watcher stands before {@link start}: the bucket's `epoch`, the
   * last applied revision (a warm start, a live-only or replay start), the
   * stream's last sequence (the bootstrap's target) and message count (see
   * {@link tally}). Fields left out are kept. Throws once started.
   */
  place(at: WatcherPlacement): void {
    if (this.#phase.now.kind !== "idle") {
      throw new Error("Watcher.place() after start(): the watcher owns its position now");
    }
    if ("epoch" in at) this.#epoch = at.epoch;
    if (at.lastRevision !== undefined) {
      this.#lastRev = at.lastRevision;
      // Nothing is known of what was applied there: a resume starts after it.
      this.#applied.forget();
    }
    if (at.streamLastSeq !== undefined) this.#streamLastSeq = at.streamLastSeq;
    if (at.streamMessages !== undefined) this.tally.readBefore(at.streamMessages);
  }

  /** The message delivered at {@link lastRevision}, if this watcher delivered it (a revision check's base). */
  get applied(): SeenMessage | undefined {
    return this.#applied.at(this.#lastRev);
  }

  /**
   * Replaces the consumer for `restartReason` and rebuilds from scratch, like
   * a consumer whose first message disagreed: the stream holds another message
   * than {@link applied} at its revision (`reason`; reconciliation's revision check).
   */
  disagrees(reason: string, restartReason: string): Promise<void> {
    return this.#phase.restart(restartReason, { kind: "rebuild", reason });
  }

  /** Messages the server reported as still to deliver at the last delivery. */
  get pending(): number {
    return this.#pending;
  }

  /** Whether the watcher has delivered everything it knew of. */
  get caughtUp(): boolean {
    return caughtUpIn(this.#phase.now);
  }

  /** Whether a restart is in progress. */
  get restarting(): boolean {
    return this.#phase.now.kind === "restarting";
  }

  /** The epoch known for the bucket (its stream's creation time). */
  get epoch(): string | undefined {
    return this.#epoch;
  }

  /**
   * Starts the first consumer; rejects if it cannot be created. `"resume"`
   * continues from {@link lastRevision} after checking the epoch (warm start),
   * or asks the handler for a resync if it cannot.
   */
  async start(from: StartFrom | "resume", reason: string): Promise<void> {
    this.#phase.on({ on: "start" });
    try {
      await this.#open(from === "resume" ? await this.#decideStart(reason) : from, { reason });
    } catch (err) {
      this.#phase.on({ on: "start_failed" });
      throw err;
    }
    if (this.#closed()) return; // closed meanwhile: no watchdog
    this.#watchdog = setInterval(() => this.#checkLiveness(), this.#o.heartbeatMs);
    unref(this.#watchdog);
  }

  /** Tells the watcher the connection went down (it stops judging liveness). */
  disconnected(): void {
    this.#phase.connected("down");
    // A request in flight now may be lost by the client: give up on it at once.
    this.#policy.abandon(new Error("disconnected"));
  }

  /** Tells the watcher the connection is back: it re-checks the epoch and resumes. */
  reconnected(): void {
    this.#phase.connected("up");
    this.restart("reconnected");
  }

  /**
   * Replaces the consumer: checks the stream's epoch and range, then resumes
   * from the last revision or asks the handler for a resync. Retries with
   * jittered backoff until it succeeds or the watcher is closed.
   */
  restart(reason: string): Promise<void> {
    return this.#phase.restart(reason);
  }

  /**
   * Replaces the consumer like {@link restart}, but asks the handler for a
   * full resync whatever the stream's range says: for a stream whose
   * messages may have landed below the position the watcher had passed (a
   * regional mirror copying its backlog after a WAN cut).
   */
  resync(reason: string): Promise<void> {
    return this.#phase.restart(reason, { kind: "reread", reason });
  }

  /** Stops delivery and deletes the consumer (best effort). */
  async close(): Promise<void> {
    if (!this.#phase.on({ on: "close" })) return; // closed already
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#policy.endPause();
    this.#dropConsumer();
    await this.#consumers.settled();
  }

  async #restartLoop(reason: string): Promise<void> {
    while (this.#phase.now.kind !== "closed") {
      // While disconnected there is nothing to do: reconnected() restarts us.
      if (this.#phase.connection === "down") return;
      // The old consumer is deleted in the background: while the stream has no
      // leader the delete is not answered either, and it must not hold us up.
      this.#dropConsumer();
      let stage: RestartStage = "stream info";
      try {
        const max = this.#o.controlTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
        const probe = await this.#consumers.manager(this.#policy.probeDeadlineMs(max));
        const createDeadlineMs = this.#policy.createDeadlineMs(max);
        await this.#policy.attempt(async () => {
          const from = await this.#decideStart(reason, probe);
          stage = "consumer create";
          await this.#open(from, { reason, createDeadlineMs });
        });
        this.#policy.succeeded();
        return;
      } catch (err) {
        if (this.#closed()) return; // close() dropped the consumer
        this.#o.handler.onError(`watcher restart failed (${reason}, ${stage}): ${describe(err)}`);
        await this.#policy.pause(this.#policy.failed(stage, err));
      }
    }
  }

  /** Reads the stream and decides: resume from the last revision, or resync. */
  async #decideStart(reason: string, jsm = this.#o.jsm): Promise<StartFrom> {
    const info = await jsm.streams.info(this.#stream);
    const handler = this.#o.handler;
    handler.onStreamInfo(info);
    this.#streamLastSeq = info.state.last_seq;
    this.tally.readBefore(info.state.messages);
    const plan = planStart(info, {
      epoch: this.#epoch,
      lastRev: this.#lastRev,
      appliedSeq: this.#applied.at(this.#lastRev)?.seq ?? 0,
      ask: askIn(this.#phase.now),
    }, { onHistoryGap: (first) => handler.onHistoryGap?.(first) ?? false });
    // What was asked is taken up once; a failed attempt after this point retries from sequence 1.
    this.#phase.on({ on: "ask_taken" });
    this.#epoch = info.created;
    if (plan.kind === "resume") return plan.from;
    this.#applied.forget();
    if (plan.request.epochChanged || plan.reread) this.#lastRev = 0;
    const request = plan.request;
    const from = handler.onResync({ ...request, reason: `${request.reason}; ${reason}` });
    if (from.kind === "seq") this.#lastRev = from.seq - 1;
    return from;
  }

  /** Opens a consumer at `from`, its create given `how.createDeadlineMs` (or the control timeout). */
  async #open(from: StartFrom, how: { reason: string; createDeadlineMs?: number }): Promise<void> {
    const { reason, createDeadlineMs } = how;
    const deadlineMs = createDeadlineMs ?? this.#o.controlTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
    // Closed while the stream's info was read: no consumer nobody would delete.
    if (this.#closed()) return;
    const { nc, filter, heartbeatMs } = this.#o;
    const name = `kvedge_${nuid.next()}`;
    const inbox = `${this.#o.inboxPrefix ?? inboxPrefixOf(nc) ?? "_INBOX"}.${name}`;
    this.#dseq = 0;
    this.#phase.on({ on: "opening" });
    this.#rejected = undefined;
    this.#verify = from.kind === "seq" ? this.#applied.at(from.seq) : undefined;
    // With no key filter every message of the stream is ours, so the stream's
    // last sequence at the (re)start is an exact target, set before the
    // consumer exists: its first deliveries may overtake the create response
    // (a recreated bucket's old, lower target would end a resync early).
    // Filters rely on idle heartbeats: nats-server 2.9 may report num_pending
    // one too high for a filtered consumer, and then it never reaches 0.
    this.#snapshotTarget = filter === ">" ? this.#streamLastSeq : 0;
    const sub = nc.subscribe(inbox, { callback: (err, msg) => this.#onMsg(sub, err, msg) });
    const config = consumerConfig({
      name,
      inbox,
      filterSubject: this.#prefix + filter,
      heartbeatMs,
      from,
    });
    this.#sub = sub;
    this.#consumer = name;
    this.tally.opened(from.kind === "seq");
    let pending: number;
    try {
      pending = (await this.#consumers.create(sub, config, { deadlineMs })).num_pending;
      if (this.#sub !== sub) throw new Error("consumer create superseded by a newer restart");
    } catch (err) {
      sub.unsubscribe();
      // The name stays (a create that timed out may have made the consumer:
      // the next restart deletes it); a newer restart's subscription stays.
      if (this.#sub === sub) this.#sub = undefined;
      throw err;
    }
    this.#lastActivityMs = Date.now();
    // Deliveries may have overtaken the create response: theirs is newer.
    if (this.#dseq === 0) this.#pending = pending;
    this.#o.handler.onStarted({ from, pending, reason });
    if (pending === 0 || (this.#snapshotTarget > 0 && this.#lastRev >= this.#snapshotTarget)) {
      this.#markCaughtUp();
    }
  }

  #markCaughtUp(): void {
    // Refused while a restart is queued behind this consumer (src/watcher_phase.ts).
    if (this.#phase.on({ on: "caught_up" })) this.#o.handler.onCaughtUp(this.#lastRev);
  }

  /** Whether close() was called (read anew: an await may have passed since the last look). */
  #closed(): boolean {
    return this.#phase.now.kind === "closed";
  }

  /** Stops delivery at once and deletes the consumer in the background (see {@link close}). */
  #dropConsumer(): void {
    const sub = this.#sub;
    const name = this.#consumer;
    this.#sub = undefined;
    this.#consumer = "";
    if (sub) sub.unsubscribe();
    if (name && this.#phase.connection === "up") this.#consumers.drop(name);
  }

  #checkLiveness(): void {
    const kind = this.#phase.now.kind;
    if (kind === "closed" || kind === "restarting" || this.#phase.connection === "down") return;
    const silentMs = Date.now() - this.#lastActivityMs;
    if (silentMs > this.#o.heartbeatMs * 2.5) {
      this.restart(`no message or heartbeat for ${silentMs} ms`);
    }
  }

  /** The subscription failed: a refused delivery subject fails the create; anything else restarts. */
  #onSubscriptionError(sub: Subscription, err: Error): void {
    if (isPermissionDenied(err)) {
      // The create waiting on this subscription fails with this error, and a
      // restart (if none is waiting) retries it with backoff.
      const error = this.#consumers.refuse(sub, err);
      this.#o.handler.onError(`watcher subscription refused: ${error.message}`);
      if (!this.#consumers.creating(sub)) this.restart("subscription refused");
      return;
    }
    this.#o.handler.onError(`watcher subscription failed: ${describe(err)}`);
    this.restart("subscription error");
  }

  #onMsg(sub: Subscription, err: Error | null, msg: Msg): void {
    // A message for a consumer we already dropped, or one that disagreed.
    if (sub !== this.#sub || sub === this.#rejected) return;
    if (err) {
      this.#onSubscriptionError(sub, err);
      return;
    }
    this.#lastActivityMs = Date.now();
    const h = msg.headers;
    if (h !== undefined && h.code === 100) {
      this.#onStatus(msg);
      return;
    }
    // $JS.ACK.[<domain>.<account hash>.]<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>…
    const ack = this.#ack;
    if (!ack.readReply(msg)) return;
    const sseq = ack.streamSeq;
    const dseq = ack.consumerSeq;
    const pending = ack.pending;
    if (dseq !== this.#dseq + 1) {
      this.restart(`consumer sequence gap (expected ${this.#dseq + 1}, got ${dseq})`);
      return;
    }
    this.#dseq = dseq;
    this.#pending = pending;
    // The server's own markers (TTL expiry, purge/remove with markers) read as deletes.
    const op: Operation = operationOf(h);
    const key = msg.subject.substring(this.#prefix.length);
    const verify = this.#verify;
    if (verify !== undefined) {
      this.#verify = undefined;
      // "same" is dropped below as already applied; "unknown" goes on as usual.
      if (this.#diverges(sub, { applied: verify, first: { seq: sseq, key, op } })) return;
    }
    if (op === "PURGE" && this.#purgeSkipped(sub, sseq)) return;
    if (sseq > this.#lastRev) {
      this.#lastRev = sseq;
      this.#applied.note(sseq, key, op);
      this.tally.delivered();
      const ttlMs = op === "PUT" ? ttlOfHeader(h) : 0;
      this.#o.handler.onChange(key, op, sseq, ack.timestampMs, msg.data, pending, ttlMs);
    }
    if (pending === 0 || (this.#snapshotTarget > 0 && sseq >= this.#snapshotTarget)) {
      this.#markCaughtUp();
    }
  }

  /**
   * Judges a resumed consumer's first message against the revision applied
   * last; true when they disagree, and then nothing from this consumer may be
   * applied (its revisions do not compare with what the edge holds).
   */
  #diverges(sub: Subscription, seen: { applied: SeenMessage; first: SeenMessage }): boolean {
    const { applied, first } = seen;
    const verdict = judgeResume(applied, first);
    if (verdict.kind !== "diverged") return false;
    return this.#abandon(sub, {
      reason: `the consumer's first message disagrees with revision ${applied.seq}`,
      ask: { kind: "rebuild", reason: verdict.reason },
    });
  }

  /** Replaces the consumer if purge marker `seq` may have made it skip revisions (src/purge_skip.ts). */
  #purgeSkipped(sub: Subscription, seq: number): boolean {
    const at = { seq, lastRev: this.#lastRev, streamLastSeq: this.#streamLastSeq };
    return purgeMaySkip(at, this.#o.nc) &&
      this.#abandon(sub, {
        reason: `purge marker ${seq} jumps over revisions after ${at.lastRev}`,
      });
  }

  /** Applies nothing more from `sub` and replaces the consumer for `why.reason` (asked for `why.ask`). */
  #abandon(sub: Subscription, why: { reason: string; ask?: Ask }): true {
    this.#rejected = sub;
    sub.unsubscribe();
    this.#phase.restart(why.reason, why.ask);
    return true;
  }

  #onStatus(msg: Msg): void {
    const h = msg.headers!;
    if (msg.reply) {
      msg.respond(); // flow control request
      return;
    }
    const stalled = h.get("Nats-Consumer-Stalled");
    if (stalled) this.#o.nc.publish(stalled);
    const lastConsumer = Number(h.get("Nats-Last-Consumer") || 0);
    if (lastConsumer > this.#dseq) {
      this.restart(`heartbeat reports consumer sequence ${lastConsumer}, have ${this.#dseq}`);
    } else if (!stalled) {
      // An idle consumer that has delivered nothing beyond what we received has
      // nothing left for us, whatever its pending count said.
      this.#pending = 0;
      this.#markCaughtUp();
    }
  }
}
