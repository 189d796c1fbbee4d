/**
 * Single-flight: concurrent calls for one key share one execution.
 *
 * @module
 */

/**
 * Runs at most one `fn` per key at a time; concurrent callers for the same
 * key get the same promise.
 *
 * @example
 * ```ts
 * import { SingleFlight } from "./single_flight.ts";
 * const sf = new SingleFlight<string, number>();
 * let calls = 0;
 * const f = () => new Promise<number>((r) => setTimeout(() => r(++calls), 1));
 * const [a, b] = await Promise.all([sf.run("k", f), sf.run("k", f)]);
 * console.log(a === b, calls); // true 1
 * ```
 */
export class SingleFlight<K, V> {
  readonly #inflight = new Map<K, Promise<V>>();

  /** Executions in flight now (one per key). */
  get size(): number {
    return this.#inflight.size;
  }

  /** Whether an execution for `key` is in flight (a call would join it). */
  has(key: K): boolean {
    return this.#inflight.has(key);
  }

  /** Returns the in-flight promise for `key`, or starts `fn` and shares it. */
  run(key: K, fn: () => Promise<V>): Promise<V> {
    const running = this.#inflight.get(key);
    if (running !== undefined) return running;
    const p = fn().finally(() => {
      if (this.#inflight.get(key) === p) this.#inflight.delete(key);
    });
    this.#inflight.set(key, p);
    return p;
  }
}
