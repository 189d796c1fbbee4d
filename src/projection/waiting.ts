/**
 * How a projection runner waits: a pause between retries that a stop cuts
 * short, and callers waiting for the runner's next progress.
 *
 * @module
 */

/** Resolves after `ms`, or at once when `signal` aborts. */
export function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

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
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        signal?.removeEventListener("abort", done);
        this.#waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      this.#waiters.add(done);
    });
  }
}
