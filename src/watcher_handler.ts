/**
 * The watcher's contract: how its next consumer starts, what it asks of its
 * handler (every callback synchronous) and its options.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { JetStreamManager, StreamInfo } from "@nats-io/jetstream";
import type { Operation } from "./types.ts";

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
  /**
   * The stream's creation time changed: a new incarnation of the bucket. False
   * for the other reasons to clear (the same stream's sequence went backwards,
   * or its replicas disagree): the re-read may bring what was applied again.
   */
  recreated?: boolean;
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

/** Where a watcher stands before its first start (`Watcher.place`); fields left out are kept. */
export interface WatcherPlacement {
  /** The bucket's epoch: its stream's creation time. */
  epoch?: string;
  /** The last applied revision. */
  lastRevision?: number;
  /** The stream's last sequence read before the first start. */
  streamLastSeq?: number;
  /** The stream's message count in that same read. */
  streamMessages?: number;
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
