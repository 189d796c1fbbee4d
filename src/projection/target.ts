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
import type { Operation } from "../types.ts";
import {
  KV_OPERATION_HEADER,
  kvStreamName,
  kvSubject,
  kvSubjectPrefix,
  operationOf,
} from "../kv_layout.ts";

/** Header holding the source sequence that produced a target entry. */
export const SOURCE_SEQ_HEADER = "Kvedge-Source-Seq";
/**
 * Header holding the source incarnation, `<stream>@<created>`: sequences of a
 * deleted-and-recreated stream start again at 1 and are not comparable with
 * the old ones.
 */
export const SOURCE_EPOCH_HEADER = "Kvedge-Source-Epoch";

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

/**
 * What a fenced write carries and expects: the source event it records, and
 * the key's latest revision it must find (0: the key has no message).
 */
export interface Fence {
  /** The source event the write records. */
  position: SourcePosition;
  /** The key's revision the compare-and-set expects; 0 when it must have none. */
  expectedRevision: number;
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

/** What {@linkcode ProjectionTarget} reads and writes through, and how it remembers. */
export interface ProjectionTargetOptions extends ProjectionTargetStoreOptions {
  /** Reads: the stream leader's `STREAM.MSG.GET`. */
  jsm: JetStreamManager;
  /** Writes: publishes with the fence headers and `expect.lastSubjectSequence`. */
  js: JetStreamClient;
  /** Name of the target KV bucket. */
  bucket: string;
}

/**
 * Reads and fenced writes on one target bucket, through the standard KV
 * layout (`KV_<bucket>` stream, `$KV.<bucket>.<key>` subjects). The
 * constructor does no I/O.
 *
 * @example
 * ```ts ignore
 * import { jetstream, jetstreamManager } from "@nats-io/jetstream";
 * const target = new ProjectionTarget({
 *   jsm: await jetstreamManager(nc),
 *   js: jetstream(nc),
 *   bucket: "order-summary",
 * });
 * const state = await target.read("order.1");
 * const position = { seq: 42, epoch: "ORDERS@2025-01-01T00:00:00Z" };
 * await target.put("order.1", { data: bytes, fence: { position, expectedRevision: state.revision } });
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
  constructor(options: ProjectionTargetOptions) {
    const { bucket } = options;
    this.#jsm = options.jsm;
    this.#js = options.js;
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
   * revision is `fence.expectedRevision`. Throws the NATS error on a lost
   * compare-and-set (see `isWrongLastSequence`).
   */
  put(key: string, write: { data: Uint8Array; fence: Fence }): Promise<number> {
    return this.#write(key, write);
  }

  /**
   * Writes a delete marker for `key` that carries the fence headers, so a
   * repeated older event cannot bring the key back; same compare-and-set as
   * {@linkcode put}.
   */
  delete(key: string, fence: Fence): Promise<number> {
    return this.#write(key, { fence, data: undefined });
  }

  /** A `PUT` of `data`, or a delete marker when `data` is `undefined`. */
  async #write(
    key: string,
    { fence, data }: { fence: Fence; data: Uint8Array | undefined },
  ): Promise<number> {
    const { position } = fence;
    const operation = data === undefined ? "DEL" : "PUT";
    const h = natsHeaders();
    h.set(SOURCE_SEQ_HEADER, String(position.seq));
    h.set(SOURCE_EPOCH_HEADER, position.epoch);
    if (operation === "DEL") h.set(KV_OPERATION_HEADER, "DEL");
    let ack;
    try {
      ack = await this.#js.publish(this.#writePrefix + key, data ?? new Uint8Array(0), {
        headers: h,
        expect: { lastSubjectSequence: fence.expectedRevision },
      });
    } catch (err) {
      this.#cache?.delete(key);
      throw err;
    }
    this.#cache?.set(key, {
      key,
      revision: ack.seq,
      operation,
      data,
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
