/**
 * The target side of a projection: a KV bucket whose entries carry, in
 * message headers, the source sequence (and source incarnation) that
 * produced them, so that every write can be fenced — a repeated or older
 * source event never overwrites a newer result — and compare-and-set on the
 * entry's revision keeps a fold from losing a concurrent write.
 *
 * The values themselves stay plain (no wrapper): edge caches and the
 * `nats kv` CLI read them like any other entry and ignore the headers.
 *
 * @module
 */
import type { JetStreamClient, JetStreamManager, MsgRequest, StoredMsg } from "@nats-io/jetstream";
import { headers as natsHeaders } from "@nats-io/nats-core";
import { LRUCache } from "lru-cache";
import { assertKey } from "../keys.ts";
import { isWrongLastSequence } from "../nats_errors.ts";
import { ConflictError, ProjectionMapError } from "../errors.ts";
import { describe } from "../describe.ts";
import type { Operation } from "../types.ts";
import {
  KV_OPERATION_HEADER,
  kvStreamName,
  kvSubject,
  kvSubjectPrefix,
  operationOf,
} from "../kv_layout.ts";
import type {
  Projection,
  ProjectionContext,
  ProjectionEntry,
  ProjectionEvent,
  ProjectionWrite,
} from "./types.ts";

/** Header holding the source sequence that produced a target entry. */
export const SOURCE_SEQ_HEADER = "Kvedge-Source-Seq";
/**
 * Header holding the source incarnation, `<stream>@<created>`: sequences of a
 * deleted-and-recreated stream start again at 1 and are not comparable with
 * the old ones.
 */
export const SOURCE_EPOCH_HEADER = "Kvedge-Source-Epoch";

/** A fold that loses this many compare-and-sets in a row gives the event back for a later retry. */
const MAX_CONFLICTS_PER_EVENT = 64;

/** What the target holds for one key, as last read or written. */
export interface TargetState {
  key: string;
  /** Revision of the key's latest message; 0 when the key has none. */
  revision: number;
  /** Operation of that message; `undefined` when there is none. */
  operation: Operation | undefined;
  /** The stored bytes of a `PUT`. */
  data: Uint8Array | undefined;
  /** Source sequence recorded by the projection that wrote it; 0 when none. */
  sourceSeq: number;
  /** Source incarnation recorded with it, if any. */
  sourceEpoch: string | undefined;
  /** When the message was stored, epoch ms (0 when there is none). */
  createdMs: number;
}

/** The fence that a write carries. */
export interface SourcePosition {
  /** Sequence of the source event. */
  seq: number;
  /** Incarnation of the source stream. */
  epoch: string;
}

/** Options of {@linkcode ProjectionTarget}. */
export interface ProjectionTargetStoreOptions {
  /**
   * How many keys' latest states are remembered between events (LRU), so a
   * fold on a hot key needs no read before its write. Compare-and-set makes
   * a stale memory harmless: it costs one conflict and one re-read. 0 turns
   * it off. Default 10 000.
   */
  cacheMaxKeys?: number;
  /**
   * Subject prefix of writes, ending in `.`; default `$KV.<bucket>.`. A
   * runner in a region writes to the hub's bucket through
   * `$JS.<hubDomain>.API.$KV.<bucket>.`.
   */
  writePrefix?: string;
}

/**
 * Reads and fenced writes on one target bucket, through the standard KV
 * layout (`KV_<bucket>` stream, `$KV.<bucket>.<key>` subjects). The
 * constructor does no I/O.
 *
 * @example
 * ```ts ignore
 * import { jetstream, jetstreamManager } from "@nats-io/jetstream";
 * const target = new ProjectionTarget(await jetstreamManager(nc), jetstream(nc), "order-summary");
 * const state = await target.read("order.1");
 * await target.put("order.1", bytes, { seq: 42, epoch: "ORDERS@2025-01-01T00:00:00Z" }, state.revision);
 * ```
 */
export class ProjectionTarget {
  readonly #jsm: JetStreamManager;
  readonly #js: JetStreamClient;
  readonly #bucket: string;
  readonly #stream: string;
  readonly #cache: LRUCache<string, TargetState> | undefined;
  readonly #writePrefix: string;

  /** Builds the accessor; no I/O. */
  constructor(
    jsm: JetStreamManager,
    js: JetStreamClient,
    bucket: string,
    options: ProjectionTargetStoreOptions = {},
  ) {
    this.#jsm = jsm;
    this.#js = js;
    this.#bucket = bucket;
    this.#stream = kvStreamName(bucket);
    this.#writePrefix = options.writePrefix ?? kvSubjectPrefix(bucket);
    const max = options.cacheMaxKeys ?? 10_000;
    this.#cache = max > 0 ? new LRUCache<string, TargetState>({ max }) : undefined;
  }

  /** Name of the target KV bucket. */
  get bucket(): string {
    return this.#bucket;
  }

  /**
   * The key's latest state: remembered if known, else read from the stream
   * leader (never a direct get, which a lagging replica may answer).
   */
  async read(key: string, options: { fresh?: boolean } = {}): Promise<TargetState> {
    if (!options.fresh) {
      const known = this.#cache?.get(key);
      if (known) return known;
    }
    const sm = await this.#jsm.streams.getMessage(this.#stream, {
      last_by_subj: kvSubject(this.#bucket, key),
    });
    const state = sm === null ? emptyState(key) : stateOf(key, sm);
    this.#cache?.set(key, state);
    return state;
  }

  /**
   * The key's state just before `revision`: its message that precedes
   * `revision` in the stream (an empty state if none does), read from the
   * stream leader and not remembered. Used to refold an event whose earlier
   * attempt wrote some of its keys; it finds that message only while the
   * bucket's history keeps it (history 2 or more; targets are created with 10).
   */
  async readBefore(key: string, revision: number): Promise<TargetState> {
    const subject = kvSubject(this.#bucket, key);
    let before: StoredMsg | null = null;
    // A key holds at most `history` messages: a few requests, on a path taken
    // only after an interrupted event. STREAM.MSG.GET has had next_by_subj since 2.9.
    for (let seq = 1;;) {
      const sm = await this.#jsm.streams.getMessage(
        this.#stream,
        { seq, next_by_subj: subject } as unknown as MsgRequest,
      );
      if (sm === null || sm.seq >= revision) break;
      before = sm;
      seq = sm.seq + 1;
    }
    return before === null ? emptyState(key) : stateOf(key, before);
  }

  /** What is remembered of `key`, without I/O (`undefined` when nothing is). */
  remembered(key: string): TargetState | undefined {
    return this.#cache?.get(key);
  }

  /** Drops what is remembered of `key` (after a lost compare-and-set). */
  forget(key: string): void {
    this.#cache?.delete(key);
  }

  /**
   * Writes `data` for `key` with the fence headers, only if the key's latest
   * revision is `expectedRevision` (0: the key has no message). Throws the
   * NATS error on a lost compare-and-set (see `isWrongLastSequence`).
   */
  put(
    key: string,
    data: Uint8Array,
    position: SourcePosition,
    expectedRevision: number,
  ): Promise<number> {
    return this.#write(key, data, "PUT", position, expectedRevision);
  }

  /**
   * Writes a delete marker for `key` that carries the fence headers, so a
   * repeated older event cannot bring the key back; same compare-and-set as
   * {@linkcode put}.
   */
  delete(key: string, position: SourcePosition, expectedRevision: number): Promise<number> {
    return this.#write(key, new Uint8Array(0), "DEL", position, expectedRevision);
  }

  async #write(
    key: string,
    data: Uint8Array,
    operation: "PUT" | "DEL",
    position: SourcePosition,
    expectedRevision: number,
  ): Promise<number> {
    const h = natsHeaders();
    h.set(SOURCE_SEQ_HEADER, String(position.seq));
    h.set(SOURCE_EPOCH_HEADER, position.epoch);
    if (operation === "DEL") h.set(KV_OPERATION_HEADER, "DEL");
    let ack;
    try {
      ack = await this.#js.publish(this.#writePrefix + key, data, {
        headers: h,
        expect: { lastSubjectSequence: expectedRevision },
      });
    } catch (err) {
      this.#cache?.delete(key);
      throw err;
    }
    this.#cache?.set(key, {
      key,
      revision: ack.seq,
      operation,
      data: operation === "PUT" ? data : undefined,
      sourceSeq: position.seq,
      sourceEpoch: position.epoch,
      createdMs: Date.now(),
    });
    return ack.seq;
  }
}

function emptyState(key: string): TargetState {
  return {
    key,
    revision: 0,
    operation: undefined,
    data: undefined,
    sourceSeq: 0,
    sourceEpoch: undefined,
    createdMs: 0,
  };
}

function stateOf(key: string, sm: StoredMsg): TargetState {
  const h = sm.header;
  const operation = operationOf(h);
  const seqText = h?.get(SOURCE_SEQ_HEADER) ?? "";
  const seq = /^\d+$/.test(seqText) ? Number(seqText) : 0;
  return {
    key,
    revision: sm.seq,
    operation,
    data: operation === "PUT" ? sm.data : undefined,
    sourceSeq: seq,
    sourceEpoch: h?.get(SOURCE_EPOCH_HEADER) || undefined,
    createdMs: sm.time.getTime(),
  };
}

/**
 * Whether the target already holds the result of this source event or of a
 * later one (same source incarnation): then the write is skipped.
 */
export function isFenced(state: TargetState, position: SourcePosition): boolean {
  return state.sourceEpoch === position.epoch && state.sourceSeq >= position.seq;
}

/** What applying one event did. */
export interface ApplyOutcome {
  /** Writes made (puts and delete markers). */
  applied: number;
  /** Writes skipped because the target already held this event's result or a later one. */
  skipped: number;
  /** Whether `map` returned nothing (the event does not concern the target). */
  ignored: boolean;
  /** Compare-and-sets lost (each one re-ran `map` on fresh state). */
  conflicts: number;
}

/** One normalized write. */
interface Write {
  key: string;
  delete: boolean;
  data: Uint8Array | undefined;
}

/**
 * Applies one source event to the target, idempotently:
 *
 * 1. `map(event, ctx)` runs; `ctx.get()` reads target states and remembers
 *    them (the fold's inputs). A key this very event already wrote (an
 *    earlier attempt was interrupted between its writes) is shown as it was
 *    before the event, so every attempt folds on the same inputs.
 * 2. For each key returned: if the target's entry already carries this
 *    event's sequence or a later one (same incarnation), the write is skipped.
 * 3. Otherwise it is written with compare-and-set on the revision the fold
 *    saw. A lost compare-and-set means someone else wrote in between: the
 *    state is re-read and `map` runs again.
 *
 * Failures of `map` or of its result are {@linkcode ProjectionMapError}s;
 * NATS failures propagate unchanged (the caller retries).
 *
 * @example
 * ```ts ignore
 * const outcome = await applyEvent(target, projection, event, "ORDERS@2025-01-01T00:00:00Z");
 * ```
 */
export async function applyEvent<V>(
  target: ProjectionTarget,
  projection: Projection<V>,
  event: ProjectionEvent,
  epoch: string,
  signal: AbortSignal = new AbortController().signal,
): Promise<ApplyOutcome> {
  const position: SourcePosition = { seq: event.seq, epoch };
  const outcome: ApplyOutcome = { applied: 0, skipped: 0, ignored: false, conflicts: 0 };
  attempt: for (;;) {
    const seen = new Map<string, TargetState>();
    // What `map` is shown of each key: its state before this event.
    const views = new Map<string, TargetState>();
    // Keys whose state came from memory: a write to one is checked by its
    // compare-and-set, a key only read must be checked before writing others.
    const fromMemory = new Set<string>();
    let worldError: unknown;
    const ctx: ProjectionContext<V> = {
      signal,
      get: async (key: string): Promise<ProjectionEntry<V> | undefined> => {
        assertKey(key, `read "${key}" from projection target "${target.bucket}"`);
        let state = seen.get(key);
        if (!state) {
          state = target.remembered(key);
          if (state) fromMemory.add(key);
          else {
            try {
              state = await target.read(key, { fresh: true });
            } catch (err) {
              worldError = err;
              throw err;
            }
          }
          seen.set(key, state);
        }
        let view = views.get(key);
        if (!view) {
          view = state;
          if (state.sourceEpoch === epoch && state.sourceSeq === event.seq) {
            // This event's own write, left by an attempt that did not finish
            // (a kill, a lost connection, a lost compare-and-set on another
            // key): the fold reads what the key held before it, as that
            // attempt did, so the event's other keys get the same values.
            try {
              view = await target.readBefore(key, state.revision);
            } catch (err) {
              worldError = err;
              throw err;
            }
          }
          views.set(key, view);
        }
        return visibleEntry(view, epoch, projection);
      },
    };
    let result;
    try {
      result = await projection.map(event, ctx);
    } catch (err) {
      // A read failure that surfaced through map is the world's, not the map's.
      if (worldError !== undefined) throw worldError;
      throw new ProjectionMapError(
        `Cannot apply event ${event.seq} of projection "${projection.name}": map threw ${
          describe(err)
        }`,
        event.seq,
        err,
      );
    }
    const writes = normalize(result, projection, event.seq);
    if (writes.length === 0) {
      outcome.ignored = true;
      return outcome;
    }
    const written = new Set(writes.map((w) => w.key));
    for (const key of fromMemory) {
      if (written.has(key)) continue;
      const now = await target.read(key, { fresh: true });
      if (now.revision !== seen.get(key)!.revision) {
        // Another runner moved a key this fold only read: fold again on the real value.
        outcome.conflicts++;
        continue attempt;
      }
    }
    for (const w of writes) {
      let state = seen.get(w.key);
      if (!state) {
        state = await target.read(w.key);
        seen.set(w.key, state);
      }
      if (isFenced(state, position)) {
        outcome.skipped++;
        continue;
      }
      try {
        if (w.delete) await target.delete(w.key, position, state.revision);
        else await target.put(w.key, w.data!, position, state.revision);
        outcome.applied++;
      } catch (err) {
        if (!isWrongLastSequence(err)) throw err;
        outcome.conflicts++;
        target.forget(w.key);
        if (outcome.conflicts >= MAX_CONFLICTS_PER_EVENT) {
          throw new ConflictError(
            `Cannot apply event ${event.seq} of projection "${projection.name}": ` +
              `"${w.key}" changed under it ${outcome.conflicts} times in a row`,
            { key: w.key, expected: state.revision, cause: err },
          );
        }
        // Writes already made for this event are fenced now and will be skipped.
        continue attempt;
      }
    }
    return outcome;
  }
}

/** The entry `map` sees: only values this projection's source incarnation produced. */
function visibleEntry<V>(
  state: TargetState,
  epoch: string,
  projection: Projection<V>,
): ProjectionEntry<V> | undefined {
  // An entry from another incarnation of the source (or a foreign writer) is
  // not a valid fold input: the fold restarts from nothing, like a replay.
  if (state.operation !== "PUT" || state.sourceEpoch !== epoch || state.data === undefined) {
    return undefined;
  }
  return {
    key: state.key,
    value: projection.codec.decode(state.data),
    revision: state.revision,
    sourceSeq: state.sourceSeq,
    createdMs: state.createdMs,
  };
}

function normalize<V>(result: unknown, projection: Projection<V>, seq: number): Write[] {
  if (result === null || result === undefined) return [];
  const items = Array.isArray(result) ? result : [result];
  const fail = (reason: string, cause?: unknown): never => {
    throw new ProjectionMapError(
      `Cannot apply event ${seq} of projection "${projection.name}": ${reason}`,
      seq,
      cause,
    );
  };
  const keys = new Set<string>();
  const writes: Write[] = [];
  for (const item of items as unknown[]) {
    if (item === null || item === undefined) continue;
    if (typeof item !== "object") {
      fail("map must return { key, value }, { key, delete: true } or null");
    }
    const w = item as Partial<ProjectionWrite<V>> & { delete?: unknown; value?: unknown };
    try {
      assertKey(w.key, `write the projection's target`);
    } catch (err) {
      fail(err instanceof Error ? err.message : String(err), err);
    }
    const key = w.key as string;
    if (keys.has(key)) fail(`map returned key "${key}" twice`);
    keys.add(key);
    if (w.delete === true) {
      writes.push({ key, delete: true, data: undefined });
      continue;
    }
    if (!("value" in w) || w.value === undefined) {
      fail(`map returned key "${key}" without a value (use { key, delete: true } to delete)`);
    }
    let data: Uint8Array;
    try {
      data = projection.codec.encode(w.value as V);
    } catch (err) {
      return fail(`the value for "${key}" cannot be encoded: ${describe(err)}`, err);
    }
    writes.push({ key, delete: false, data });
  }
  return writes;
}
