/**
 * A projection run's status, owned: its state (a union that carries what
 * belongs to each state: when it was entered, and a failed run's error), its
 * position in the source (source sequence, checkpoint, lag, the source's
 * incarnation) and its counters. The runner tells it what happened; only this
 * file writes the status, each change of state is one method here, and every
 * change of state wakes the callers waiting for progress. A run that failed or
 * stopped stays so.
 *
 * @module
 */
import type { ConsumerInfo } from "@nats-io/jetstream";
import { describe } from "../describe.ts";
import type { ApplyOutcome } from "./apply_event.ts";
import type { ProjectionState, ProjectionStatus } from "./types.ts";
import { ProgressWaiters } from "./waiting.ts";

/** A run's state with its data: when it was entered and, once failed, the failure. */
export type RunPhase =
  | { readonly state: Exclude<ProjectionState, "failed">; readonly since: number }
  | { readonly state: "failed"; readonly since: number; readonly error: unknown };

/** Everything `status()` shows but the state. */
type Position = Omit<ProjectionStatus, "state" | "since">;

/**
 * The status of one run.
 *
 * @example
 * ```ts ignore
 * const status = new RunStatus(initialStatus(projection, spec));
 * status.started();
 * console.log(status.snapshot().state); // "running"
 * ```
 */
export class RunStatus {
  #phase: RunPhase;
  readonly #s: Position;
  /** The highest source sequence this run acked (or found acked). */
  #lastAcked = 0;
  /** Callers waiting for the next change of state or progress. */
  readonly #progress = new ProgressWaiters();

  /** Starts from `initial` (a run starts "starting"). */
  constructor(initial: ProjectionStatus) {
    const { state, since, ...position } = initial;
    this.#s = position;
    this.#phase = state === "failed"
      ? { state, since, error: new Error(initial.lastError ?? "failed") }
      : { state, since };
  }

  /** A copy of the status. */
  snapshot(): ProjectionStatus {
    const { name, source, target, consumer, ...position } = this.#s;
    const { state, since } = this.#phase;
    return { name, source, target, consumer, state, since, ...position };
  }

  /** The current state. */
  get state(): ProjectionState {
    return this.#phase.state;
  }

  /** What the run failed of, once it failed (undefined before). */
  get failure(): unknown {
    return this.#phase.state === "failed" ? this.#phase.error : undefined;
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

  /** Resolves at the next change of state or progress, after `ms`, or when `signal` aborts. */
  nextProgress(ms: number, signal: AbortSignal | undefined): Promise<void> {
    return this.#progress.next(ms, signal);
  }

  /** Wakes the callers waiting for progress (an event was settled). */
  progressed(): void {
    this.#progress.notify();
  }

  /** The first pull request started: "starting" becomes "running". */
  started(): void {
    if (this.#phase.state === "starting") this.#enter("running");
  }

  /** Work went through after a retried failure: "retrying" becomes "running". */
  recovered(): void {
    if (this.#phase.state === "retrying") this.#enter("running");
  }

  /** `stop()` was called: "stopping", unless the run already ended. */
  stopping(): void {
    if (!this.#ended) this.#enter("stopping");
  }

  /** The run's loop ended: "stopped", unless it failed; wakes the waiters either way. */
  ended(): void {
    if (this.#phase.state !== "failed") this.#enter("stopped");
    this.#progress.notify();
  }

  /** The run failed of `err` (reported as its last error); it stays failed. */
  fail(err: unknown): void {
    this.#s.lastError = describe(err);
    this.#enter("failed", err ?? new Error("failed"));
  }

  /** Whether the run failed or stopped: no state follows. */
  get #ended(): boolean {
    return this.#phase.state === "failed" || this.#phase.state === "stopped";
  }

  /** Moves to `state` (keeping `since` if already there) and wakes the waiters on a change. */
  #enter(state: ProjectionState, error?: unknown): void {
    const same = this.#phase.state === state;
    const since = same ? this.#phase.since : Date.now();
    this.#phase = state === "failed" ? { state, since, error } : { state, since };
    if (!same) this.#progress.notify();
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

  /** A NATS failure, retried: counts it and moves to "retrying" (unless the run is ending). */
  retrying(message: string): void {
    this.#s.lastError = message;
    this.#s.retries++;
    if (!this.#ended && this.#phase.state !== "stopping") this.#enter("retrying");
  }

  /** `map()` threw. */
  mapError(message: string): void {
    this.#s.mapErrors++;
    this.#s.lastError = message;
  }
}
