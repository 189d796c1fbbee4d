/**
 * The counters of one cache, behind one owner: every other part adds to a
 * counter by name and reads it; none writes a number. `stats()` and the
 * metrics read them from here.
 *
 * @module
 */

/** The names of the counters. */
export type CounterName =
  | "staleHits"
  | "misses"
  | "shedMisses"
  | "fetches"
  | "loads"
  | "rejected"
  | "applied"
  | "bootstrapApplied";

/**
 * The counters of one cache (hits are counted by the facade, on the hit path).
 *
 * @example
 * ```ts
 * import { Counters } from "./counters.ts";
 * const n = new Counters();
 * n.add("misses");
 * console.log(n.get("misses")); // 1
 * ```
 */
export class Counters {
  readonly #n: Record<CounterName, number> = {
    staleHits: 0,
    misses: 0,
    shedMisses: 0,
    fetches: 0,
    loads: 0,
    rejected: 0,
    applied: 0,
    bootstrapApplied: 0,
  };

  /** Adds one to `name`; returns the new count. */
  add(name: CounterName): number {
    return ++this.#n[name];
  }

  /** The count of `name`. */
  get(name: CounterName): number {
    return this.#n[name];
  }

  /** Starts `name` again from 0 (the bootstrap's progress, at each catch-up). */
  reset(name: CounterName): void {
    this.#n[name] = 0;
  }
}
