/**
 * Waiting without sleeps: {@link waitFor} polls a condition until it holds
 * or a deadline passes, for tests and benchmarks alike.
 *
 * @module
 */
import { deadline as settleBy, DeadlineError, delay } from "../src/async.ts";

/** Options of {@linkcode waitFor}. */
export interface WaitForOptions {
  /** Deadline in milliseconds. Default `10000`. */
  timeoutMs?: number;
  /** Pause between attempts in milliseconds. Default `25`. */
  intervalMs?: number;
  /** What was awaited; starts the error message on timeout. */
  message?: string;
}

/** `T` without its falsy members: what {@linkcode waitFor} can resolve with. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | "" | null | undefined>;

/**
 * Calls `fn` until it returns a truthy value and resolves with that value.
 * Throws from `fn` count as "not yet". Rejects once `timeoutMs` has passed
 * (even if a call hangs), with `message` and the last error in the message.
 *
 * @example
 * ```ts ignore
 * const entry = await waitFor(() => kv.get("a"), { timeoutMs: 5_000, message: "key a appears" });
 * ```
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      const value = await settleBy(Promise.resolve().then(fn), remaining);
      if (value) return value as Truthy<T>;
      lastError = undefined;
    } catch (err) {
      if (err instanceof DeadlineError) break;
      lastError = err;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await delay(pause);
  }
  const what = opts.message ?? "condition";
  const last = lastError === undefined
    ? ""
    : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  throw new Error(`waitFor timed out after ${timeoutMs} ms: ${what}${last}`, {
    cause: lastError,
  });
}
