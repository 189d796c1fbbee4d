/**
 * The watcher's restart policy: the deadlines of a restart's stream-info
 * probe and consumer create, which grow with consecutive failures, and the
 * pause before the next attempt (short and jittered while the stream is
 * leaderless, else a jittered backoff), cut short when the watcher closes.
 *
 * @module
 */
import { isUnanswered } from "./nats_errors.ts";
import { Backoff, delay } from "./async.ts";

/**
 * Deadline of a restart's stream-info probe, ms. A stream without a leader
 * (an election after a server died) answers nothing at all, so a request sent
 * then is lost: short deadlines and quick retries mean the first request sent
 * after the new leader can serve is answered at once.
 */
const PROBE_TIMEOUT_MS = 1_000;
/** Probes that may time out before the deadline starts to grow (a slow server, not an election). */
const PROBE_PATIENCE = 8;
/**
 * Deadline of a restart's consumer create, ms; doubles on each failure (a huge
 * bucket is slow to create a consumer on). The create goes through the meta
 * leader, which may still be electing when the stream's leader already answers.
 * One request per attempt. Re-sending an unanswered create every second (it
 * is idempotent) was tried: recovery after a cluster-wide pause went from up
 * to 9.4 s to 4–8 s, but every edge of a restart storm would multiply its
 * creates while the meta layer is slowest, and the 1 000-edge bench was too
 * noisy on 2 cores to show that it does no harm.
 */
const CREATE_TIMEOUT_MS = 3_000;
/** Pause between attempts while the stream is leaderless, ms (jittered from half to all of it). */
const LEADERLESS_PAUSE_MS = 250;

/** The stage of a restart attempt that failed. */
export type RestartStage = "stream info" | "consumer create";

/**
 * Paces a watcher's restart attempts, and gives up on one at once when the
 * connection drops (a request in flight then may be lost by the client).
 *
 * @example
 * ```ts ignore
 * const policy = new RestartPolicy();
 * const probeMs = policy.probeDeadlineMs(15_000);
 * await policy.pause(policy.failed("stream info", err));
 * ```
 */
export class RestartPolicy {
  /** Pauses between failed restarts (not leaderless ones): 100 ms doubling to 5 s, jittered. */
  readonly #backoff = new Backoff({ firstMs: 100, maxMs: 5_000, jitter: "half" });
  /** Consecutive failed restart attempts (sets the deadlines of the next one). */
  #failures = 0;
  #createFailures = 0;
  /** Ends the pending pause at once (close): no timer outlives the watcher. */
  #endPause: (() => void) | undefined;
  #abandonAttempt: ((err: Error) => void) | undefined;

  /** Deadline of the next stream-info probe, ms, at most `maxMs`. */
  probeDeadlineMs(maxMs: number): number {
    return Math.min(PROBE_TIMEOUT_MS * 2 ** Math.max(0, this.#failures - PROBE_PATIENCE), maxMs);
  }

  /** Deadline of the next consumer create, ms, at most `maxMs`. */
  createDeadlineMs(maxMs: number): number {
    return Math.min(CREATE_TIMEOUT_MS * 2 ** this.#createFailures, maxMs);
  }

  /** An attempt succeeded: the next restart starts from the shortest deadlines. */
  succeeded(): void {
    this.#backoff.reset();
    this.#failures = 0;
    this.#createFailures = 0;
  }

  /** An attempt failed at `stage` with `err`: how long to pause before the next, ms. */
  failed(stage: RestartStage, err: unknown): number {
    this.#failures++;
    if (stage === "consumer create") this.#createFailures++;
    if (isUnanswered(err)) {
      // No answer: the stream (or the meta layer) is electing. The short
      // deadline already paced this attempt; retry soon, jittered so that
      // many edges do not ask in lockstep.
      return LEADERLESS_PAUSE_MS / 2 + Math.random() * LEADERLESS_PAUSE_MS / 2;
    }
    return this.#backoff.next();
  }

  /** Waits `ms`, or less if {@link endPause} is called meanwhile. */
  pause(ms: number): Promise<void> {
    const end = Promise.withResolvers<void>();
    this.#endPause = end.resolve;
    return delay(ms, { until: end.promise, unref: true }).finally(() => this.#endPause = undefined);
  }

  /** Runs `attempt`, but rejects as soon as {@link abandon} is called. */
  attempt(attempt: () => Promise<void>): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#abandonAttempt = reject;
      attempt().then(resolve, reject);
    }).finally(() => {
      this.#abandonAttempt = undefined;
    });
  }

  /** Rejects the {@link attempt} in progress, if any, with `err`. */
  abandon(err: Error): void {
    this.#abandonAttempt?.(err);
  }

  /** Ends a pending {@link pause} at once. */
  endPause(): void {
    this.#endPause?.();
  }
}
