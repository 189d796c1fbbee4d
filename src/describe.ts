/**
 * `describe(err)`: an error as one line, `Name: message`, for logs and
 * status fields (no stack).
 *
 * @module
 */

/** An error as one line, `Name: message`; anything else as `String(value)`. */
export function describe(err: unknown): string {
  return err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

/**
 * `err` and the errors of its `cause` chain, outermost first (at most 8):
 * nats.js wraps what really happened (e.g. "no responders" inside "jetstream
 * is not enabled"), so a check for a kind of failure looks at all of them.
 *
 * @example
 * ```ts
 * import { errorChain } from "./describe.ts";
 * const err = new Error("jetstream is not enabled", { cause: new Error("no responders") });
 * console.log(errorChain(err).map((e) => e.message)); // ["jetstream is not enabled", "no responders"]
 * ```
 */
export function errorChain(err: unknown): Error[] {
  const out: Error[] = [];
  for (let e = err; e instanceof Error && out.length < 8; e = e.cause) out.push(e);
  return out;
}
