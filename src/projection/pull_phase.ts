/**
 * What a projection run's loop is doing with its durable consumer, owned:
 * ready for the next pull request, to be set up again first (and why), or
 * pulling (the request, the event being handled, and a set-up asked for while
 * the request runs). One union, so an event in flight without a request, or a
 * set-up without its reason, cannot be written. The runner tells it what
 * happened; only this file writes it.
 *
 * @module
 */
import type { ConsumerMessages } from "@nats-io/jetstream";

/** The loop's phase, with the data each phase carries. */
export type PullState =
  /** The consumer is set up: the next pull request may start. */
  | { readonly step: "ready" }
  /** The consumer must be set up again before the next pull request. */
  | { readonly step: "reset"; readonly reason: string }
  /** A pull request is running. */
  | {
    readonly step: "pulling";
    readonly batch: ConsumerMessages;
    /** The source sequence of the event being handled, if one is. */
    readonly handling: number | undefined;
    /** Why the consumer must be set up again once this request ends, if it must. */
    readonly reset: string | undefined;
  };

/**
 * The phase of one run's loop.
 *
 * @example
 * ```ts ignore
 * const pull = new PullPhase();
 * if (pull.takeReset() !== undefined) await setup();
 * pull.pulling(batch);
 * pull.handling(m.seq);
 * pull.handled();
 * pull.pulled();
 * ```
 */
export class PullPhase {
  #p: PullState = { step: "ready" };

  /** The phase, as it is now. */
  get state(): PullState {
    return this.#p;
  }

  /** The pull request running, if one is. */
  get batch(): ConsumerMessages | undefined {
    return this.#p.step === "pulling" ? this.#p.batch : undefined;
  }

  /** Whether an event is being handled (received, not yet settled). */
  get inFlight(): boolean {
    return this.#p.step === "pulling" && this.#p.handling !== undefined;
  }

  /**
   * The consumer must be set up again before the next pull request. True
   * when this asks it first (the caller then reports `reason` and ends the
   * request in flight); false when a set-up was already due (its reason
   * stands).
   */
  reset(reason: string): boolean {
    const p = this.#p;
    if (p.step === "reset" || (p.step === "pulling" && p.reset !== undefined)) return false;
    this.#p = p.step === "pulling" ? { ...p, reset: reason } : { step: "reset", reason };
    return true;
  }

  /** Takes the set-up that is due: its reason, or undefined when none is. */
  takeReset(): string | undefined {
    if (this.#p.step !== "reset") return undefined;
    const reason = this.#p.reason;
    this.#p = { step: "ready" };
    return reason;
  }

  /** Pull request `batch` started (a set-up asked for meanwhile waits for its end). */
  pulling(batch: ConsumerMessages): void {
    const p = this.#p;
    const reset = p.step === "reset" ? p.reason : p.step === "pulling" ? p.reset : undefined;
    this.#p = { step: "pulling", batch, handling: undefined, reset };
  }

  /** The event of source sequence `seq` arrived and is being handled. */
  handling(seq: number): void {
    if (this.#p.step === "pulling") this.#p = { ...this.#p, handling: seq };
  }

  /** The event being handled was settled (acked, given back or terminated). */
  handled(): void {
    if (this.#p.step === "pulling") this.#p = { ...this.#p, handling: undefined };
  }

  /** The pull request ended: the loop is ready for the next, or must set up first. */
  pulled(): void {
    const p = this.#p;
    if (p.step !== "pulling") return;
    this.#p = p.reset === undefined ? { step: "ready" } : { step: "reset", reason: p.reset };
  }
}
