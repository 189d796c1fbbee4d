/**
 * How far a cache has come, for reads with a bookmark (rule 8): readers that
 * wait for the watcher to apply a revision, and the highest revision known
 * to exist in the bucket (so that a bookmark at or below it needs no check
 * that it is real). The watcher's half is one comparison per applied change
 * ({@link Reached.advance}).
 *
 * @module
 */
import { delay } from "../async.ts";

interface Waiter {
  rev: number;
  wake: () => void;
}

/** The waiters on applied revisions and the known floor of the bucket's last revision. */
export class Reached {
  /**
   * The last revision applied from the watcher, set by {@link advance} and
   * {@link reset} when the cache stops being synced: while synced it equals
   * the watcher's last revision, and the hit path reads this one field.
   */
  #applied = 0;
  /** Bookmarked reads reading KV now (they count against `maxConcurrentMisses`). */
  #fetching = 0;
  /** The lowest revision a waiter waits for (Infinity: none). */
  #next = Infinity;
  readonly #waiters = new Set<Waiter>();
  #known = 0;
  #knownEpoch: string | undefined;
  #probe: Promise<number> | undefined;

  /** The last revision applied from the watcher while synced (0: not known). */
  get applied(): number {
    return this.#applied;
  }

  /** The cache is no longer synced: what it applied is not known to be everything. */
  reset(): void {
    this.#applied = 0;
  }

  /** Bookmarked reads reading KV now. */
  get fetching(): number {
    return this.#fetching;
  }

  /** A bookmarked read starts reading KV; {@link endFetch} when it is done. */
  beginFetch(): void {
    this.#fetching++;
  }

  /** A bookmarked read is done reading KV. */
  endFetch(): void {
    this.#fetching--;
  }

  /** The watcher applied `rev`: wakes every waiter at or below it. */
  advance(rev: number): void {
    this.#applied = rev;
    if (rev < this.#next) return;
    let next = Infinity;
    for (const w of this.#waiters) {
      if (w.rev <= rev) w.wake();
      else if (w.rev < next) next = w.rev;
    }
    this.#next = next;
  }

  /**
   * Resolves when {@link advance} reaches `rev`, after `options.timeoutMs`,
   * or when `options.signal` aborts, whichever comes first; never rejects.
   * The caller checks again.
   */
  until(rev: number, options: { timeoutMs: number; signal?: AbortSignal }): Promise<void> {
    const { timeoutMs: ms, signal } = options;
    if (signal?.aborted) return Promise.resolve();
    const woken = Promise.withResolvers<void>();
    const w: Waiter = { rev, wake: woken.resolve };
    this.#waiters.add(w);
    if (rev < this.#next) this.#next = rev;
    return delay(ms, { signal, until: woken.promise, unref: true }).then(() => {
      if (this.#waiters.delete(w) && w.rev === this.#next) this.#recompute();
    });
  }

  /** Wakes every waiter (the cache closes). */
  wakeAll(): void {
    for (const w of [...this.#waiters]) w.wake();
  }

  /** The highest revision known to exist in the bucket of epoch `epoch` (0 when it changed). */
  known(epoch: string | undefined): number {
    return epoch === this.#knownEpoch ? this.#known : 0;
  }

  /** Records that the bucket of epoch `epoch` holds revision `rev` or later. */
  learn(rev: number, epoch: string | undefined): void {
    if (epoch !== this.#knownEpoch) {
      this.#knownEpoch = epoch;
      this.#known = 0;
    }
    if (rev > this.#known) this.#known = rev;
  }

  /** Runs `read` (the bucket's last revision from its leader) once for all concurrent callers. */
  probe(read: () => Promise<number>): Promise<number> {
    return this.#probe ??= read().finally(() => {
      this.#probe = undefined;
    });
  }

  #recompute(): void {
    let next = Infinity;
    for (const w of this.#waiters) if (w.rev < next) next = w.rev;
    this.#next = next;
  }
}
