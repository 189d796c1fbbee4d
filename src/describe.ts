/**
 * `describe(err)`: an error as one line, `Name: message`, with the
 * credentials of any URL in it redacted, for logs, events and status fields
 * (no stack). The one place an error becomes text: the library's `lastError`
 * and events, and the workers' log lines (`workers/_log.ts` re-exports it).
 *
 * @module
 */

/** `scheme://userinfo@` inside any text. */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@,]+@/gi;

/**
 * `text` with the credentials of every URL in it replaced by `***`, e.g.
 * `nats://user:pass@host` → `nats://***@host`.
 *
 * @example
 * ```ts
 * import { redactSecrets } from "./describe.ts";
 * console.log(redactSecrets("cannot connect to nats://ops:s3cret@10.0.0.1:4222")); // "cannot connect to nats://***@10.0.0.1:4222"
 * ```
 */
export function redactSecrets(text: string): string {
  return text.replace(URL_USERINFO, "$1***@");
}

/**
 * An error as one line, `Name: message`, anything else as `String(value)`;
 * credentials in URLs redacted ({@link redactSecrets}).
 *
 * @example
 * ```ts
 * import { describe } from "./describe.ts";
 * console.log(describe(new TypeError("no route to nats://u:p@h:4222"))); // "TypeError: no route to nats://***@h:4222"
 * ```
 */
export function describe(err: unknown): string {
  return redactSecrets(err instanceof Error ? `${err.name}: ${err.message}` : String(err));
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
