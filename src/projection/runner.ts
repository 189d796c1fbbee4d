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
 * in `run_options.ts`, a message becomes an event in `event.ts`, the status
 * is owned by `run_status.ts` and the callers waiting for progress are in
 * `waiting.ts` (pauses and backoff: `src/async.ts`).
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
import { initialStatus, resolveSource } from "./source.ts";
import { RunStatus } from "./run_status.ts";
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
  readonly #stream: string;
  readonly #filter: string | undefined;
  readonly #kvPrefix: string | undefined;
  readonly #durable: string;
  readonly #description: string;
  readonly #abort = new AbortController();
  #jsm!: JetStreamManager;
  #js!: JetStreamClient;
  #target!: ProjectionTarget;
  #batch: ConsumerMessages | undefined;
  #loop: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #onAbort: (() => void) | undefined;
  #resetNeeded = false;
  #refreshing = false;
  #inFlight = false;
  #failure: unknown;
  readonly #s: RunStatus;

  constructor(nc: NatsConnection, projection: Projection<unknown>, o: ResolvedRunOptions) {
    this.#nc = nc;
    this.projection = projection;
    this.#o = o;
    const spec = resolveSource(projection);
    this.#stream = spec.stream;
    this.#kvPrefix = spec.kvPrefix;
    this.#filter = spec.filter;
    this.#durable = spec.durable;
    this.#description = spec.description;
    this.#s = new RunStatus(initialStatus(projection, spec));
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
    this.#loop = this.#run();
    if (this.#o.statusIntervalMs > 0) {
      this.#timer = setInterval(() => void this.#refresh(), this.#o.statusIntervalMs);
    }
    const signal = this.#o.signal;
    if (signal) {
      this.#onAbort = () => void this.stop();
      signal.addEventListener("abort", this.#onAbort, { once: true });
    }
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
        info = await this.#jsm.consumers.info(this.#stream, this.#durable);
        this.#s.consumerRead(info);
      } catch {
        // Consumer being recreated or NATS away: the loop deals with it; ask again.
      }
      if (info && info.num_pending === 0 && info.num_ack_pending === 0 && !this.#inFlight) {
        return this.status();
      }
      await this.#s.progress.next(250, signal);
    }
  }

  closed(): Promise<ProjectionStatus> {
    return this.#loop.then(() => this.status());
  }

  async stop(): Promise<ProjectionStatus> {
    if (!this.#stopping) {
      if (this.#s.state !== "failed" && this.#s.state !== "stopped") this.#s.setState("stopping");
      this.#abort.abort();
    }
    // The loop ends when the pull request does (at most FETCH_EXPIRES_MS);
    // should the request hang (NATS away), it is abandoned after a while.
    if (!await settleWithin(this.#loop, 3 * FETCH_EXPIRES_MS)) this.#batch?.stop();
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
        { cause: this.#failure },
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
    const si = await readSource(this.#jsm, this.#stream, this.projection.name);
    const epoch = `${this.#stream}@${si.created}`;
    const sameEpoch = this.#s.epoch === epoch;
    this.#s.setEpoch(epoch);
    this.#s.sourceLast(si.state.last_seq);
    const info = await bindConsumer(this.#jsm, {
      projection: this.projection.name,
      stream: this.#stream,
      durable: this.#durable,
      filter: this.#filter,
      description: this.#description,
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
    if (this.#stopping || this.#refreshing || this.#nc.isClosed()) return;
    this.#refreshing = true;
    try {
      const si = await this.#jsm.streams.info(this.#stream);
      this.#s.sourceLast(si.state.last_seq);
      if (`${this.#stream}@${si.created}` !== this.#s.epoch) {
        this.#reset("the source stream was recreated");
      }
      const info = await this.#jsm.consumers.info(this.#stream, this.#durable);
      this.#s.consumerRead(info);
    } catch (err) {
      if (isStreamNotFound(err) || isConsumerNotFound(err)) this.#reset(describe(err));
    } finally {
      this.#refreshing = false;
    }
  }

  #reset(reason: string): void {
    if (this.#resetNeeded) return;
    this.#resetNeeded = true;
    this.#s.error(reason);
    this.#batch?.stop();
  }

  /** The pauses after NATS failures: `retryDelayMs` doubling to `maxRetryDelayMs`. */
  #backoff(): Backoff {
    return new Backoff({ firstMs: this.#o.retryDelayMs, maxMs: this.#o.maxRetryDelayMs });
  }

  async #run(): Promise<void> {
    const backoff = this.#backoff();
    try {
      while (!this.#stopping && this.#failure === undefined) {
        let batch: ConsumerMessages | undefined;
        try {
          if (this.#resetNeeded) {
            this.#resetNeeded = false;
            await this.#setup(false);
          }
          const consumer = await this.#js.consumers.get(this.#stream, this.#durable);
          // One bounded pull request at a time (not consume(), which keeps
          // pulls outstanding): a stop can then wait for the request to end
          // instead of abandoning it, so no event is delivered to an inbox
          // nobody reads and held there for ack_wait.
          batch = await consumer.fetch({ max_messages: FETCH_BATCH, expires: FETCH_EXPIRES_MS });
          this.#batch = batch;
          void this.#watch(batch);
          if (this.#s.state === "starting") this.#s.setState("running");
          for await (const m of batch) {
            if (this.#stopping || this.#failure !== undefined) {
              // Draining the request: each event given back counts against its batch.
              m.nak();
              continue;
            }
            await this.#handle(m);
            backoff.reset();
          }
          if (this.#s.state === "retrying") this.#s.setState("running");
        } catch (err) {
          if (this.#stopping) break;
          if (this.#nc.isClosed()) {
            this.#fail(err);
            break;
          }
          this.#s.retrying(describe(err));
          this.#resetNeeded = true;
          await delay(backoff.next(), { signal: this.#abort.signal });
        } finally {
          batch?.stop();
          this.#batch = undefined;
        }
        if (!this.#stopping && this.#nc.isClosed()) {
          this.#fail(new KvedgeError("CLOSED", "the NATS connection was closed"));
        }
      }
    } finally {
      if (this.#timer !== undefined) clearInterval(this.#timer);
      this.#timer = undefined;
      if (this.#onAbort) this.#o.signal?.removeEventListener("abort", this.#onAbort);
      if (this.#s.state !== "failed") this.#s.setState("stopped");
      this.#s.progress.notify();
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

  #fail(err: unknown): void {
    this.#failure = err ?? new Error("failed");
    this.#s.error(describe(err));
    this.#s.setState("failed");
  }

  async #handle(m: JsMsg): Promise<void> {
    this.#inFlight = true;
    this.#s.delivered(m.seq, m.info.pending);
    const event = toEvent(m, this.#kvPrefix);
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
      if (this.#s.state === "retrying") this.#s.setState("running");
    } finally {
      clearInterval(keepAlive);
      this.#inFlight = false;
      this.#s.progress.notify();
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
    this.#fail(err);
  }

  #acked(m: JsMsg): void {
    this.#s.acked(m.seq, m.info.pending);
  }
}
