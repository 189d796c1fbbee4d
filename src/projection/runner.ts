/**
 * `runProjection()`: runs a projection on a NATS connection. A durable pull
 * consumer with explicit acks reads the source in order, `map()` turns each
 * event into a write, the write is fenced by the event's source sequence and
 * compare-and-set on the target revision (`target.ts`), and only then is the
 * event acked. The consumer's ack floor is the checkpoint.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  AckPolicy,
  type ConsumerConfig,
  type ConsumerInfo,
  type ConsumerMessages,
  DeliverPolicy,
  jetstream,
  JetStreamApiCodes,
  type JetStreamApiError,
  type JetStreamClient,
  type JetStreamManager,
  jetstreamManager,
  type JsMsg,
  type StreamInfo,
} from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
import { describe } from "../describe.ts";
import { KvedgeError, ProjectionMapError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { kvStreamName, kvSubject, kvSubjectPrefix, operationOf } from "../kv_layout.ts";
import type { CreateBucketOptions, Operation, SharedConnection } from "../types.ts";
import { parseOptions } from "../validate.ts";
import { isProjection } from "./define.ts";
import { applyEvent, ProjectionTarget } from "./target.ts";
import type {
  Projection,
  ProjectionEvent,
  ProjectionRunner,
  ProjectionState,
  ProjectionStatus,
  RunProjectionOptions,
} from "./types.ts";

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
 * import { defineProjection, runProjection } from "../../mod.ts";
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

interface ResolvedRunOptions {
  fromStart: boolean;
  ackWaitMs: number;
  retryDelayMs: number;
  maxRetryDelayMs: number;
  onMapError: "stop" | "skip";
  statusIntervalMs: number;
  cacheMaxKeys: number;
  signal: AbortSignal | undefined;
}

const int = (min: number) => z.number().int().min(min).max(Number.MAX_SAFE_INTEGER);

const RunOptionsSchema = z.object({
  fromStart: z.unknown().optional(),
  ackWaitMs: int(1_000).optional(),
  retryDelayMs: int(1).optional(),
  maxRetryDelayMs: int(1).optional(),
  onMapError: z.enum(["stop", "skip"]).optional(),
  statusIntervalMs: int(0).optional(),
  cacheMaxKeys: int(0).optional(),
  signal: z.custom<AbortSignal>((v) => typeof v === "object" && v !== null && "aborted" in v, {
    message: "must be an AbortSignal",
  }).optional(),
});

function resolveRunOptions(input: RunProjectionOptions): ResolvedRunOptions {
  const o = parseOptions(RunOptionsSchema, input, "run projection");
  const retryDelayMs = o.retryDelayMs ?? 250;
  return {
    fromStart: o.fromStart === true,
    ackWaitMs: o.ackWaitMs ?? 10_000,
    retryDelayMs,
    maxRetryDelayMs: Math.max(retryDelayMs, o.maxRetryDelayMs ?? 5_000),
    onMapError: o.onMapError ?? "stop",
    statusIntervalMs: o.statusIntervalMs ?? 5_000,
    cacheMaxKeys: o.cacheMaxKeys ?? 10_000,
    signal: input.signal,
  };
}

/** Events asked for per pull request. */
const FETCH_BATCH = 64;
/** Lifetime of a pull request, in ms: bounds how long a graceful stop waits when idle. */
const FETCH_EXPIRES_MS = 2_000;
const STREAM_NOT_FOUND = JetStreamApiCodes.StreamNotFound;
const CONSUMER_NOT_FOUND = JetStreamApiCodes.ConsumerNotFound;

function apiCode(err: unknown): number | undefined {
  const code = (err as JetStreamApiError | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

const decoder = new TextDecoder();

function toEvent(m: JsMsg, kvPrefix: string | undefined): ProjectionEvent {
  const key = kvPrefix !== undefined ? m.subject.slice(kvPrefix.length) : undefined;
  let operation: Operation = "PUT";
  if (kvPrefix !== undefined) {
    operation = operationOf(m.headers);
  }
  const data = m.data;
  return Object.freeze({
    seq: m.seq,
    subject: m.subject,
    key,
    operation,
    data,
    timestampMs: Math.floor(m.info.timestampNanos / 1_000_000),
    redelivered: m.redelivered,
    header: (name: string) => m.headers?.get(name) || undefined,
    json: <T = unknown>(): T => JSON.parse(decoder.decode(data)) as T,
    string: () => decoder.decode(data),
  });
}

class Runner implements ProjectionRunner {
  readonly projection: Projection<unknown>;
  readonly #nc: NatsConnection;
  readonly #o: ResolvedRunOptions;
  readonly #stream: string;
  readonly #filter: string | undefined;
  readonly #kvPrefix: string | undefined;
  readonly #durable: string;
  readonly #description: string;
  readonly #sourceLabel: string;
  readonly #abort = new AbortController();
  #jsm!: JetStreamManager;
  #js!: JetStreamClient;
  #target!: ProjectionTarget;
  #batch: ConsumerMessages | undefined;
  #inRetry = false;
  #loop: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setInterval> | undefined;
  #onAbort: (() => void) | undefined;
  #stopping = false;
  #resetNeeded = false;
  #refreshing = false;
  #inFlight = false;
  #lastAcked = 0;
  #failure: unknown;
  #progress = new Set<() => void>();
  #s: ProjectionStatus;

  constructor(nc: NatsConnection, projection: Projection<unknown>, o: ResolvedRunOptions) {
    this.#nc = nc;
    this.projection = projection;
    this.#o = o;
    const src = projection.source;
    if ("bucket" in src) {
      this.#stream = kvStreamName(src.bucket);
      this.#kvPrefix = kvSubjectPrefix(src.bucket);
      this.#filter = kvSubject(src.bucket, src.keys);
      this.#sourceLabel = `bucket ${src.bucket} ${src.keys}`;
    } else {
      this.#stream = src.stream;
      this.#kvPrefix = undefined;
      this.#filter = src.subject;
      this.#sourceLabel = `stream ${src.stream}${src.subject ? " " + src.subject : ""}`;
    }
    this.#durable = `projection_${projection.name}`;
    this.#description = `kvedge projection ${projection.name} -> ${projection.target.bucket}`;
    this.#s = {
      name: projection.name,
      source: this.#sourceLabel,
      target: projection.target.bucket,
      consumer: this.#durable,
      state: "starting",
      since: Date.now(),
      checkpoint: 0,
      sourceSeq: 0,
      lag: 0,
      epoch: "",
      events: 0,
      applied: 0,
      skipped: 0,
      ignored: 0,
      conflicts: 0,
      retries: 0,
      mapErrors: 0,
    };
  }

  async start(): Promise<void> {
    this.#jsm = await jetstreamManager(this.#nc, { checkAPI: false });
    this.#js = jetstream(this.#nc);
    this.#target = new ProjectionTarget(this.#jsm, this.#js, this.projection.target.bucket, {
      cacheMaxKeys: this.#o.cacheMaxKeys,
    });
    await this.#setup(this.#o.fromStart);
    await this.#ensureTarget();
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
    return { ...this.#s };
  }

  async caughtUp(options: { signal?: AbortSignal } = {}): Promise<ProjectionStatus> {
    const signal = options.signal;
    for (;;) {
      signal?.throwIfAborted();
      this.#throwIfEnded("wait for the projection to catch up");
      let info: ConsumerInfo | undefined;
      try {
        info = await this.#jsm.consumers.info(this.#stream, this.#durable);
        this.#applyConsumerInfo(info);
      } catch {
        // Consumer being recreated or NATS away: the loop deals with it; ask again.
      }
      if (info && info.num_pending === 0 && info.num_ack_pending === 0 && !this.#inFlight) {
        return this.status();
      }
      await this.#nextProgress(250, signal);
    }
  }

  closed(): Promise<ProjectionStatus> {
    return this.#loop.then(() => this.status());
  }

  async stop(): Promise<ProjectionStatus> {
    if (!this.#stopping) {
      this.#stopping = true;
      if (this.#s.state !== "failed" && this.#s.state !== "stopped") this.#setState("stopping");
      this.#abort.abort();
    }
    // The loop ends when the pull request does (at most FETCH_EXPIRES_MS);
    // should the request hang (NATS away), it is abandoned after a while.
    const force = setTimeout(() => this.#batch?.stop(), 3 * FETCH_EXPIRES_MS);
    try {
      await this.#loop;
    } finally {
      clearTimeout(force);
    }
    return this.status();
  }

  close(): Promise<ProjectionStatus> {
    return this.stop();
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop();
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

  #setState(state: ProjectionState): void {
    if (this.#s.state === state) return;
    this.#s.state = state;
    this.#s.since = Date.now();
    this.#notify();
  }

  #notify(): void {
    const waiters = [...this.#progress];
    this.#progress.clear();
    for (const w of waiters) w();
  }

  #nextProgress(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#progress.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      this.#progress.add(done);
    });
  }

  async #ensureTarget(): Promise<void> {
    const { bucket, create } = this.projection.target;
    try {
      await this.#jsm.streams.info(kvStreamName(bucket));
      return;
    } catch (err) {
      if (apiCode(err) !== STREAM_NOT_FOUND) {
        throw mapNatsError(err, `run projection "${this.projection.name}"`, bucket);
      }
    }
    if (create === false) {
      throw new KvedgeError(
        "BUCKET_NOT_FOUND",
        `Cannot run projection "${this.projection.name}": target bucket "${bucket}" does not exist`,
      );
    }
    const c: CreateBucketOptions = create === true ? {} : create;
    try {
      await new Kvm(this.#js).create(
        bucket,
        {
          replicas: c.replicas ?? 1,
          history: c.history ?? 10,
          ...(c.ttlMs ? { ttl: c.ttlMs } : {}),
          ...(c.maxBytes && c.maxBytes > 0 ? { max_bytes: c.maxBytes } : {}),
          ...(c.maxValueSize && c.maxValueSize > 0 ? { maxValueSize: c.maxValueSize } : {}),
          storage: c.storage === "memory" ? "memory" : "file",
        } as Parameters<Kvm["create"]>[1],
      );
    } catch (err) {
      throw mapNatsError(err, `create target bucket "${bucket}"`, bucket);
    }
  }

  /** Reads the source's incarnation and creates or binds the durable consumer. */
  async #setup(fromStart: boolean): Promise<void> {
    let si: StreamInfo;
    try {
      si = await this.#jsm.streams.info(this.#stream);
    } catch (err) {
      if (apiCode(err) === STREAM_NOT_FOUND) {
        throw new KvedgeError(
          "BUCKET_NOT_FOUND",
          `Cannot run projection "${this.projection.name}": source stream "${this.#stream}" does not exist`,
          { cause: err },
        );
      }
      throw mapNatsError(err, `run projection "${this.projection.name}"`, this.#stream);
    }
    const epoch = `${this.#stream}@${si.created}`;
    const sameEpoch = this.#s.epoch === epoch;
    this.#s.epoch = epoch;
    this.#s.sourceSeq = si.state.last_seq;
    if (fromStart) {
      try {
        await this.#jsm.consumers.delete(this.#stream, this.#durable);
      } catch (err) {
        if (apiCode(err) !== CONSUMER_NOT_FOUND) throw err;
      }
    }
    let info: ConsumerInfo | undefined;
    try {
      info = await this.#jsm.consumers.info(this.#stream, this.#durable);
    } catch (err) {
      if (apiCode(err) !== CONSUMER_NOT_FOUND) throw err;
    }
    const ackWaitNanos = this.#o.ackWaitMs * 1_000_000;
    if (info) {
      const filter = info.config.filter_subject || undefined;
      if (filter !== this.#filter || info.config.description !== this.#description) {
        // Binding would resume another projection's checkpoint against this target.
        throw new KvedgeError(
          "CONFLICT",
          `Cannot run projection "${this.projection.name}": consumer "${this.#durable}" on ` +
            `"${this.#stream}" was made for ${JSON.stringify(info.config.description ?? "")} ` +
            `with filter ${JSON.stringify(filter ?? "")}; run it from the start to recreate it`,
        );
      }
      if (info.config.ack_wait !== ackWaitNanos || info.config.max_ack_pending !== 1) {
        info = await this.#jsm.consumers.update(this.#stream, this.#durable, {
          ack_wait: ackWaitNanos,
          max_ack_pending: 1,
        });
      }
    } else {
      // A consumer lost while running resumes after the last event this
      // runner acked; anything else (first start, replay, new incarnation of
      // the source) reads from the first event, which fencing makes safe.
      const resume = !fromStart && sameEpoch && this.#lastAcked > 0;
      const config: Partial<ConsumerConfig> = {
        durable_name: this.#durable,
        description: this.#description,
        ack_policy: AckPolicy.Explicit,
        ack_wait: ackWaitNanos,
        max_ack_pending: 1,
        max_deliver: -1,
        ...(this.#filter ? { filter_subject: this.#filter } : {}),
        ...(resume
          ? { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: this.#lastAcked + 1 }
          : { deliver_policy: DeliverPolicy.All }),
      };
      info = await this.#jsm.consumers.add(this.#stream, config);
    }
    this.#applyConsumerInfo(info);
  }

  #applyConsumerInfo(info: ConsumerInfo): void {
    this.#s.checkpoint = info.ack_floor.stream_seq;
    if (this.#s.checkpoint > this.#lastAcked) this.#lastAcked = this.#s.checkpoint;
    this.#s.lag = info.num_pending + info.num_ack_pending;
    if (info.delivered.stream_seq > this.#s.sourceSeq) {
      this.#s.sourceSeq = info.delivered.stream_seq;
    }
  }

  /** Periodic refresh of lag and checkpoint; also notices a recreated source. */
  async #refresh(): Promise<void> {
    if (this.#stopping || this.#refreshing || this.#nc.isClosed()) return;
    this.#refreshing = true;
    try {
      const si = await this.#jsm.streams.info(this.#stream);
      this.#s.sourceSeq = si.state.last_seq;
      if (`${this.#stream}@${si.created}` !== this.#s.epoch) {
        this.#reset("the source stream was recreated");
      }
      const info = await this.#jsm.consumers.info(this.#stream, this.#durable);
      this.#applyConsumerInfo(info);
    } catch (err) {
      const code = apiCode(err);
      if (code === STREAM_NOT_FOUND || code === CONSUMER_NOT_FOUND) this.#reset(describe(err));
    } finally {
      this.#refreshing = false;
    }
  }

  #reset(reason: string): void {
    if (this.#resetNeeded) return;
    this.#resetNeeded = true;
    this.#s.lastError = reason;
    this.#batch?.stop();
  }

  async #run(): Promise<void> {
    let delay = this.#o.retryDelayMs;
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
          if (this.#s.state === "starting") this.#setState("running");
          for await (const m of batch) {
            if (this.#stopping || this.#failure !== undefined) {
              // Draining the request: each event given back counts against its batch.
              m.nak();
              continue;
            }
            await this.#handle(m);
            delay = this.#o.retryDelayMs;
          }
          if (this.#s.state === "retrying" && !this.#inRetry) this.#setState("running");
        } catch (err) {
          if (this.#stopping) break;
          if (this.#nc.isClosed()) {
            this.#fail(err);
            break;
          }
          this.#s.lastError = describe(err);
          this.#s.retries++;
          this.#setState("retrying");
          this.#resetNeeded = true;
          await pause(delay, this.#abort.signal);
          delay = Math.min(delay * 2, this.#o.maxRetryDelayMs);
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
      if (this.#s.state !== "failed") this.#setState("stopped");
      this.#notify();
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
    this.#s.lastError = describe(err);
    this.#setState("failed");
  }

  async #handle(m: JsMsg): Promise<void> {
    this.#inFlight = true;
    this.#s.lag = m.info.pending + 1;
    if (m.seq > this.#s.sourceSeq) this.#s.sourceSeq = m.seq;
    const event = toEvent(m, this.#kvPrefix);
    // Keeps the server from redelivering an event this runner is still on.
    const keepAlive = setInterval(() => {
      try {
        m.working();
      } catch {
        // Disconnected: the retry loop below reports it.
      }
    }, Math.max(250, Math.floor(this.#o.ackWaitMs / 3)));
    try {
      let delay = this.#o.retryDelayMs;
      for (;;) {
        try {
          const out = await applyEvent(
            this.#target,
            this.projection,
            event,
            this.#s.epoch,
            this.#abort.signal,
          );
          this.#s.applied += out.applied;
          this.#s.skipped += out.skipped;
          this.#s.conflicts += out.conflicts;
          if (out.ignored) this.#s.ignored++;
          break;
        } catch (err) {
          if (err instanceof ProjectionMapError && this.#stopping) {
            // Most likely the map gave up on ctx.signal: not the event's fault.
            m.nak();
            return;
          }
          if (err instanceof ProjectionMapError) {
            this.#s.mapErrors++;
            this.#s.lastError = describe(err);
            if (this.#o.onMapError === "skip") {
              // No reason text: nats-server before 2.10.4 ignores "+TERM <reason>".
              m.term();
              this.#acked(m);
              return;
            }
            m.nak();
            this.#fail(err);
            return;
          }
          if (this.#nc.isClosed()) return; // Nothing can be acked; the run loop fails.
          if (this.#stopping) {
            // Give the event back at once rather than after ack_wait.
            m.nak();
            return;
          }
          this.#s.retries++;
          this.#s.lastError = describe(err);
          this.#setState("retrying");
          this.#inRetry = true;
          await pause(delay, this.#abort.signal);
          this.#inRetry = false;
          delay = Math.min(delay * 2, this.#o.maxRetryDelayMs);
        }
      }
      try {
        await m.ackAck();
      } catch (err) {
        // The write is in the target: a redelivery will be skipped by the fence.
        this.#s.lastError = `ack of event ${m.seq} unconfirmed: ${describe(err)}`;
      }
      this.#acked(m);
      if (this.#s.state === "retrying") this.#setState("running");
    } finally {
      clearInterval(keepAlive);
      this.#inFlight = false;
      this.#notify();
    }
  }

  #acked(m: JsMsg): void {
    this.#s.events++;
    this.#lastAcked = Math.max(this.#lastAcked, m.seq);
    this.#s.checkpoint = Math.max(this.#s.checkpoint, m.seq);
    this.#s.lag = m.info.pending;
  }
}
