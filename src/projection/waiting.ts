/**
 * Callers waiting for a projection runner's next progress.
 *
 * @module
 */
import { delay } from "../async.ts";

/** Callers waiting for a runner's next change of state or progress. */
export class ProgressWaiters {
  #waiters = new Set<() => void>();

  /** Wakes every caller waiting now. */
  notify(): void {
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const w of waiters) w();
  }

  /** Resolves at the next {@link notify}, after `ms`, or when `signal` aborts. */
  next(ms: number, signal: AbortSignal | undefined): Promise<void> {
    const notified = Promise.withResolvers<void>();
    this.#waiters.add(notified.resolve);
    return delay(ms, { signal, until: notified.promise }).then(() => {
      this.#waiters.delete(notified.resolve);
    });
  }
}
