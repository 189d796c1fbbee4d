/**
 * What an R3 stream's replicas out of step explain, on nats-server 2.9: the
 * same message stored at different sequences on different replicas after a
 * paused or killed stream leader (the clustered-failure count, `clfs`, drifting
 * between leader and followers; fixed in 2.9.21 by nats-io/nats-server#4365,
 * commit 081140ee6; docs/nats-versions.md). An edge whose consumer sits on
 * the replica out of step sees right values at other revisions than the
 * leader's. A failed schedule is set aside only when every violation is such
 * a value and a replica's own stream holds that value at that revision (a
 * direct get answered it so).
 *
 * @module
 */
import type { Shift, Violation } from "./checker.ts";

/**
 * What the replicas answered, asked through one node: at each sequence, the
 * key and value id of every distinct answer (a 2.9 node answers a direct get
 * from its own replica or hands it on to another: each answer is some
 * replica's content). Absent: no answer.
 */
export interface ReplicaHolds {
  name: string;
  held: Map<number, { key: string; id?: string }[]>;
}

/** The sequences to ask every node about: the revisions the violations saw values at. */
export function shiftedRevisions(violations: readonly Violation[]): number[] {
  const seqs = new Set(violations.flatMap((v) => v.shifted ?? []).map((s) => s.revision));
  return [...seqs].sort((a, b) => a - b);
}

/**
 * The violations replicas out of step do not explain: all but those whose
 * every {@link Shift} is a value seen at a revision other than KV's, held at
 * that revision by some node's own replica. Each shift names the node that
 * holds it in `explainedBy`.
 *
 * @example
 * ```ts ignore
 * const left = unexplained(violations, await site.replicaHolds(bucket, shiftedRevisions(violations)));
 * ```
 */
export function unexplained(
  violations: readonly Violation[],
  nodes: readonly ReplicaHolds[],
): { left: Violation[]; explainedBy: string[] } {
  const explainedBy: string[] = [];
  const holder = (s: Shift) =>
    nodes.find((n) => (n.held.get(s.revision) ?? []).some((m) => m.key === s.key && m.id === s.id));
  const left = violations.filter((v) => {
    if (!v.shifted || v.shifted.length === 0) return true;
    for (const s of v.shifted) {
      const n = s.revision !== s.kvRevision ? holder(s) : undefined;
      if (n === undefined) return true;
      explainedBy.push(
        `a replica (asked via ${n.name}) holds ${s.key} ${s.id} at ${s.revision} (KV: ${s.kvRevision})`,
      );
    }
    return false;
  });
  return { left, explainedBy: [...new Set(explainedBy)] };
}
