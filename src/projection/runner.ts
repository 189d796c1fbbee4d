/**
 * `runProjection()`: runs a projection on a NATS connection. A durable pull
 * consumer with explicit acks reads the source in order, `map()` turns each
 * event into a write, the write is fenced by the event's source sequence and
 * compare-and-set on the target revision (`target.ts`), and only then is the
 * event acked. The consumer's ack floor is the checkpoint.
 *
 * This file holds the runner's lifecycle and its fetch-apply-ack loop; the
 * source and the consumer's name are resolved in `source.ts`, the target
 * bucket and the durable consumer set up in `setup.ts`, the options resolved
 * in `run_options.ts`, a message becomes an event in `event.ts`. What changes
 * while it runs has owners, and the runner asks them: the status and its
 * state (a failure carrying its error) `RunStatus` (`run_status.ts`), what
 * the loop is doing with the consumer (the pull request, the event in flight,
 * a set-up due and its reason) `PullPhase` (`pull_phase.ts`), the periodic
 * refresh `StatusRefresh` (`status_refresh.ts`). The runner's own fields are
 * wired once, in its constructor and `start()` (`tests/unit/owners_test.ts`).
 * Pauses and backoff: `src/async.ts`.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type ConsumerInfo,
  type ConsumerMessages,
  jetstream,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
} from "@nats-io/jetstream";
import { describe } from "../describe.ts";
import { KvedgeError, ProjectionMapError } from "../errors.ts";
import { kvSubjectPrefix } from "../kv_layout.ts";
import type { SharedConnection } from "../types.ts";
import { domainApi } from "../region.ts";
import { isProjection } from "./define.ts";
import { applyEvent } from "./apply_event.ts";
import { ProjectionTarget } from "./target.ts";
import { Backoff, delay, settleWithin } from "../async.ts";
import { isConsumerNotFound, isStreamNotFound } from "../nats_errors.ts";
import type {
  Projection,
  ProjectionEvent,
  ProjectionRunner,
  ProjectionStatus,
  RunProjectionOptions,
} from "./types.ts";
import { type ResolvedRunOptions, resolveRunOptions } from "./run_options.ts";
import { keepWorking, toEvent } from "./event.ts";
import { initialStatus, resolveSource, type SourceSpec } from "./source.ts";
import { RunStatus } from "./run_status.ts";
import { PullPhase } from "./pull_phase.ts";
import { StatusRefresh } from "./status_refresh.ts";
import { bindConsumer, ensureTarget, readSource } from "./setup.ts";

/**
 * Runs a projection on a connection (which the caller keeps and closes):
 * ensures the target bucket, checks that the source exists, creates or binds
 * the durable consumer `projection_<name>` and starts applying events.
 * Rejects if the source does not exist (`BUCKET_NOT_FOUND`), if the durable
 * consumer was made for another filter or target (`CONFLICT`; pass
 * `fromStart` to recreate it), or NATS is unreachable.
 *
 * Events are applied strictly in source order, one at a time: the consumer
 * has `max_ack_pending: 1`, so even two runners of one projection (or a
 * runner the server wrongly believes dead) cannot apply a later event before
 * an earlier one is acked.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { defineProjection, runProjection } from "../../projection.ts";
 * const nc = await connect({ servers: "nats://127.0.0.1:4222" });
 * const latest = defineProjection({
 *   name: "latest-by-subject",
 *   source: { stream: "EVENTS" },
 *   target: "latest",
 *   map: (event) => ({ key: event.subject, value: event.json() }),
 * });
 * const run = await runProjection(nc, latest);
 * console.log(run.status());
 * await run.stop();
 * await nc.close();
 * ```
 */
export async function runProjection<V>(
  connection: SharedConnection,
  projection: Projection<V>,
  options: RunProjectionOptions = {},
): Promise<ProjectionRunner> {
  if (!isProjection(projection)) {
    throw new TypeError("Cannot run projection: pass a value made by defineProjection()");
  }
  const resolved = resolveRunOptions(options);
  resolved.signal?.throwIfAborted();
  if (typeof connection?.isClosed !== "function") {
    throw new TypeError("Cannot run projection: pass a NatsConnection from connect()");
  }
  if (connection.isClosed()) {
    throw new KvedgeError("CLOSED", "Cannot run projection: the NATS connection is closed");
  }
  // SharedConnection is the public face of nats.js's NatsConnection (self-contained docs).
  const nc = connection as unknown as NatsConnection;
  const run = new Runner(nc, projection as Projection<unknown>, resolved);
  await run.start();
  return run;
}

/** Events asked for per pull request. */
const FETCH_BATCH = 64;
/** Lifetime of a pull request, in ms: bounds how long a graceful stop waits when idle. */
const FETCH_EXPIRES_MS = 2_000;

class Runner implements ProjectionRunner {
  readonly projection: Projection<unknown>;
  readonly #nc: NatsConnection;
  readonly #o: ResolvedRunOptions;
  readonly #spec: SourceSpec;
  readonly #abort = new AbortController();
  #jsm!: JetStreamManager;
  #js!: JetStreamClient;
  #target!: ProjectionTarget;
  #loop: Promise<void> = Promise.resolve();
  readonly #s: RunStatus;
  readonly #pull = new PullPhase();

  constructor(nc: NatsConnection, projection: Projection<unknown>, o: ResolvedRunOptions) {
    this.#nc = nc;
    this.projection = projection;
    this.#o = o;
    this.#spec = resolveSource(projection);
    this.#s = new RunStatus(initialStatus(projection, this.#spec));
  }

  async start(): Promise<void> {
    // In a region, every JetStream call goes to the hub's domain.
    const domain = this.#o.hubDomain === undefined ? {} : { domain: this.#o.hubDomain };
    this.#jsm = await jetstreamManager(this.#nc, { checkAPI: false, ...domain });
    this.#js = jetstream(this.#nc, domain);
    const bucket = this.projection.target.bucket;
    this.#target = new ProjectionTarget({
      jsm: this.#jsm,
      js: this.#js,
      bucket,
      cacheMaxKeys: this.#o.cacheMaxKeys,
      ...(this.#o.hubDomain === undefined
        ? {}
        : { writePrefix: `${domainApi(this.#o.hubDomain)}.${kvSubjectPrefix(bucket)}` }),
    });
    await this.#setup(this.#o.fromStart);
    await ensureTarget(this.#jsm, this.projection);
    const refresh = this.#o.statusIntervalMs > 0
      ? new StatusRefresh(this.#o.statusIntervalMs, () => this.#refresh())
      : undefined;
    const signal = this.#o.signal;
    const onAbort = () => void this.stop();
    signal?.addEventListener("abort", onAbort, { once: true });
    // Both are let go the moment the loop ends, before its state says so.
    this.#loop = this.#run(() => {
      refresh?.stop();
      signal?.removeEventListener("abort", onAbort);
    });
  }

  status(): ProjectionStatus {
    return this.#s.snapshot();
  }

  async caughtUp(options: { signal?: AbortSignal } = {}): Promise<ProjectionStatus> {
    const signal = options.signal;
    for (;;) {
      signal?.throwIfAborted();
      this.#throwIfEnded("wait for the projection to catch up");
      let info: ConsumerInfo | undefined;
      try {
        info = await this.#jsm.consumers.info(this.#spec.stream, this.#spec.durable);
        this.#s.consumerRead(info);
      } catch {
        // Consumer being recreated or NATS away: the loop deals with it; ask again.
      }
      if (info && info.num_pending === 0 && info.num_ack_pending === 0 && !this.#pull.inFlight) {
        return this.status();
      }
      await this.#s.nextProgress(250, signal);
    }
  }

  closed(): Promise<ProjectionStatus> {
    return this.#loop.then(() => this.status());
  }

  async stop(): Promise<ProjectionStatus> {
    if (!this.#stopping) {
      this.#s.stopping();
      this.#abort.abort();
    }
    // The loop ends when the pull request does (at most FETCH_EXPIRES_MS);
    // should the request hang (NATS away), it is abandoned after a while.
    if (!await settleWithin(this.#loop, 3 * FETCH_EXPIRES_MS)) this.#pull.batch?.stop();
    await this.#loop;
    return this.status();
  }

  close(): Promise<ProjectionStatus> {
    return this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
  }

  /** Whether `stop()` was called: it alone aborts `#abort` (the state may still say "failed"). */
  get #stopping(): boolean {
    return this.#abort.signal.aborted;
  }

  #throwIfEnded(action: string): void {
    if (this.#s.state === "failed") {
      throw new KvedgeError(
        "CLOSED",
        `Cannot ${action}: projection "${this.projection.name}" failed: ${this.#s.lastError}`,
        { cause: this.#s.failure },
      );
    }
    if (this.#stopping || this.#s.state === "stopped") {
      throw new KvedgeError(
        "CLOSED",
        `Cannot ${action}: projection "${this.projection.name}" is stopped`,
      );
    }
  }

  /** Reads the source's incarnation and creates or binds the durable consumer. */
  async #setup(fromStart: boolean): Promise<void> {
    const { stream, durable, filter, description } = this.#spec;
    const si = await readSource(this.#jsm, { stream, projectionName: this.projection.name });
    const epoch = `${stream}@${si.created}`;
    const sameEpoch = this.#s.epoch === epoch;
    this.#s.setEpoch(epoch);
    this.#s.sourceLast(si.state.last_seq);
    const info = await bindConsumer(this.#jsm, {
      projection: this.projection.name,
      stream,
      durable,
      filter,
      description,
    }, {
      fromStart,
      ackWaitMs: this.#o.ackWaitMs,
      // A consumer lost while running resumes after the last event this
      // runner acked; anything else (first start, replay, new incarnation of
      // the source) reads from the first event, which fencing makes safe.
      resumeAfter: () =>
        !fromStart && sameEpoch && this.#s.lastAcked > 0 ? this.#s.lastAcked : undefined,
    });
    this.#s.consumerRead(info);
  }

  /** Periodic refresh of lag and checkpoint; also notices a recreated source. */
  async #refresh(): Promise<void> {
    if (this.#stopping || this.#nc.isClosed()) return;
    const { stream, durable } = this.#spec;
    try {
      const si = await this.#jsm.streams.info(stream);
      this.#s.sourceLast(si.state.last_seq);
      if (`${stream}@${si.created}` !== this.#s.epoch) {
        this.#reset("the source stream was recreated");
      }
      const info = await this.#jsm.consumers.info(stream, durable);
      this.#s.consumerRead(info);
    } catch (err) {
      if (isStreamNotFound(err) || isConsumerNotFound(err)) this.#reset(describe(err));
    }
  }

  /** The consumer must be set up again: the first reason is reported and ends the pull request. */
  #reset(reason: string): void {
    if (!this.#pull.reset(reason)) return;
    this.#s.error(reason);
    this.#pull.batch?.stop();
  }

  /** The pauses after NATS failures: `retryDelayMs` doubling to `maxRetryDelayMs`. */
  #backoff(): Backoff {
    return new Backoff({ firstMs: this.#o.retryDelayMs, maxMs: this.#o.maxRetryDelayMs });
  }

  /** The fetch-apply-ack loop, until stopped or failed; `release` lets go of what watches it. */
  async #run(release: () => void): Promise<void> {
    const backoff = this.#backoff();
    try {
      while (!this.#stopping && this.#s.failure === undefined) {
        let batch: ConsumerMessages | undefined;
        try {
          if (this.#pull.takeReset() !== undefined) await this.#setup(false);
          const consumer = await this.#js.consumers.get(this.#spec.stream, this.#spec.durable);
          // One bounded pull request at a time (not consume(), which keeps
          // pulls outstanding): a stop can then wait for the request to end
          // instead of abandoning it, so no event is delivered to an inbox
          // nobody reads and held there for ack_wait.
          batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
          this.#pull.pulling(batch);
          void this.#watch(batch);
          this.#s.started();
          for await (const m of batch) {
            if (this.#stopping || this.#s.failure !== undefined) {
              // Draining the request: each event given back counts against its batch.
              m.nak();
              continue;
            }
            await this.#handle(m);
            backoff.reset();
          }
          this.#s.recovered();
        } catch (err) {
          if (this.#stopping) break;
          if (this.#nc.isClosed()) {
            this.#s.fail(err);
            break;
          }
          const reason = describe(err);
          this.#s.retrying(reason);
          this.#pull.reset(reason);
          await delay(backoff.next(), { signal: this.#abort.signal });
        } finally {
          batch?.stop();
          this.#pull.pulled();
        }
        if (!this.#stopping && this.#nc.isClosed()) {
          this.#s.fail(new KvedgeError("CLOSED", "the NATS connection was closed"));
        }
      }
    } finally {
      release();
      this.#s.ended();
    }
  }

  /** Restarts the consumer when the server says it or its stream is gone. */
  async #watch(messages: ConsumerMessages): Promise<void> {
    try {
      for await (const s of messages.status()) {
        if (
          s.type === "consumer_deleted" || s.type === "consumer_not_found" ||
          s.type === "stream_not_found"
        ) {
          this.#reset(`consumer lost (${s.type})`);
          return;
        }
      }
    } catch {
      // The iterator ended with the messages; nothing to watch.
    }
  }

  async #handle(m: JsMsg): Promise<void> {
    this.#pull.handling(m.seq);
    this.#s.delivered(m.seq, m.info.pending);
    const event = toEvent(m, this.#spec.kvPrefix);
    const keepAlive = keepWorking(m, this.#o.ackWaitMs);
    try {
      if (!await this.#apply(m, event)) return;
      try {
        await m.ackAck();
      } catch (err) {
        // The write is in the target: a redelivery will be skipped by the fence.
        this.#s.error(`ack of event ${m.seq} unconfirmed: ${describe(err)}`);
      }
      this.#acked(m);
      this.#s.recovered();
    } finally {
      clearInterval(keepAlive);
      this.#pull.handled();
      this.#s.progressed();
    }
  }

  /**
   * Applies `event` to the target, retrying NATS failures with backoff. True
   * when applied (ack it); false when the message was settled otherwise
   * (given back, terminated or left to the failing run loop).
   */
  async #apply(m: JsMsg, event: ProjectionEvent): Promise<boolean> {
    const backoff = this.#backoff();
    for (;;) {
      try {
        const target = this.#target;
        const out = await applyEvent(
          { target, projection: this.projection, epoch: this.#s.epoch, signal: this.#abort.signal },
          event,
        );
        this.#s.applied(out);
        return true;
      } catch (err) {
        if (err instanceof ProjectionMapError) {
          this.#mapFailed(m, err);
          return false;
        }
        if (this.#nc.isClosed()) return false; // Nothing can be acked; the run loop fails.
        if (this.#stopping) {
          // Give the event back at once rather than after ack_wait.
          m.nak();
          return false;
        }
        this.#s.retrying(describe(err));
        await delay(backoff.next(), { signal: this.#abort.signal });
      }
    }
  }

  /** `map()` threw for the event of `m`: skip it (`onMapError: "skip"`) or fail the run. */
  #mapFailed(m: JsMsg, err: ProjectionMapError): void {
    if (this.#stopping) {
      // Most likely the map gave up on ctx.signal: not the event's fault.
      m.nak();
      return;
    }
    this.#s.mapError(describe(err));
    if (this.#o.onMapError === "skip") {
      // No reason text: nats-server before 2.10.4 ignores "+TERM <reason>".
      m.term();
      this.#acked(m);
      return;
    }
    m.nak();
    this.#s.fail(err);
  }

  #acked(m: JsMsg): void {
    this.#s.acked(m.seq, m.info.pending);
  }
}
