/**
 * Reconciliation's verdict on a stream info read now and then while the
 * watcher runs: a stream purge, a recreated bucket, a lost tail and a new
 * stream leader produce no watcher event, so each is read from the stream's
 * state here and answered with the reason to restart the watcher.
 *
 * A new leader matters because a running consumer outlives it: nats-server
 * 2.9.10, every server of a cluster paused and resumed, delivered a write the
 * new leader never held (it was never acknowledged) and then took the next
 * write at the same revision; the consumer, on the old leader's replica,
 * went on past it, so the edge held a value the bucket does not and lacked
 * the one it does, at a revision equal to the stream's (docs/nats-versions.md).
 * A restart resumes at the applied revision and judges what the stream holds
 * there (src/resume_check.ts): the same message, nothing lost; another one,
 * a resync. A round that finds none of these also makes the revision check
 * ({@link checkApplied}): the consumer's replica can hold such a message with
 * no leader change at all.
 *
 * @module
 */
import type { JetStreamManager, StreamInfo, StreamState } from "@nats-io/jetstream";
import { BucketNotFoundError } from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { kvStreamName, kvSubjectPrefix, operationOf } from "../kv_layout.ts";
import { judgeResume } from "../resume_check.ts";
import type { Watcher } from "../watcher.ts";

/** What the watcher knew of the stream when reconciliation reads it again. */
export interface ReconcileBase {
  /** The stream's creation time the watcher follows. */
  epoch: string | undefined;
  /** The last revision the watcher delivered. */
  lastRevision: number;
  /**
   * The stream's leader as last known (undefined: not clustered, or not
   * known). A read during an election has none and must not erase it: the
   * next read, with the new leader, would then have nothing to differ from.
   */
  leader: string | undefined;
}

/**
 * Why the watcher must restart given the stream's `info` read now, or
 * undefined when the stream is the one it follows.
 *
 * @example
 * ```ts
 * import { reconcileVerdict } from "./reconcile.ts";
 * const info = { created: "t0", state: { last_seq: 9 }, cluster: { leader: "n2" } };
 * const why = reconcileVerdict(info as never, { epoch: "t0", lastRevision: 9, leader: "n1" });
 * // why === "reconciliation found the stream's leader changed (n1 → n2)"
 * ```
 */
export function reconcileVerdict(info: StreamInfo, base: ReconcileBase): string | undefined {
  if (info.created !== base.epoch || info.state.last_seq < base.lastRevision) {
    return "reconciliation found the stream changed";
  }
  const leader = info.cluster?.leader;
  if (leader && base.leader && leader !== base.leader) {
    return `reconciliation found the stream's leader changed (${base.leader} → ${leader})`;
  }
  return undefined;
}

/** What reconciliation reads of the watcher and asks of it. */
export type ReconciledWatcher = Pick<
  Watcher,
  "epoch" | "lastRevision" | "applied" | "restart" | "disagrees"
>;

/** What one round of reconciliation reads and drives (the sync loop's, which owns the watcher). */
export interface ReconcileRound {
  bucket: string;
  /** The cache's current JetStream manager (the one the watcher's stream answers on). */
  jsm: JetStreamManager;
  closed: () => boolean;
  watcher: ReconciledWatcher;
  /** The stream's leader as last known (see {@link ReconcileBase.leader}). */
  leader: () => string | undefined;
  /** Takes the info as the last one read (nothing to restart for). */
  read: (info: StreamInfo) => void;
}

/**
 * One round: reads the stream's info, restarts the watcher if
 * {@link reconcileVerdict} says so (its own stream info then becomes the last
 * one read) or a bucket that is gone, else checks the applied revision
 * ({@link checkApplied}); a failed read changes nothing.
 *
 * @example
 * ```ts ignore
 * await reconcileOnce({ bucket, jsm, closed, watcher, leader: () => known, read });
 * ```
 */
export async function reconcileOnce(r: ReconcileRound): Promise<void> {
  const w = r.watcher;
  try {
    const info = await r.jsm.streams.info(kvStreamName(r.bucket));
    if (r.closed()) return;
    const base = { epoch: w.epoch, lastRevision: w.lastRevision, leader: r.leader() };
    const restart = reconcileVerdict(info, base);
    if (restart) return void w.restart(restart);
    r.read(info);
    await checkApplied(r, info.state);
  } catch (err) {
    const e = mapNatsError(err, { action: "reconcile", bucket: r.bucket });
    if (e instanceof BucketNotFoundError) w.restart("bucket not found");
  }
}

/**
 * The revision check: asks the stream's leader for the message at the
 * revision the watcher applied last and judges it as a resumed consumer's
 * first message is judged (src/resume_check.ts). The watcher's consumer sits
 * on any replica; one holding a message the leader does not (nats-server
 * 2.9.10: a write delivered but never acknowledged, then another write at the
 * same revision) says the same last revision as the leader, and no other
 * check tells them apart. Another message there rebuilds the store; none
 * (removed by history, a purge) or an unanswered request changes nothing.
 */
async function checkApplied(r: ReconcileRound, range: StreamState): Promise<void> {
  const w = r.watcher;
  const applied = w.applied;
  if (applied === undefined || applied.seq < range.first_seq || applied.seq > range.last_seq) {
    return;
  }
  const m = await r.jsm.streams.getMessage(kvStreamName(r.bucket), { seq: applied.seq });
  if (m === null || r.closed()) return;
  const key = m.subject.substring(kvSubjectPrefix(r.bucket).length);
  const verdict = judgeResume(applied, { seq: m.seq, key, op: operationOf(m.header) });
  // Only if the watcher still holds what was judged: a rebuild meanwhile replaced it.
  const now = w.applied;
  const still = now?.seq === applied.seq && now.key === applied.key && now.op === applied.op;
  if (verdict.kind === "diverged" && still) {
    w.disagrees(verdict.reason, "reconciliation's revision check");
  }
}
