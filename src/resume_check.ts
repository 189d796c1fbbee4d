/**
 * The check a resumed consumer makes on its first message: does the stream it
 * reads hold, at the last revision the edge applied, what the edge applied
 * there? nats-server 2.9.10 can bring a killed stream leader's replica back
 * one sequence out of step with the others, and a one-replica consumer sits on
 * any replica, so an edge whose consumer moves between such replicas would
 * otherwise skip a write unnoticed (docs/nats-versions.md).
 *
 * @module
 */
import type { Operation } from "./types.ts";

/** A message as the edge applied it, or as a consumer delivered it. */
export interface SeenMessage {
  /** Stream sequence (the KV revision). */
  seq: number;
  /** The key (subject without the bucket's prefix). */
  key: string;
  /** PUT, DEL or PURGE. */
  op: Operation;
}

/** What the first message of a consumer started at the last applied revision says. */
export type ResumeVerdict =
  /** It is what was applied at that revision: drop it and go on. */
  | { kind: "same" }
  /** The revision is gone from the stream (history limit, a later write, a purge): nothing to judge. */
  | { kind: "unknown" }
  /** The stream holds something else at that revision: the replicas disagree. */
  | { kind: "diverged"; reason: string };

/**
 * Judges the first message `first` of a consumer started at `applied.seq`
 * (the revision the edge last applied, with the key and operation it applied
 * there).
 *
 * @example
 * ```ts
 * import { judgeResume } from "./resume_check.ts";
 * const v = judgeResume({ seq: 201, key: "w.199", op: "PUT" }, { seq: 201, key: "w.201", op: "PUT" });
 * // v.kind === "diverged"
 * ```
 */
export function judgeResume(applied: SeenMessage, first: SeenMessage): ResumeVerdict {
  if (first.seq !== applied.seq) return { kind: "unknown" };
  if (first.key === applied.key && first.op === applied.op) return { kind: "same" };
  return {
    kind: "diverged",
    reason:
      `replicas disagree at revision ${applied.seq} (applied ${applied.op} "${applied.key}", ` +
      `the stream now holds ${first.op} "${first.key}" there)`,
  };
}

/**
 * The message the watcher delivered at its last revision: the base of the
 * resume check (a replacing consumer's first message) and of
 * reconciliation's revision check (the stream leader's message there).
 *
 * @example
 * ```ts
 * import { AppliedMark } from "./resume_check.ts";
 * const mark = new AppliedMark();
 * mark.note(7, "user.1", "PUT");
 * // mark.at(7) is { seq: 7, key: "user.1", op: "PUT" }; mark.at(8) is undefined
 * ```
 */
export class AppliedMark {
  #seq = 0;
  #key = "";
  #op: Operation = "PUT";

  /** Notes `op` on `key` delivered at `seq` (per message: nothing allocated). */
  note(seq: number, key: string, op: Operation): void {
    this.#seq = seq;
    this.#key = key;
    this.#op = op;
  }

  /** Nothing is known of what the last revision held (it was not delivered here). */
  forget(): void {
    this.#seq = 0;
  }

  /** What was delivered at `seq`, if that is the revision noted last. */
  at(seq: number): SeenMessage | undefined {
    return seq > 0 && seq === this.#seq ? { seq, key: this.#key, op: this.#op } : undefined;
  }
}
