/**
 * Projections: keep a KV bucket derived from a stream of events (or from
 * another bucket's changes), the way "cache producers" fed a compacted topic.
 *
 * `defineProjection()` describes one (no I/O); `runProjection()` runs it on a
 * NATS connection: a durable pull consumer with explicit acks reads the
 * source in order, `map()` turns each event into a write, the write is fenced
 * by the event's source sequence and compare-and-set on the target revision,
 * and only then is the event acked. The consumer's ack floor is the
 * checkpoint.
 *
 * Guarantees: at-least-once delivery, idempotent application (a redelivered,
 * replayed or older event never changes a key that already holds its result
 * or a later one), and a replay from the start (`fromStart`) reproduces the
 * same target state as long as the source still holds the events and `map`
 * is deterministic (use `event.timestampMs`, never the wall clock).
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
import { jsonCodec } from "./codec.ts";
import { KvedgeError } from "./errors.ts";
import { bucketProblem, filterProblem } from "./keys.ts";
import { mapNatsError } from "./errors_map.ts";
import type { Codec, CreateBucketOptions, Operation, SharedConnection } from "./types.ts";
import { applyEvent, ProjectionMapError, ProjectionTarget } from "./projection_target.ts";
import { kvStreamName, kvSubject, kvSubjectPrefix, operationOf } from "./kv_layout.ts";

/** A JetStream stream of domain events as the source. */
export interface ProjectionStreamSource {
  /** Stream name, e.g. `"ORDERS"` (`[-\w]+`). */
  stream: string;
  /** Subject filter within the stream, e.g. `"orders.>"`. Default: every subject of the stream. */
  subject?: string;
}

/** A KV bucket's changes (puts, deletes, purges) as the source. */
export interface ProjectionBucketSource {
  /** Bucket name (`[-\w]+`); its stream is `KV_<bucket>`. */
  bucket: string;
  /** Key filter (NATS wildcards), e.g. `"user.>"`. Default `">"`: every key. */
  keys?: string;
}

/** Where a projection reads from: a stream (or subject) of events, or a KV bucket's changes. */
export type ProjectionSource = ProjectionStreamSource | ProjectionBucketSource;

/** Where a projection writes to. */
export interface ProjectionTargetOptions {
  /** Target KV bucket (`[-\w]+`). Must not be the source bucket. */
  bucket: string;
  /**
   * Create the bucket when it does not exist: `true` for the defaults of
   * {@link CreateBucketOptions}, settings, or `false` to require that it
   * exists. An existing bucket is never changed. Default `true`.
   */
  create?: boolean | CreateBucketOptions;
}

/**
 * One source event as `map()` sees it.
 *
 * @example
 * ```ts
 * import type { ProjectionEvent } from "./projection.ts";
 * function orderId(event: ProjectionEvent): string | undefined {
 *   return event.json<{ orderId?: string }>().orderId;
 * }
 * ```
 */
export interface ProjectionEvent {
  /** Sequence of the event in the source stream: the fence of every write it causes. */
  readonly seq: number;
  /** The subject it was published on (for a bucket source, `$KV.<bucket>.<key>`). */
  readonly subject: string;
  /** Bucket source: the key that changed. Stream source: `undefined`. */
  readonly key: string | undefined;
  /** Bucket source: `PUT`, `DEL` or `PURGE`. Stream source: always `PUT`. */
  readonly operation: Operation;
  /** The payload (empty for a delete or purge). */
  readonly data: Uint8Array;
  /** When the source stored the event, epoch ms: the deterministic "now" of a fold. */
  readonly timestampMs: number;
  /** Whether this is not the first delivery (the write may already be in the target). */
  readonly redelivered: boolean;
  /** A header of the event, or `undefined`. */
  header(name: string): string | undefined;
  /** The payload parsed as JSON (throws on invalid JSON). */
  json<T = unknown>(): T;
  /** The payload as UTF-8 text. */
  string(): string;
}

/**
 * The current target entry of a key, as `ctx.get()` returns it.
 *
 * @example
 * ```ts
 * import type { ProjectionEntry } from "./projection.ts";
 * const e: ProjectionEntry<number> = { key: "n", value: 1, revision: 7, sourceSeq: 3, createdMs: 0 };
 * ```
 */
export interface ProjectionEntry<V> {
  /** The key. */
  key: string;
  /** The decoded value. */
  value: V;
  /** Its revision in the target bucket. */
  revision: number;
  /** Sequence of the source event that produced it. */
  sourceSeq: number;
  /** When it was written, epoch ms. */
  createdMs: number;
}

/**
 * What `map()` gets besides the event.
 *
 * @example
 * ```ts
 * import type { ProjectionContext } from "./projection.ts";
 * async function count(ctx: ProjectionContext<number>, key: string): Promise<number> {
 *   return ((await ctx.get(key))?.value ?? 0) + 1;
 * }
 * ```
 */
export interface ProjectionContext<V> {
  /**
   * The target's current entry for `key` (absent, deleted, or written from
   * another incarnation of the source: `undefined`). A fold builds on it; the
   * write then only lands if the entry is still that one (compare-and-set),
   * otherwise `map` runs again on the new entry.
   */
  get(key: string): Promise<ProjectionEntry<V> | undefined>;
  /** Aborted when the projection stops; a slow `map` may give up. */
  signal: AbortSignal;
}

/**
 * One write a projection makes: a value for a key, or a delete.
 *
 * @example
 * ```ts
 * import type { ProjectionWrite } from "./projection.ts";
 * const put: ProjectionWrite<number> = { key: "a", value: 1 };
 * const del: ProjectionWrite<number> = { key: "a", delete: true };
 * ```
 */
export type ProjectionWrite<V> = { key: string; value: V } | { key: string; delete: true };

/**
 * What `map()` returns: a write, several writes, or `null`/`undefined` when
 * the event does not concern the target. Each key is fenced on its own, so
 * after a crash between two writes of one event only the missing one is made;
 * a key's new value should therefore depend on the event and on that key's
 * own entry, not on another key the same event also writes.
 *
 * @example
 * ```ts
 * import type { ProjectionResult } from "./projection.ts";
 * const none: ProjectionResult<number> = null;
 * ```
 */
export type ProjectionResult<V> =
  | ProjectionWrite<V>
  | readonly ProjectionWrite<V>[]
  | null
  | undefined;

/**
 * The function from events to writes. It must be deterministic in `event`
 * and what `ctx.get()` returns, so a replay reproduces the same state.
 *
 * @example
 * ```ts
 * import type { ProjectionMap } from "./projection.ts";
 * const latest: ProjectionMap<unknown> = (event) => ({ key: event.subject, value: event.json() });
 * ```
 */
export type ProjectionMap<V> = (
  event: ProjectionEvent,
  ctx: ProjectionContext<V>,
) => ProjectionResult<V> | Promise<ProjectionResult<V>>;

/** Options of {@linkcode defineProjection}. */
export interface ProjectionOptions<V> {
  /**
   * Name of the projection (`[-\w]+`); it names the durable consumer
   * `projection_<name>` that holds the checkpoint, so two projections with
   * the same name share one checkpoint.
   */
  name: string;
  /** Where events come from. */
  source: ProjectionSource;
  /** The bucket written: its name, or settings. */
  target: string | ProjectionTargetOptions;
  /** Events to writes (sync or async). */
  map: ProjectionMap<V>;
  /** How target values are encoded. Default JSON. */
  codec?: Codec<V>;
}

/**
 * A validated projection definition (from {@linkcode defineProjection}). It
 * holds no resources; {@linkcode runProjection} runs it.
 *
 * @example
 * ```ts
 * import { defineProjection, type Projection } from "./projection.ts";
 * const p: Projection<number> = defineProjection<number>({
 *   name: "counts",
 *   source: { stream: "EVENTS" },
 *   target: "counts",
 *   map: () => null,
 * });
 * console.log(p.target.bucket);
 * ```
 */
export interface Projection<V> {
  /** Marks values made by {@linkcode defineProjection}. */
  readonly kind: "projection";
  /** The name. */
  readonly name: string;
  /** The source, normalized. */
  readonly source: Readonly<ProjectionStreamSource> | Readonly<Required<ProjectionBucketSource>>;
  /** The target, normalized. */
  readonly target: Readonly<Required<ProjectionTargetOptions>>;
  /** The map. */
  readonly map: ProjectionMap<V>;
  /** The target codec. */
  readonly codec: Codec<V>;
}

const NAME = /^[-\w]+$/;

/**
 * Describes a projection: checks the options and returns a frozen
 * definition. No I/O; run it with {@linkcode runProjection} or
 * `deno task project <module>`.
 *
 * @example
 * ```ts
 * import { defineProjection } from "./projection.ts";
 *
 * interface Summary { status: string; items: number; total: number; updatedAt: string }
 *
 * export default defineProjection<Summary>({
 *   name: "order-summary",
 *   source: { stream: "ORDERS", subject: "orders.>" },
 *   target: "order-summary",
 *   async map(event, ctx) {
 *     const e = event.json<{ type: string; orderId: string; qty?: number; price?: number }>();
 *     const key = `order.${e.orderId}`;
 *     if (e.type === "cancelled") return { key, delete: true };
 *     const prev = (await ctx.get(key))?.value ?? { status: "created", items: 0, total: 0, updatedAt: "" };
 *     const updatedAt = new Date(event.timestampMs).toISOString();
 *     if (e.type === "item_added") {
 *       const qty = e.qty ?? 0;
 *       return { key, value: { ...prev, items: prev.items + qty, total: prev.total + qty * (e.price ?? 0), updatedAt } };
 *     }
 *     return { key, value: { ...prev, status: e.type, updatedAt } };
 *   },
 * });
 * ```
 */
export function defineProjection<V = unknown>(options: ProjectionOptions<V>): Projection<V> {
  const fail = (reason: string): never => {
    throw new TypeError(`Cannot define projection: ${reason}`);
  };
  if (options === null || typeof options !== "object") fail("options must be an object");
  const { name, map } = options;
  if (typeof name !== "string" || !NAME.test(name) || name.length > 200) {
    fail(`"name" must be 1 to 200 letters, digits, '-' or '_', got ${JSON.stringify(name)}`);
  }
  if (typeof map !== "function") fail(`"map" must be a function`);
  const source = normalizeSource(options.source, fail);
  const target = normalizeTarget(options.target, fail);
  if ("bucket" in source && source.bucket === target.bucket) {
    fail(`the target bucket "${target.bucket}" is also the source (it would feed itself)`);
  }
  const codec = options.codec ?? jsonCodec<V>();
  if (typeof codec.encode !== "function" || typeof codec.decode !== "function") {
    fail(`"codec" must have encode() and decode()`);
  }
  return Object.freeze({ kind: "projection" as const, name, source, target, map, codec });
}

/**
 * Whether `value` is a projection made by {@linkcode defineProjection} (in
 * this or another copy of kvedge).
 *
 * @example
 * ```ts
 * import { isProjection } from "./projection.ts";
 * console.log(isProjection({})); // false
 * ```
 */
export function isProjection(value: unknown): value is Projection<unknown> {
  if (typeof value !== "object" || value === null) return false;
  const p = value as Partial<Projection<unknown>>;
  return p.kind === "projection" && typeof p.map === "function" && typeof p.name === "string";
}

function normalizeSource(
  source: unknown,
  fail: (reason: string) => never,
): Readonly<ProjectionStreamSource> | Readonly<Required<ProjectionBucketSource>> {
  if (source === null || typeof source !== "object") {
    return fail(`"source" must be { stream, subject? } or { bucket, keys? }`);
  }
  const s = source as Partial<ProjectionStreamSource & ProjectionBucketSource>;
  if ((s.stream === undefined) === (s.bucket === undefined)) {
    return fail(`"source" must have exactly one of "stream" and "bucket"`);
  }
  if (s.bucket !== undefined) {
    const problem = bucketProblem(s.bucket);
    if (problem) fail(`"source.bucket": ${problem}`);
    const keys = s.keys ?? ">";
    const keyProblem = filterProblem(keys);
    if (keyProblem) fail(`"source.keys": ${keyProblem}`);
    return Object.freeze({ bucket: s.bucket, keys });
  }
  if (typeof s.stream !== "string" || !NAME.test(s.stream)) {
    fail(`"source.stream" must be letters, digits, '-' or '_', got ${JSON.stringify(s.stream)}`);
  }
  if (s.subject !== undefined) {
    const problem = subjectProblem(s.subject);
    if (problem) fail(`"source.subject": ${problem}`);
  }
  return Object.freeze({ stream: s.stream as string, subject: s.subject });
}

function subjectProblem(subject: unknown): string | undefined {
  if (typeof subject !== "string" || subject.length === 0) return "must be a non-empty string";
  if (/\s/.test(subject)) return "must not contain whitespace";
  const tokens = subject.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return "must not contain an empty token";
    if ((t.includes("*") || t.includes(">")) && t.length !== 1) {
      return "wildcards must be whole tokens";
    }
    if (t === ">" && i !== tokens.length - 1) return "'>' must be the last token";
  }
  return undefined;
}

function normalizeTarget(
  target: unknown,
  fail: (reason: string) => never,
): Readonly<Required<ProjectionTargetOptions>> {
  const t = typeof target === "string" ? { bucket: target } : target;
  if (t === null || typeof t !== "object") {
    return fail(`"target" must be a bucket name or { bucket, create? }`);
  }
  const { bucket, create } = t as ProjectionTargetOptions;
  const problem = bucketProblem(bucket);
  if (problem) fail(`"target.bucket": ${problem}`);
  if (
    create !== undefined && typeof create !== "boolean" &&
    (create === null || typeof create !== "object")
  ) {
    fail(`"target.create" must be a boolean or bucket settings`);
  }
  return Object.freeze({ bucket, create: create ?? true });
}

/** The lifecycle of a running projection. */
export type ProjectionState =
  | "starting"
  | "running"
  | "retrying"
  | "stopping"
  | "stopped"
  | "failed";

/**
 * What `status()` returns: position, lag and counters.
 *
 * @example
 * ```ts
 * import type { ProjectionStatus } from "./projection.ts";
 * function behind(s: ProjectionStatus): boolean {
 *   return s.lag > 0;
 * }
 * ```
 */
export interface ProjectionStatus {
  /** The projection. */
  name: string;
  /** The source, e.g. `"stream ORDERS orders.>"` or `"bucket users >"`. */
  source: string;
  /** The target bucket. */
  target: string;
  /** The durable consumer holding the checkpoint. */
  consumer: string;
  /** Lifecycle state. */
  state: ProjectionState;
  /** When `state` last changed, epoch ms. */
  since: number;
  /** Source sequence of the checkpoint: every matching event up to it is applied (ack floor). */
  checkpoint: number;
  /** Last sequence of the source stream, as last seen. */
  sourceSeq: number;
  /** Matching source events not applied yet (pending plus in flight), as last seen. */
  lag: number;
  /** Source incarnation, `<stream>@<created>`. */
  epoch: string;
  /** Events processed (acked) by this runner. */
  events: number;
  /** Target writes made. */
  applied: number;
  /** Target writes skipped because the target already held that result or a later one. */
  skipped: number;
  /** Events `map` returned nothing for. */
  ignored: number;
  /** Compare-and-sets lost to another writer (each re-ran `map`). */
  conflicts: number;
  /** Attempts repeated after a NATS failure. */
  retries: number;
  /** Events whose `map` failed. */
  mapErrors: number;
  /** The last error, as a message. */
  lastError?: string;
}

/** Options of {@linkcode runProjection}. */
export interface RunProjectionOptions {
  /**
   * Replay: delete the durable consumer and read the source from its first
   * event. Keys already holding an event's result (or a later one) are
   * skipped, so replaying into a populated target changes nothing; replay
   * into an empty bucket to rebuild. Default `false`.
   */
  fromStart?: boolean;
  /**
   * How long the server waits for an ack before redelivering, in ms (the
   * consumer's `ack_wait`). The runner keeps an event alive while it works on
   * it, so this only bounds how soon a crashed runner's event is retried.
   * At least 1 000. Default 10 000.
   */
  ackWaitMs?: number;
  /** First pause before retrying after a NATS failure, in ms; doubles per failure. Default 250. */
  retryDelayMs?: number;
  /** Longest pause between retries, in ms. Default 5 000. */
  maxRetryDelayMs?: number;
  /**
   * What to do when `map` throws or returns something invalid: `"stop"` the
   * projection (state `failed`, the event stays unacked and is retried by the
   * next run), or `"skip"` the event (terminated, never redelivered) and go
   * on. Default `"stop"`: skipping silently would corrupt folds.
   */
  onMapError?: "stop" | "skip";
  /** How often lag and checkpoint are refreshed from the server, in ms; 0: only per event. Default 5 000. */
  statusIntervalMs?: number;
  /**
   * Target states remembered between events (LRU), saving a read per write
   * on hot keys; a stale one only costs a lost compare-and-set. 0 turns it
   * off. Default 10 000.
   */
  cacheMaxKeys?: number;
  /** Aborting it stops the projection as `stop()` does. */
  signal?: AbortSignal;
}

/**
 * A running projection.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { runProjection } from "./projection.ts";
 * import orders from "../examples/orders/projection.ts";
 * const nc = await connect({ servers: "nats://127.0.0.1:4222" });
 * await using run = await runProjection(nc, orders);
 * await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
 * console.log(run.status().lag); // 0
 * ```
 */
export interface ProjectionRunner extends AsyncDisposable {
  /** The projection run. */
  readonly projection: Projection<unknown>;
  /** Position, lag and counters (no I/O). */
  status(): ProjectionStatus;
  /**
   * Resolves once every source event that matched when it was called (and
   * any since) is applied, as confirmed by the server; rejects if the
   * projection fails or stops first, or with `signal`'s reason.
   */
  caughtUp(options?: { signal?: AbortSignal }): Promise<ProjectionStatus>;
  /** Resolves with the final status when the projection ends (stopped or failed). Never rejects. */
  closed(): Promise<ProjectionStatus>;
  /**
   * Graceful stop: no further events are applied; the one in flight is
   * finished and acked (or, if it is waiting for a retry, given back for
   * redelivery); the pull request in progress is let run out (at most 2 s
   * when idle), events it still brings are given back at once, so none is
   * left held by this runner. The connection stays open. Idempotent.
   */
  stop(): Promise<ProjectionStatus>;
  /** Same as {@linkcode ProjectionRunner.stop}. */
  close(): Promise<ProjectionStatus>;
}

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
 * import { defineProjection, runProjection } from "./projection.ts";
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

function resolveRunOptions(o: RunProjectionOptions): ResolvedRunOptions {
  if (o === null || typeof o !== "object") {
    throw new TypeError("Cannot run projection: options must be an object");
  }
  const int = (name: keyof RunProjectionOptions, value: unknown, dflt: number, min: number) => {
    if (value === undefined) return dflt;
    if (typeof value !== "number" || !Number.isInteger(value) || value < min) {
      throw new RangeError(
        `Cannot run projection: "${name}" must be an integer >= ${min}, got ${String(value)}`,
      );
    }
    return value;
  };
  const onMapError = o.onMapError ?? "stop";
  if (onMapError !== "stop" && onMapError !== "skip") {
    throw new TypeError(
      `Cannot run projection: "onMapError" must be "stop" or "skip", got ${String(onMapError)}`,
    );
  }
  const retryDelayMs = int("retryDelayMs", o.retryDelayMs, 250, 1);
  return {
    fromStart: o.fromStart === true,
    ackWaitMs: int("ackWaitMs", o.ackWaitMs, 10_000, 1_000),
    retryDelayMs,
    maxRetryDelayMs: Math.max(retryDelayMs, int("maxRetryDelayMs", o.maxRetryDelayMs, 5_000, 1)),
    onMapError,
    statusIntervalMs: int("statusIntervalMs", o.statusIntervalMs, 5_000, 0),
    cacheMaxKeys: int("cacheMaxKeys", o.cacheMaxKeys, 10_000, 0),
    signal: o.signal,
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

function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
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
