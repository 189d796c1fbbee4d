/**
 * A projection run's status, owned: its state and when it changed, its
 * position in the source (source sequence, checkpoint, lag, the source's
 * incarnation) and its counters. The runner tells it what happened; only
 * this file writes the status, and every change of state wakes the callers
 * waiting for progress.
 *
 * @module
 */
import type { ConsumerInfo } from "@nats-io/jetstream";
import type { ApplyOutcome } from "./apply_event.ts";
import type { ProjectionState, ProjectionStatus } from "./types.ts";
import { ProgressWaiters } from "./waiting.ts";

/**
 * The status of one run.
 *
 * @example
 * ```ts ignore
 * const status = new RunStatus(initialStatus(projection, spec));
 * status.setState("running");
 * console.log(status.snapshot().state);
 * ```
 */
export class RunStatus {
  readonly #s: ProjectionStatus;
  /** The highest source sequence this run acked (or found acked). */
  #lastAcked = 0;
  /** Callers waiting for the next change of state or progress. */
  readonly progress = new ProgressWaiters();

  /** Starts from `initial`. */
  constructor(initial: ProjectionStatus) {
    this.#s = initial;
  }

  /** A copy of the status. */
  snapshot(): ProjectionStatus {
    return { ...this.#s };
  }

  /** The current state. */
  get state(): ProjectionState {
    return this.#s.state;
  }

  /** The source's incarnation, `<stream>@<created>` ("" before the first read). */
  get epoch(): string {
    return this.#s.epoch;
  }

  /** The last error reported. */
  get lastError(): string | undefined {
    return this.#s.lastError;
  }

  /** The highest source sequence acked. */
  get lastAcked(): number {
    return this.#lastAcked;
  }

  /** Moves to `state` (a no-op if already there) and wakes the waiters. */
  setState(state: ProjectionState): void {
    if (this.#s.state === state) return;
    this.#s.state = state;
    this.#s.since = Date.now();
    this.progress.notify();
  }

  /** The source stream's last sequence, as read now. */
  sourceLast(seq: number): void {
    this.#s.sourceSeq = seq;
  }

  /** The source's incarnation is `epoch` from now on. */
  setEpoch(epoch: string): void {
    this.#s.epoch = epoch;
  }

  /** The durable consumer as the server reports it: checkpoint, lag, delivered sequence. */
  consumerRead(info: ConsumerInfo): void {
    this.#s.checkpoint = info.ack_floor.stream_seq;
    if (this.#s.checkpoint > this.#lastAcked) this.#lastAcked = this.#s.checkpoint;
    this.#s.lag = info.num_pending + info.num_ack_pending;
    if (info.delivered.stream_seq > this.#s.sourceSeq) {
      this.#s.sourceSeq = info.delivered.stream_seq;
    }
  }

  /** Event `seq` arrived with `pending` more behind it. */
  delivered(seq: number, pending: number): void {
    this.#s.lag = pending + 1;
    if (seq > this.#s.sourceSeq) this.#s.sourceSeq = seq;
  }

  /** An event's writes were applied (or skipped by the fence, or ignored by `map`). */
  applied(out: ApplyOutcome): void {
    this.#s.applied += out.applied;
    this.#s.skipped += out.skipped;
    this.#s.conflicts += out.conflicts;
    if (out.ignored) this.#s.ignored++;
  }

  /** Event `seq` was acked (or terminated), `pending` more behind it. */
  acked(seq: number, pending: number): void {
    this.#s.events++;
    this.#lastAcked = Math.max(this.#lastAcked, seq);
    this.#s.checkpoint = Math.max(this.#s.checkpoint, seq);
    this.#s.lag = pending;
  }

  /** A failure worth reporting. */
  error(message: string): void {
    this.#s.lastError = message;
  }

  /** A NATS failure, retried: counts it and moves to "retrying". */
  retrying(message: string): void {
    this.#s.lastError = message;
    this.#s.retries++;
    this.setState("retrying");
  }

  /** `map()` threw. */
  mapError(message: string): void {
    this.#s.mapErrors++;
    this.#s.lastError = message;
  }
}
