/**
 * A projection run's periodic refresh of its status, owned: the timer, and
 * the refresh running now, if one is (a tick while one runs is skipped, so
 * refreshes never overlap).
 *
 * @module
 */

/**
 * Runs `refresh` every `everyMs` until stopped, one at a time.
 *
 * @example
 * ```ts ignore
 * const refresh = new StatusRefresh(5_000, () => readLag());
 * refresh.stop();
 * ```
 */
export class StatusRefresh {
  readonly #timer: ReturnType<typeof setInterval>;
  /** The refresh running now, if one is. */
  #running: Promise<void> | undefined;

  /** Starts the timer: the first refresh runs after `everyMs`. */
  constructor(everyMs: number, refresh: () => Promise<void>) {
    this.#timer = setInterval(() => {
      if (this.#running !== undefined) return;
      this.#running = refresh().finally(() => {
        this.#running = undefined;
      });
    }, everyMs);
  }

  /** Stops the timer (a refresh running now finishes on its own). */
  stop(): void {
    clearInterval(this.#timer);
  }
}
