/**
 * How long a slot of the local store may live (rule 6, TTL alignment): the
 * local `maxTtlMs`, a per-slot TTL (negative caching) and the bucket TTL
 * counted from the value's write time, whichever ends first; and each slot's
 * deadline.
 *
 * @module
 */

/** The TTL rules of one store and the deadline of each of its slots. */
export class SlotTtl {
  readonly #maxTtlMs: number;
  /** Bucket TTL, ms (read from the stream); 0 for none. */
  bucketTtlMs: number;
  readonly #now: () => number;
  /** Expiry per slot (`performance.now()` ms, 0 for none); allocated on the first TTL. */
  #expires: Float64Array | undefined;

  /** `now` is the wall clock the write times are compared with. */
  constructor(
    { maxTtlMs, bucketTtlMs, now }: { maxTtlMs: number; bucketTtlMs: number; now: () => number },
  ) {
    this.#maxTtlMs = maxTtlMs;
    this.bucketTtlMs = bucketTtlMs;
    this.#now = now;
  }

  /** Whether any rule bounds a slot's life (`maxTtlMs` or a bucket TTL); a slot's own TTL aside. */
  get bounded(): boolean {
    return this.#maxTtlMs > 0 || this.bucketTtlMs > 0;
  }

  /** Whether the slot at `i` has outlived its deadline. */
  expired(i: number): boolean {
    if (this.#expires === undefined) return false;
    const e = this.#expires[i]!;
    return e !== 0 && performance.now() > e;
  }

  /** The slot's deadline on the wall clock (`Date.now()` ms), or 0 for none. */
  deadline(i: number): number {
    const e = this.#expires?.[i] ?? 0;
    return e === 0 ? 0 : Date.now() + (e - performance.now());
  }

  /** Remaining life of a slot written at `created`: 0 for unbounded, negative if already expired. */
  ttlFor(created: number, extraMs: number): number {
    let ttl = this.#maxTtlMs;
    if (extraMs > 0 && (ttl === 0 || extraMs < ttl)) ttl = extraMs;
    if (this.bucketTtlMs > 0) {
      const left = created + this.bucketTtlMs - this.#now();
      if (left <= 0) return -1;
      if (ttl === 0 || left < ttl) ttl = Math.ceil(left);
    }
    return ttl;
  }

  /** Sets the deadline of the slot at `i` to `ttl` ms from now (0: none); `capacity` slots in all. */
  set(i: number, ttl: number, capacity: number): void {
    if (ttl > 0) {
      if (this.#expires === undefined) this.#expires = new Float64Array(capacity);
      this.#expires[i] = performance.now() + ttl;
    } else if (this.#expires !== undefined) {
      this.#expires[i] = 0;
    }
  }

  /** Makes room for `capacity` slots, keeping their deadlines (or, emptied, the first `capacity`). */
  grow(capacity: number): void {
    if (this.#expires === undefined) return;
    const b = new Float64Array(capacity);
    b.set(this.#expires.subarray(0, Math.min(this.#expires.length, capacity)));
    this.#expires = b;
  }
}
