/**
 * Waiting, in one place: a deadline on a promise ({@link deadline},
 * {@link settleWithin}), a pause that a signal or a promise cuts short
 * ({@link delay}), a promise a signal abandons ({@link abortable}), and the
 * backoff policy of every retry loop ({@link Backoff}, {@link retry}).
 * Nothing else in the tree starts a timer to wait for something.
 *
 * @module
 */

/**
 * A promise did not settle within its deadline ({@link deadline}).
 *
 * @example
 * ```ts
 * import { deadline, DeadlineError } from "./async.ts";
 * try {
 *   await deadline(new Promise(() => {}), 10);
 * } catch (err) {
 *   console.log(err instanceof DeadlineError && err.ms); // 10
 * }
 * ```
 */
export class DeadlineError extends Error {
  /** The deadline that passed, ms. */
  readonly ms: number;
  /** Builds the error for a deadline of `ms`. */
  constructor(ms: number) {
    super(`not settled within ${ms} ms`);
    this.name = "DeadlineError";
    this.ms = ms;
  }
}

/** Options of {@link deadline} and {@link delay}. */
export interface WaitOptions {
  /** Ends the wait early: {@link deadline} rejects with its reason, {@link delay} resolves. */
  signal?: AbortSignal;
  /**
   * Let the process exit while the timer runs (Node, Bun; a no-op where
   * timers are numbers, see {@link unref}). Default `false`.
   */
  unref?: boolean;
}

/**
 * `p`'s outcome, or a {@link DeadlineError} once `ms` have passed, or
 * `signal.reason` when `signal` aborts first; the timer never outlives the
 * answer. `p` itself goes on (a promise cannot be cancelled).
 *
 * @example
 * ```ts
 * import { deadline } from "./async.ts";
 * const answer = await deadline(Promise.resolve(42), 1_000); // 42
 * ```
 */
export function deadline<T>(p: Promise<T>, ms: number, options: WaitOptions = {}): Promise<T> {
  const { signal } = options;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    // Whichever comes first clears the others at once: no timer outlives it.
    const finish = <A>(settle: (a: A) => void) => (a: A) => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", onAbort);
      settle(a);
    };
    const timer = setTimeout(() => finish(reject)(new DeadlineError(ms)), ms);
    if (options.unref) unref(timer);
    const onAbort = () => finish(reject)(signal!.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    p.then(finish(resolve), finish(reject));
  });
}

/**
 * Waits for `p` at most `ms`; never rejects. True when `p` settled (either
 * way) in time, false at the deadline.
 *
 * @example
 * ```ts
 * import { settleWithin } from "./async.ts";
 * const closed = await settleWithin(Promise.reject(new Error("gone")), 100); // true
 * ```
 */
export function settleWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return deadline(p, ms).then(() => true, (err) => !(err instanceof DeadlineError));
}

/** Options of {@link delay}. */
export interface DelayOptions extends WaitOptions {
  /** Ends the pause early when it settles (either way). */
  until?: Promise<unknown>;
}

/**
 * Resolves after `ms`, or at once when `signal` aborts or `until` settles;
 * never rejects, and never leaves a timer behind.
 *
 * @example
 * ```ts
 * import { delay } from "./async.ts";
 * const stop = new AbortController();
 * const paused = delay(60_000, { signal: stop.signal });
 * stop.abort(); // the pause ends now
 * await paused;
 * ```
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal, until } = options;
  if (signal?.aborted) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (options.unref) unref(timer);
    signal?.addEventListener("abort", done, { once: true });
    until?.then(done, done);
  });
}

/**
 * `p`'s outcome, or a rejection with `signal.reason` as soon as `signal`
 * aborts; `p` goes on for whoever else waits for it.
 *
 * @example
 * ```ts
 * import { abortable } from "./async.ts";
 * const ac = new AbortController();
 * const waiting = abortable(new Promise(() => {}), ac.signal);
 * ac.abort(new Error("no longer wanted"));
 * await waiting.catch((err) => console.log(err.message)); // "no longer wanted"
 * ```
 */
export function abortable<V>(p: Promise<V>, signal: AbortSignal): Promise<V> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<V>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    const finish = <A>(settle: (a: A) => void) => (a: A) => {
      signal.removeEventListener("abort", onAbort);
      settle(a);
    };
    p.then(finish(resolve), finish(reject));
  });
}

/** Options of {@link Backoff}. */
export interface BackoffOptions {
  /** The first pause, ms. */
  firstMs: number;
  /** The longest pause, ms; each pause doubles the last up to it. */
  maxMs: number;
  /**
   * `"half"`: each pause is drawn from [p/2, p) so that many clients do not
   * retry in lockstep. Default `"none"`: exactly p.
   */
  jitter?: "none" | "half";
}

/**
 * Exponential backoff: pauses that double from `firstMs` up to `maxMs`,
 * optionally jittered, until {@link Backoff.reset}.
 *
 * @example
 * ```ts
 * import { Backoff } from "./async.ts";
 * const b = new Backoff({ firstMs: 100, maxMs: 300 });
 * console.log(b.next(), b.next(), b.next()); // 100 200 300
 * b.reset();
 * console.log(b.next()); // 100
 * ```
 */
export class Backoff {
  #o: BackoffOptions;
  #ms: number;

  /** A backoff at its first pause. */
  constructor(options: BackoffOptions) {
    this.#o = options;
    this.#ms = options.firstMs;
  }

  /** The next pause, ms; the one after it doubles (up to `maxMs`). */
  next(): number {
    const ms = this.#ms;
    this.#ms = Math.min(ms * 2, this.#o.maxMs);
    return this.#o.jitter === "half" ? ms / 2 + Math.random() * ms / 2 : ms;
  }

  /** Starts over at `firstMs` (after a success). */
  reset(): void {
    this.#ms = this.#o.firstMs;
  }
}

/** Options of {@link retry}. */
export interface RetryOptions extends BackoffOptions {
  /**
   * Stops retrying: checked after each pause (which it does not cut short);
   * `retry` then resolves `undefined`.
   */
  stopped?: () => boolean;
  /** Called with each failure and the pause before the next attempt, ms. */
  onRetry?: (err: unknown, delayMs: number) => void;
  /**
   * The failure that led here, when the first attempt already failed:
   * `retry` pauses (and reports it) before its first call of `fn`.
   */
  after?: unknown;
}

/**
 * Calls `fn` until it resolves, pausing with {@link Backoff} between
 * attempts, and resolves its value; `undefined` once `stopped()` says so.
 *
 * @example
 * ```ts
 * import { retry } from "./async.ts";
 * let calls = 0;
 * const v = await retry(async () => {
 *   if (++calls < 3) throw new Error("not yet");
 *   return calls;
 * }, { firstMs: 1, maxMs: 4 }); // 3
 * ```
 */
export async function retry<T>(
  fn: () => Promise<T>,
  options: RetryOptions,
): Promise<T | undefined> {
  const backoff = new Backoff(options);
  let failed = "after" in options;
  let err = options.after;
  for (;;) {
    if (failed) {
      const ms = backoff.next();
      options.onRetry?.(err, ms);
      await delay(ms);
      if (options.stopped?.()) return undefined;
    }
    try {
      return await fn();
    } catch (e) {
      err = e;
      failed = true;
    }
  }
}

/**
 * Lets the process exit while `timer` is pending, where timers are objects
 * with `unref()` (Node, Bun). Deno's and the web's timers are numbers, which
 * only a runtime-specific call could unref: there this is a no-op, and the
 * cache clears its timers itself at `close()`.
 *
 * @example
 * ```ts
 * import { unref } from "./async.ts";
 * const timer = setTimeout(() => {}, 1_000);
 * unref(timer);
 * clearTimeout(timer);
 * ```
 */
export function unref(timer: unknown): void {
  if (typeof timer === "object" && timer !== null && "unref" in timer) {
    (timer as { unref(): void }).unref();
  }
}
