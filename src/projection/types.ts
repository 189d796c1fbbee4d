/**
 * The shapes of a projection: its source, target, events, `map` and what a
 * running one reports. Types only: `define.ts` builds a definition and
 * `runner.ts` runs it.
 *
 * @module
 */
import type { Codec, CreateBucketOptions, Operation } from "../types.ts";

/**
 * A JetStream stream of domain events as the source.
 *
 * @example
 * ```ts
 * import type { ProjectionStreamSource } from "../../projection.ts";
 * const source: ProjectionStreamSource = { stream: "ORDERS", subject: "orders.>" };
 * ```
 */
export interface ProjectionStreamSource {
  /** Stream name, e.g. `"ORDERS"` (`[-\w]+`). */
  stream: string;
  /** Subject filter within the stream, e.g. `"orders.>"`. Default: every subject of the stream. */
  subject?: string;
}

/**
 * A KV bucket's changes (puts, deletes, purges) as the source.
 *
 * @example
 * ```ts
 * import type { ProjectionBucketSource } from "../../projection.ts";
 * const source: ProjectionBucketSource = { bucket: "users", keys: "user.>" };
 * ```
 */
export interface ProjectionBucketSource {
  /** Bucket name (`[-\w]+`); its stream is `KV_<bucket>`. */
  bucket: string;
  /** Key filter (NATS wildcards), e.g. `"user.>"`. Default `">"`: every key. */
  keys?: string;
}

/**
 * Where a projection reads from: a stream (or subject) of events, or a KV bucket's changes.
 *
 * @example
 * ```ts
 * import type { ProjectionSource } from "../../projection.ts";
 * const sources: ProjectionSource[] = [{ stream: "ORDERS" }, { bucket: "users" }];
 * ```
 */
export type ProjectionSource = ProjectionStreamSource | ProjectionBucketSource;

/**
 * Where a projection writes to.
 *
 * @example
 * ```ts
 * import type { ProjectionTargetOptions } from "../../projection.ts";
 * const target: ProjectionTargetOptions = { bucket: "order-summary", create: { history: 1 } };
 * ```
 */
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
 * import type { ProjectionEvent } from "../../projection.ts";
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
 * import type { ProjectionEntry } from "../../projection.ts";
 * const e: ProjectionEntry<number> = { key: "n", value: 1, revision: 7, sourceSeq: 3, createdMs: 0 };
 * ```
 */
export interface ProjectionEntry<V> {
  /** Key in the target bucket. */
  key: string;
  /** Decoded with the projection's codec. */
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
 * import type { ProjectionContext } from "../../projection.ts";
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
 * import type { ProjectionWrite } from "../../projection.ts";
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
 * import type { ProjectionResult } from "../../projection.ts";
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
 * import type { ProjectionMap } from "../../projection.ts";
 * const latest: ProjectionMap<unknown> = (event) => ({ key: event.subject, value: event.json() });
 * ```
 */
export type ProjectionMap<V> = (
  event: ProjectionEvent,
  ctx: ProjectionContext<V>,
) => ProjectionResult<V> | Promise<ProjectionResult<V>>;

/**
 * Options of {@linkcode defineProjection}.
 *
 * @example
 * ```ts
 * import { defineProjection, type ProjectionOptions } from "../../projection.ts";
 * const options: ProjectionOptions<{ n: number }> = {
 *   name: "counts",
 *   source: { stream: "EVENTS" },
 *   target: "counts",
 *   map: (event) => ({ key: event.subject, value: { n: 1 } }),
 * };
 * const counts = defineProjection(options);
 * ```
 */
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
 * import { defineProjection, type Projection } from "../../projection.ts";
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
  /** Also names the durable consumer, `projection_<name>`. */
  readonly name: string;
  /** The source, normalized. */
  readonly source: Readonly<ProjectionStreamSource> | Readonly<Required<ProjectionBucketSource>>;
  /** The target, normalized. */
  readonly target: Readonly<Required<ProjectionTargetOptions>>;
  /** Turns one source event into target writes. */
  readonly map: ProjectionMap<V>;
  /** Encodes target values (default JSON). */
  readonly codec: Codec<V>;
}

/**
 * The lifecycle of a running projection.
 *
 * @example
 * ```ts
 * import type { ProjectionState } from "../../projection.ts";
 * function healthy(state: ProjectionState): boolean {
 *   return state === "running" || state === "starting";
 * }
 * ```
 */
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
 * import type { ProjectionStatus } from "../../projection.ts";
 * function behind(s: ProjectionStatus): boolean {
 *   return s.lag > 0;
 * }
 * ```
 */
export interface ProjectionStatus {
  /** The projection's name. */
  name: string;
  /** The source, e.g. `"stream ORDERS orders.>"` or `"bucket users >"`. */
  source: string;
  /** Name of the target KV bucket. */
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

/**
 * Options of {@linkcode runProjection}.
 *
 * @example
 * ```ts
 * import type { RunProjectionOptions } from "../../projection.ts";
 * const options: RunProjectionOptions = { fromStart: true, ackWaitMs: 30_000 };
 * ```
 */
export interface RunProjectionOptions {
  /**
   * Replay: delete the durable consumer and read the source from its first
   * event. An event whose keys (read or written) already hold its result or
   * a later event's is skipped, so replaying into a populated target changes
   * nothing; replay into an empty bucket to rebuild. Default `false`.
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
  /**
   * Run in a region over leaf nodes (docs/topologies.md): `connection` is to
   * the region's leaf node and the source and target buckets live on the hub,
   * in JetStream domain `hubDomain`. The source stream, the durable consumer
   * (the checkpoint) and the target reads go through the hub's domain API
   * (`$JS.<hubDomain>.API`); target writes, compare-and-set included, are
   * published to `$JS.<hubDomain>.API.$KV.<target>.<key>`. A regional mirror
   * of the source is not read: the fence's source incarnation and the
   * checkpoint must be the hub stream's, so that runners anywhere agree.
   * Default: not regional (everything through the connection's own domain).
   */
  region?: { hubDomain: string };
  /** Aborting it stops the projection as `stop()` does. */
  signal?: AbortSignal;
}

/**
 * A running projection.
 *
 * @example
 * ```ts ignore
 * import { connect } from "@nats-io/transport-node";
 * import { runProjection } from "../../projection.ts";
 * import orders from "../../examples/orders/projection.ts";
 * const nc = await connect({ servers: "nats://127.0.0.1:4222" });
 * await using run = await runProjection(nc, orders);
 * await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
 * console.log(run.status().lag); // 0
 * ```
 */
export interface ProjectionRunner extends AsyncDisposable {
  /** The definition this runner applies. */
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
