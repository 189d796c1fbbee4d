/**
 * The watcher's start (or a snapshot-opened replica's attach) as the miss
 * path sees it: a miss waits for a start still in flight (rule 3 needs the
 * watcher running before a fetched value may be cached), and goes on at once
 * after it settled, with no timer and no extra turn.
 *
 * @module
 */

/**
 * One start at a time; a newer one replaces the last.
 *
 * @example
 * ```ts
 * import { StartGate } from "./start_gate.ts";
 * const gate = new StartGate();
 * await gate.set(Promise.resolve());
 * await Promise.resolve();
 * // gate.pending === undefined: settled; gate.promise is the start
 * ```
 */
export class StartGate {
  #promise: Promise<void> | undefined;
  #settled = false;

  /** Records `start` as the current start and returns it. */
  set(start: Promise<void>): Promise<void> {
    this.#promise = start;
    this.#settled = false;
    const settled = () => {
      if (this.#promise === start) this.#settled = true;
    };
    start.then(settled, settled);
    return start;
  }

  /** Forgets the start (an attach that failed). */
  clear(): void {
    this.#promise = undefined;
  }

  /** The current start, settled or not; undefined before the first and after {@link clear}. */
  get promise(): Promise<void> | undefined {
    return this.#promise;
  }

  /** The current start while it has not settled; undefined otherwise. */
  get pending(): Promise<void> | undefined {
    return this.#settled ? undefined : this.#promise;
  }
}
