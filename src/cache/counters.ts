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
 * One private field per counter: `applied` is added to on every watcher
 * message, and a field costs a nanosecond where a keyed record costs ten.
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
  #staleHits = 0;
  #misses = 0;
  #shedMisses = 0;
  #fetches = 0;
  #loads = 0;
  #rejected = 0;
  #applied = 0;
  #bootstrapApplied = 0;

  /** Adds one to `name`; returns the new count. */
  add(name: CounterName): number {
    switch (name) {
      case "applied":
        return ++this.#applied;
      case "bootstrapApplied":
        return ++this.#bootstrapApplied;
      case "staleHits":
        return ++this.#staleHits;
      case "misses":
        return ++this.#misses;
      case "shedMisses":
        return ++this.#shedMisses;
      case "fetches":
        return ++this.#fetches;
      case "loads":
        return ++this.#loads;
      case "rejected":
        return ++this.#rejected;
    }
  }

  /** The count of `name`. */
  get(name: CounterName): number {
    switch (name) {
      case "applied":
        return this.#applied;
      case "bootstrapApplied":
        return this.#bootstrapApplied;
      case "staleHits":
        return this.#staleHits;
      case "misses":
        return this.#misses;
      case "shedMisses":
        return this.#shedMisses;
      case "fetches":
        return this.#fetches;
      case "loads":
        return this.#loads;
      case "rejected":
        return this.#rejected;
    }
  }

  /** Starts the bootstrap's progress count again from 0 (at each catch-up). */
  resetBootstrap(): void {
    this.#bootstrapApplied = 0;
  }
}
