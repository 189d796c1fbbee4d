/**
 * Where the watcher's next consumer starts, decided from the stream as read
 * at a (re)start: resume after the last applied revision, or resync (the
 * bucket was recreated, its sequence went backwards, what was applied
 * diverged, or its history no longer reaches the next revision); and the
 * consumer's configuration for that start.
 *
 * @module
 */
import { nanos } from "@nats-io/nats-core";
import {
  AckPolicy,
  type ConsumerConfig,
  DeliverPolicy,
  ReplayPolicy,
  type StreamInfo,
} from "@nats-io/jetstream";
import type { ResyncRequest, StartFrom } from "./watcher_handler.ts";
import type { Ask } from "./watcher_phase.ts";

/** What the watcher knows of its position when it (re)starts. */
export interface WatcherPosition {
  /** The stream's creation time when last read; undefined before the first start. */
  epoch: string | undefined;
  /** The last revision delivered to the handler. */
  lastRev: number;
  /** The stream sequence of the last applied message when the watcher delivered it itself, else 0. */
  appliedSeq: number;
  /**
   * A rebuild asked for (a consumer's first message, or reconciliation's
   * revision check, disagreed with what was applied) or a re-read asked for
   * by `resync()`, not yet taken up.
   */
  ask: Ask;
}

/** The decision: resume at `from`, or rebuild for `request`. */
export type StartPlan =
  | { kind: "resume"; from: StartFrom }
  | {
    kind: "resync";
    request: ResyncRequest;
    /** A re-read asked for by `resync()` (not a changed stream). */
    reread: boolean;
  };

/**
 * Decides how the next consumer starts from the stream's `info` and the
 * watcher's position. `options.onHistoryGap` is asked only when the stream's
 * history no longer reaches the next revision (and nothing else forces a
 * resync).
 *
 * @example
 * ```ts ignore
 * const plan = planStart(info, position, { onHistoryGap: (first) => gapOk(first) });
 * ```
 */
export function planStart(
  info: StreamInfo,
  at: WatcherPosition,
  options: { onHistoryGap: (firstSeq: number) => boolean },
): StartPlan {
  const { onHistoryGap } = options;
  const created = info.created;
  const { first_seq: first, last_seq: last } = info.state;
  let resync: ResyncRequest | undefined;
  if (at.epoch !== undefined && created !== at.epoch) {
    resync = {
      reason: `bucket was recreated (created ${created})`,
      epochChanged: true,
      recreated: true,
    };
  } else if (last < at.lastRev) {
    resync = {
      reason: `stream sequence went backwards (last ${last} < applied ${at.lastRev})`,
      epochChanged: true,
    };
  } else if (at.ask.kind === "rebuild") {
    // What was applied does not compare with this stream's revisions: rebuild from scratch.
    resync = { reason: at.ask.reason, epochChanged: true };
  } else if (at.lastRev + 1 < first && !onHistoryGap(first)) {
    resync = {
      reason: `history no longer reaches revision ${at.lastRev + 1} (first is ${first})`,
      epochChanged: false,
    };
  }
  // A re-read asked for by resync() delivers revisions the watcher may have
  // passed: they must reach the handler (its store keeps the newer of two).
  const ask = at.ask;
  const reread = resync === undefined && ask.kind === "reread";
  if (reread) resync = { reason: ask.reason, epochChanged: false };
  if (resync !== undefined) return { kind: "resync", request: resync, reread };
  // Start at the applied revision when we know what it held: the first
  // message then tells whether this consumer's replica agrees (the watcher's
  // resume check).
  const applied = at.appliedSeq;
  if (applied > 0 && applied === at.lastRev && applied >= first) {
    return { kind: "resume", from: { kind: "seq", seq: applied } };
  }
  return { kind: "resume", from: { kind: "seq", seq: at.lastRev + 1 } };
}

/** What {@link consumerConfig} needs. */
export interface ConsumerSpec {
  /** The consumer's name. */
  name: string;
  /** Its delivery subject. */
  inbox: string;
  /** The full filter subject (`$KV.<bucket>.<filter>`). */
  filterSubject: string;
  /** Idle heartbeat, ms. */
  heartbeatMs: number;
  /** Where it starts. */
  from: StartFrom;
}

/**
 * The configuration of an ordered push consumer for the watcher: no acks,
 * flow control, idle heartbeats, in memory, one replica, removed by the
 * server after a minute (or six heartbeats) without interest.
 *
 * @example
 * ```ts ignore
 * const config = consumerConfig({ name, inbox, filterSubject: "$KV.users.>", heartbeatMs: 5000, from });
 * ```
 */
export function consumerConfig(spec: ConsumerSpec): Partial<ConsumerConfig> {
  const { name, inbox, filterSubject, heartbeatMs, from } = spec;
  return {
    name,
    deliver_subject: inbox,
    ack_policy: AckPolicy.None,
    replay_policy: ReplayPolicy.Instant,
    filter_subject: filterSubject,
    flow_control: true,
    idle_heartbeat: nanos(heartbeatMs),
    mem_storage: true,
    num_replicas: 1,
    inactive_threshold: nanos(Math.max(60_000, heartbeatMs * 6)),
    ...(from.kind === "snapshot"
      ? { deliver_policy: DeliverPolicy.LastPerSubject }
      : { deliver_policy: DeliverPolicy.StartSequence, opt_start_seq: Math.max(1, from.seq) }),
  };
}
