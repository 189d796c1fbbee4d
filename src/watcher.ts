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
import type { Msg, NatsConnection, Subscription } from "@nats-io/nats-core";
import { nanos, nuid } from "@nats-io/nats-core";
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  DeliverPolicy,
  type JetStreamManager,
  jetstreamManager,
  ReplayPolicy,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { Operation } from "./types.ts";
import { kvStreamName, kvSubjectPrefix, operationOf, ttlOfHeader } from "./kv_layout.ts";
import { describe } from "./describe.ts";
import { isPermissionDenied, isUnanswered } from "./nats_errors.ts";
import { Backoff, delay, settleWithin, unref } from "./async.ts";
import { inboxPrefixOf } from "./connect.ts";
import { PermissionError } from "./errors.ts";
import { judgeResume, type SeenMessage } from "./resume_check.ts";

/** How the next consumer starts. */
export type StartFrom =
  /** The last value of every key (bootstrap or resync of a replica). */
  | { kind: "snapshot" }
  /** Every change from this revision on (resume, or lazy mode from "now"). */
  | { kind: "seq"; seq: number };

/** Why the watcher wants the local state thrown away or rebuilt. */
export interface ResyncRequest {
  /** Human-readable reason. */
  reason: string;
  /** The bucket was recreated or lost its tail: revisions are not comparable, clear at once. */
  epochChanged: boolean;
}

/** What the watcher calls; every callback is synchronous. */
export interface WatcherHandler {
  /** One change, in stream order. `data` is only valid during the call. */
  onChange(
    key: string,
    op: Operation,
    rev: number,
    created: number,
    data: Uint8Array,
    pending: number,
    /** The message's own TTL (`Nats-TTL`), ms; 0 for none. */
    ttlMs: number,
  ): void;
  /** Nothing left to deliver (initial snapshot or catch-up done). */
  onCaughtUp(rev: number): void;
  /** The local state must be rebuilt; called before the new consumer starts. Returns how to start. */
  onResync(request: ResyncRequest): StartFrom;
  /**
   * The stream no longer holds the revisions after the last applied one: its
   * first sequence is `firstSeq`. Return true to resume from there anyway — the
   * handler then drops, once caught up, every entry older than `firstSeq`
   * that no later change replaced (its key's history is gone from the
   * bucket) — or false (or leave it out) to resync.
   */
  onHistoryGap?(firstSeq: number): boolean;
  /** A restart begins (before the stream is checked); `reason` says why. */
  onRestart(reason: string): void;
  /** The consumer was (re)started. */
  onStarted(info: { from: StartFrom; pending: number; reason: string }): void;
  /** A failure worth reporting (the watcher keeps retrying). */
  onError(message: string): void;
  /** The stream's settings as read at the last (re)start. */
  onStreamInfo(info: StreamInfo): void;
}

/** Options of {@link Watcher}. */
export interface WatcherOptions {
  /** Shared with the cache; the watcher never closes it. */
  nc: NatsConnection;
  /** A manager whose requests time out reasonably. */
  jsm: JetStreamManager;
  /** The bucket (stream `KV_<bucket>`). */
  bucket: string;
  /** Key filter (`>` for all). */
  filter: string;
  /** Idle heartbeat of the consumer, ms. */
  heartbeatMs: number;
  /** Callbacks. */
  handler: WatcherHandler;
  /**
   * Prefix of the delivery subject. Default: the connection's own
   * `inboxPrefix` (nats.js keeps it on the connection), else `_INBOX`.
   */
  inboxPrefix?: string;
  /** Longest deadline of a restart's control calls (stream info, consumer create), ms. Default 15000. */
  controlTimeoutMs?: number;
}

/** How long deleting a replaced consumer may hold up a close, ms. */
const DROP_DEADLINE_MS = 1_000;
/**
 * Deadline of a restart's stream-info probe, ms. A stream without a leader
 * (an election after a server died) answers nothing at all, so a request sent
 * then is lost: short deadlines and quick retries mean the first request sent
 * after the new leader can serve is answered at once.
 */
const PROBE_TIMEOUT_MS = 1_000;
/** Probes that may time out before the deadline starts to grow (a slow server, not an election). */
const PROBE_PATIENCE = 8;
/**
 * Deadline of a restart's consumer create, ms; doubles on each failure (a huge
 * bucket is slow to create a consumer on). The create goes through the meta
 * leader, which may still be electing when the stream's leader already answers.
 * One request per attempt. Re-sending an unanswered create every second (it
 * is idempotent) was tried: recovery after a cluster-wide pause went from up
 * to 9.4 s to 4–8 s, but every edge of a restart storm would multiply its
 * creates while the meta layer is slowest, and the 1 000-edge bench was too
 * noisy on 2 cores to show that it does no harm.
 */
const CREATE_TIMEOUT_MS = 3_000;
/** Pause between attempts while the stream is leaderless, ms (jittered from half to all of it). */
const LEADERLESS_PAUSE_MS = 250;
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
  /**
   * Key and operation this watcher delivered at {@link lastRevision}, if it
   * delivered it (`#appliedSeq` equals it then; 0: not known). Plain fields,
   * not an object: they change on every message.
   */
  #appliedSeq = 0;
  #appliedKey = "";
  #appliedOp: Operation = "PUT";
  /** Set when the current consumer starts at the applied revision: its first message is judged. */
  #verify: SeenMessage | undefined;
  /** Why the replicas were found to disagree; the next start resyncs. */
  #diverged = "";
  /** A subscription whose deliveries must no longer be applied (it saw the replicas disagree). */
  #rejected: Subscription | undefined;
  #pending = 0;
  #caughtUp = false;
  #snapshotTarget = 0;
  #streamLastSeq = 0;
  /** Reason of a resync asked for by {@link resync}, until a restart takes it up. */
  #resyncNext = "";
  #lastActivityMs = Date.now();
  #epoch: string | undefined;
  #restarting: Promise<void> | undefined;
  #restartAgain = "";
  #watchdog: ReturnType<typeof setInterval> | undefined;
  #closed = false;
  #connected = true;
  /** Pauses between failed restarts (not leaderless ones): 100 ms doubling to 5 s, jittered. */
  #backoff = new Backoff({ firstMs: 100, maxMs: 5_000, jitter: "half" });
  /** Consecutive failed restart attempts (sets the deadlines of the next one). */
  #failures = 0;
  #createFailures = 0;
  /** The subscription the server refused (permissions violation), and why. */
  #refused: { sub: Subscription; error: PermissionError } | undefined;
  /** The subscription whose consumer is being created. */
  #creating: Subscription | undefined;
  readonly #drops = new Set<Promise<unknown>>();

  /** Builds an idle watcher; no I/O until {@link start}. */
  constructor(options: WatcherOptions) {
    this.#o = options;
    this.#prefix = kvSubjectPrefix(options.bucket);
    this.#stream = kvStreamName(options.bucket);
  }

  /** Highest revision delivered to the handler. */
  get lastRevision(): number {
    return this.#lastRev;
  }

  /**
   * Where this watcher stands before {@link start}, as its owner knows it:
   * the bucket's `epoch` (its stream's creation time), the last applied
   * revision (`lastRevision`: a warm start from a snapshot, a live-only or
   * replay start) and the stream's last sequence read before the first start
   * (`streamLastSeq`: the bootstrap's target). Fields left out are kept.
   * Throws once started: from then on only the watcher moves its position.
   */
  place(at: { epoch?: string; lastRevision?: number; streamLastSeq?: number }): void {
    if (this.#sub !== undefined || this.#restarting !== undefined || this.#closed) {
      throw new Error("Watcher.place() after start(): the watcher owns its position now");
    }
    if ("epoch" in at) this.#epoch = at.epoch;
    if (at.lastRevision !== undefined) {
      this.#lastRev = at.lastRevision;
      // Nothing is known of what was applied there: a resume starts after it.
      this.#appliedSeq = 0;
    }
    if (at.streamLastSeq !== undefined) this.#streamLastSeq = at.streamLastSeq;
  }

  /** Messages the server reported as still to deliver at the last delivery. */
  get pending(): number {
    return this.#pending;
  }

  /** Whether the watcher has delivered everything it knew of. */
  get caughtUp(): boolean {
    return this.#caughtUp;
  }

  /** Whether a restart is in progress. */
  get restarting(): boolean {
    return this.#restarting !== undefined;
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
    await this.#open(from === "resume" ? await this.#decideStart(reason) : from, reason);
    this.#watchdog = setInterval(() => this.#checkLiveness(), this.#o.heartbeatMs);
    unref(this.#watchdog);
  }

  /** Tells the watcher the connection went down (it stops judging liveness). */
  disconnected(): void {
    this.#connected = false;
    // A request in flight now may be lost by the client: give up on it at once.
    this.#abandonAttempt?.(new Error("disconnected"));
  }

  /** Tells the watcher the connection is back: it re-checks the epoch and resumes. */
  reconnected(): void {
    this.#connected = true;
    this.restart("reconnected");
  }

  /**
   * Replaces the consumer: checks the stream's epoch and range, then resumes
   * from the last revision or asks the handler for a resync. Retries with
   * jittered backoff until it succeeds or the watcher is closed.
   */
  restart(reason: string): Promise<void> {
    if (this.#restarting) {
      this.#restartAgain = reason;
      return this.#restarting;
    }
    this.#o.handler.onRestart(reason);
    this.#restarting = this.#restartLoop(reason).finally(() => {
      this.#restarting = undefined;
      const again = this.#restartAgain;
      this.#restartAgain = "";
      if (again && !this.#closed) this.restart(again);
    });
    return this.#restarting;
  }

  /**
   * Replaces the consumer like {@link restart}, but asks the handler for a
   * full resync whatever the stream's range says: for a stream whose
   * messages may have landed below the position the watcher had passed (a
   * regional mirror copying its backlog after a WAN cut).
   */
  resync(reason: string): Promise<void> {
    this.#resyncNext = reason;
    return this.restart(reason);
  }

  /** Stops delivery and deletes the consumer (best effort). */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#watchdog !== undefined) clearInterval(this.#watchdog);
    this.#endPause?.();
    this.#dropConsumer();
    await Promise.all(this.#drops);
  }

  /** Ends the restart loop's pending pause at once (close): no timer outlives the watcher. */
  #endPause: (() => void) | undefined;

  /** Waits `ms`, or less if the watcher closes meanwhile. */
  #pause(ms: number): Promise<void> {
    const end = Promise.withResolvers<void>();
    this.#endPause = end.resolve;
    return delay(ms, { until: end.promise, unref: true }).finally(() => this.#endPause = undefined);
  }

  async #restartLoop(reason: string): Promise<void> {
    this.#caughtUp = false;
    while (!this.#closed) {
      // While disconnected there is nothing to do: reconnected() restarts us.
      if (!this.#connected) return;
      // The old consumer is deleted in the background: while the stream has no
      // leader the delete is not answered either, and it must not hold us up.
      this.#dropConsumer();
      let stage = "stream info";
      try {
        const max = this.#o.controlTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS;
        const probe = await this.#manager(
          Math.min(PROBE_TIMEOUT_MS * 2 ** Math.max(0, this.#failures - PROBE_PATIENCE), max),
        );
        const createDeadlineMs = Math.min(CREATE_TIMEOUT_MS * 2 ** this.#createFailures, max);
        await this.#unlessDisconnected(async () => {
          const from = await this.#decideStart(reason, probe);
          stage = "consumer create";
          await this.#open(from, reason, createDeadlineMs);
        });
        this.#backoff.reset();
        this.#failures = 0;
        this.#createFailures = 0;
        return;
      } catch (err) {
        this.#failures++;
        if (stage === "consumer create") this.#createFailures++;
        this.#o.handler.onError(`watcher restart failed (${reason}, ${stage}): ${describe(err)}`);
        let wait: number;
        if (isUnanswered(err)) {
          // No answer: the stream (or the meta layer) is electing. The short
          // deadline already paced this attempt; retry soon, jittered so that
          // many edges do not ask in lockstep.
          wait = LEADERLESS_PAUSE_MS / 2 + Math.random() * LEADERLESS_PAUSE_MS / 2;
        } else {
          wait = this.#backoff.next();
        }
        await this.#pause(wait);
      }
    }
  }

  /** A manager whose requests time out after `timeoutMs` (no I/O to make one). */
  #manager(timeoutMs: number): Promise<JetStreamManager> {
    return jetstreamManager(this.#o.nc, { timeout: timeoutMs, checkAPI: false });
  }

  #abandonAttempt: ((err: Error) => void) | undefined;

  /** Runs `attempt`, but rejects as soon as the connection drops. */
  #unlessDisconnected(attempt: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#abandonAttempt = reject;
      attempt().then(resolve, reject);
    }).finally(() => {
      this.#abandonAttempt = undefined;
    });
  }

  /** Reads the stream and decides: resume from the last revision, or resync. */
  async #decideStart(reason: string, jsm = this.#o.jsm): Promise<StartFrom> {
    const info = await jsm.streams.info(this.#stream);
    this.#o.handler.onStreamInfo(info);
    const created = info.created;
    const { first_seq: first, last_seq: last } = info.state;
    this.#streamLastSeq = last;
    let resync: ResyncRequest | undefined;
    if (this.#epoch !== undefined && created !== this.#epoch) {
      resync = { reason: `bucket was recreated (created ${created})`, epochChanged: true };
    } else if (last < this.#lastRev) {
      resync = {
        reason: `stream sequence went backwards (last ${last} < applied ${this.#lastRev})`,
        epochChanged: true,
      };
    } else if (this.#diverged) {
      // What was applied does not compare with this stream's revisions: rebuild from scratch.
      resync = { reason: this.#diverged, epochChanged: true };
    } else if (this.#lastRev + 1 < first && !this.#o.handler.onHistoryGap?.(first)) {
      resync = {
        reason: `history no longer reaches revision ${this.#lastRev + 1} (first is ${first})`,
        epochChanged: false,
      };
    }
    // A re-read asked for by resync() delivers revisions the watcher may have
    // passed: they must reach the handler (its store keeps the newer of two).
    // Taken up once; a failed attempt after this point retries from sequence 1.
    const reread = resync === undefined && this.#resyncNext !== "";
    if (reread) resync = { reason: this.#resyncNext, epochChanged: false };
    this.#resyncNext = "";
    this.#epoch = created;
    this.#diverged = "";
    if (resync === undefined) {
      // Start at the applied revision when we know what it held: the first
      // message then tells whether this consumer's replica agrees (#onMsg).
      const applied = this.#appliedSeq;
      if (applied > 0 && applied === this.#lastRev && applied >= first) {
        return { kind: "seq", seq: applied };
      }
      return { kind: "seq", seq: this.#lastRev + 1 };
    }
    this.#appliedSeq = 0;
    if (resync.epochChanged || reread) this.#lastRev = 0;
    const from = this.#o.handler.onResync({ ...resync, reason: `${resync.reason}; ${reason}` });
    if (from.kind === "seq") this.#lastRev = from.seq - 1;
    return from;
  }

  async #open(
    from: StartFrom,
    reason: string,
    createDeadlineMs = this.#o.controlTimeoutMs ?? DEFAULT_CONTROL_TIMEOUT_MS,
  ): Promise<void> {
    const { nc, filter, heartbeatMs } = this.#o;
    const name = `kvedge_${nuid.next()}`;
    const inbox = `${this.#o.inboxPrefix ?? inboxPrefixOf(nc) ?? "_INBOX"}.${name}`;
    this.#dseq = 0;
    this.#caughtUp = false;
    this.#rejected = undefined;
    this.#verify = from.kind === "seq" && this.#appliedSeq > 0 && from.seq === this.#appliedSeq
      ? { seq: this.#appliedSeq, key: this.#appliedKey, op: this.#appliedOp }
      : undefined;
    // With no key filter every message of the stream is ours, so the stream's
    // last sequence when we (re)started is an exact target. Set before the
    // consumer exists: its first deliveries may overtake the create response,
    // and must not be judged by the previous consumer's target (a recreated
    // bucket's old, lower last sequence would mark a resync caught up early).
    // nats-server 2.9 sometimes reports num_pending one too high for a
    // filtered consumer, and under load pending may never reach 0; idle
    // heartbeats cover filters.
    this.#snapshotTarget = filter === ">" ? this.#streamLastSeq : 0;
    const sub = nc.subscribe(inbox, { callback: (err, msg) => this.#onMsg(sub, err, msg) });
    const config: Partial<ConsumerConfig> = {
      name,
      deliver_subject: inbox,
      ack_policy: AckPolicy.None,
      replay_policy: ReplayPolicy.Instant,
      filter_subject: this.#prefix + filter,
      flow_control: true,
      idle_heartbeat: nanos(heartbeatMs),
      mem_storage: true,
      num_replicas: 1,
      inactive_threshold: nanos(Math.max(60_000, heartbeatMs * 6)),
      ...(from.kind === "snapshot"
        ? { deliver_policy: DeliverPolicy.LastPerSubject }
        : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from.seq) }),
    };
    this.#sub = sub;
    this.#consumer = name;
    let pending: number;
    try {
      pending = (await this.#addConsumer(config, createDeadlineMs, sub)).num_pending;
    } catch (err) {
      sub.unsubscribe();
      // The name stays: a create that timed out may still have made the
      // consumer, and the next restart deletes it. A newer restart's
      // subscription is left alone.
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

  /**
   * Creates the consumer, one request with `deadlineMs`. Throws if `sub` is
   * no longer the watcher's by then (a restart gave up on this attempt).
   */
  async #addConsumer(
    config: Partial<ConsumerConfig>,
    deadlineMs: number,
    sub: Subscription,
  ): Promise<ConsumerInfo> {
    const jsm = await this.#manager(deadlineMs);
    let info: ConsumerInfo;
    this.#creating = sub;
    try {
      info = await jsm.consumers.add(this.#stream, config);
    } finally {
      if (this.#creating === sub) this.#creating = undefined;
    }
    // The server refuses a subscription before it answers the create that
    // followed it: a refused delivery subject fails the attempt as what it is.
    if (this.#refused?.sub === sub) throw this.#refused.error;
    if (this.#sub !== sub) throw new Error("consumer create superseded by a newer restart");
    return info;
  }

  #markCaughtUp(): void {
    if (this.#caughtUp) return;
    this.#caughtUp = true;
    this.#o.handler.onCaughtUp(this.#lastRev);
  }

  /** Stops delivery at once and deletes the consumer in the background (see {@link close}). */
  #dropConsumer(): void {
    const sub = this.#sub;
    const name = this.#consumer;
    this.#sub = undefined;
    this.#consumer = "";
    if (sub) sub.unsubscribe();
    if (name && this.#connected && !this.#o.nc.isClosed()) {
      // Best effort and briefly: the server removes an inactive consumer after
      // its inactive_threshold anyway, so a slow or failed delete is no loss.
      const drop = settleWithin(this.#o.jsm.consumers.delete(this.#stream, name), DROP_DEADLINE_MS)
        .finally(() => this.#drops.delete(drop));
      this.#drops.add(drop);
    }
  }

  #checkLiveness(): void {
    if (this.#closed || !this.#connected || this.#restarting) return;
    const silentMs = Date.now() - this.#lastActivityMs;
    if (silentMs > this.#o.heartbeatMs * 2.5) {
      this.restart(`no message or heartbeat for ${silentMs} ms`);
    }
  }

  #onMsg(sub: Subscription, err: Error | null, msg: Msg): void {
    // A message for a consumer we already dropped, or one that disagreed.
    if (sub !== this.#sub || sub === this.#rejected) return;
    if (err) {
      if (isPermissionDenied(err)) {
        // Retrying cannot help until the identity or the prefix changes: the
        // create waiting on this subscription fails with this error, and a
        // restart (if none is waiting) retries it with backoff.
        const error = new PermissionError(
          `Cannot receive the watcher's deliveries on "${sub.getSubject()}": ` +
            "the NATS credentials may not subscribe to it; connect with the inbox prefix " +
            "the identity may subscribe to (connectOptions.inboxPrefix; the worker's NATS_INBOX_PREFIX)",
          { cause: err },
        );
        this.#refused = { sub, error };
        this.#o.handler.onError(`watcher subscription refused: ${error.message}`);
        if (this.#creating !== sub) this.restart("subscription refused");
        return;
      }
      this.#o.handler.onError(`watcher subscription failed: ${describe(err)}`);
      this.restart("subscription error");
      return;
    }
    this.#lastActivityMs = Date.now();
    const h = msg.headers;
    if (h !== undefined && h.code === 100) {
      this.#onStatus(msg);
      return;
    }
    const reply = msg.reply;
    if (!reply) return;
    const t = reply.split(".");
    // $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending> (v1, 9 tokens)
    // or with <domain>.<account hash> after ACK and a random suffix (v2, 12 tokens).
    const i = t.length >= 11 ? 7 : 5;
    const sseq = Number(t[i]);
    const dseq = Number(t[i + 1]);
    const created = Number(t[i + 2]) / 1e6;
    const pending = Number(t[i + 3]);
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
      const verdict = judgeResume(verify, { seq: sseq, key, op });
      if (verdict.kind === "diverged") {
        // Nothing from this consumer may be applied: its revisions do not
        // compare with what the edge holds.
        this.#rejected = sub;
        sub.unsubscribe();
        this.#diverged = verdict.reason;
        this.restart(`the consumer's first message disagrees with revision ${verify.seq}`);
        return;
      }
      // "same" is dropped below as already applied; "unknown" goes on as usual.
    }
    if (sseq > this.#lastRev) {
      this.#lastRev = sseq;
      this.#appliedSeq = sseq;
      this.#appliedKey = key;
      this.#appliedOp = op;
      this.#o.handler.onChange(
        key,
        op,
        sseq,
        Math.floor(created),
        msg.data,
        pending,
        op === "PUT" ? ttlOfHeader(h) : 0,
      );
    }
    if (pending === 0 || (this.#snapshotTarget > 0 && sseq >= this.#snapshotTarget)) {
      this.#markCaughtUp();
    }
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
