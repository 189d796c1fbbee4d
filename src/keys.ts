/**
 * The key grammar: NATS KV keys, made strict. Checked before any I/O.
 *
 * @module
 */
import { KeyError } from "./errors.ts";

/**
 * Longest key accepted, in bytes (ASCII, so characters). Subjects must fit in a control line.
 *
 * @example
 * ```ts
 * import { MAX_KEY_LENGTH } from "../mod.ts";
 * const fits = (key: string) => key.length <= MAX_KEY_LENGTH;
 * ```
 */
export const MAX_KEY_LENGTH = 512;

const KEY_CHARS = /^[-/_=.a-zA-Z0-9]+$/;
const FILTER_CHARS = /^[-/_=.a-zA-Z0-9*>]+$/;
const BUCKET = /^[-\w]+$/;

/**
 * Returns why `key` is not a valid kvedge key, or `undefined` if it is.
 *
 * Valid keys are tokens of `[-/_=a-zA-Z0-9]` joined by single dots, at most
 * {@link MAX_KEY_LENGTH} characters, with no leading or trailing dot. This is
 * stricter than nats.js, which accepts `..`.
 */
export function keyProblem(key: unknown): string | undefined {
  if (typeof key !== "string") return "a key must be a string";
  if (key.length === 0) return "a key must not be empty";
  if (key.length > MAX_KEY_LENGTH) {
    return `a key must be at most ${MAX_KEY_LENGTH} characters, got ${key.length}`;
  }
  if (!KEY_CHARS.test(key)) {
    return "a key may only contain letters, digits and - / _ = .";
  }
  if (key.startsWith(".") || key.endsWith(".")) return "a key must not start or end with '.'";
  if (key.includes("..")) return "a key must not contain an empty token ('..')";
  return undefined;
}

/** Throws a {@link KeyError} for `key` if it is not valid; `action` names what was attempted. */
export function assertKey(key: unknown, action: string): asserts key is string {
  const problem = keyProblem(key);
  if (problem !== undefined) {
    throw new KeyError(`Cannot ${action}: ${problem}`, String(key));
  }
}

/**
 * Returns why `filter` is not a valid key filter (NATS wildcards `*` as a whole
 * token and `>` as the last token), or `undefined`.
 */
export function filterProblem(filter: unknown): string | undefined {
  if (typeof filter !== "string") return "a key filter must be a string";
  if (filter.length === 0 || filter.length > MAX_KEY_LENGTH) {
    return `a key filter must be 1 to ${MAX_KEY_LENGTH} characters`;
  }
  if (!FILTER_CHARS.test(filter)) {
    return "a key filter may only contain key characters, '*' and '>'";
  }
  const tokens = filter.split(".");
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.length === 0) return "a key filter must not contain an empty token";
    if ((t.includes("*") || t.includes(">")) && t.length !== 1) {
      return "wildcards must be whole tokens";
    }
    if (t === ">" && i !== tokens.length - 1) return "'>' must be the last token";
  }
  return undefined;
}

/** Throws a {@link KeyError} if `filter` is not a valid key filter. */
export function assertFilter(filter: unknown, action: string): asserts filter is string {
  const problem = filterProblem(filter);
  if (problem !== undefined) throw new KeyError(`Cannot ${action}: ${problem}`, String(filter));
}

/** Returns why `bucket` is not a valid bucket name, or `undefined`. */
export function bucketProblem(bucket: unknown): string | undefined {
  if (typeof bucket !== "string" || bucket.length === 0) {
    return "a bucket name must be a non-empty string";
  }
  if (bucket.length > 200) return "a bucket name must be at most 200 characters";
  if (!BUCKET.test(bucket)) return "a bucket name may only contain letters, digits, '-' and '_'";
  return undefined;
}

/**
 * Tells whether `key` matches the NATS-style `filter` (`*` one token, `>` the
 * rest). Both are assumed valid.
 */
export function matchesFilter(filter: string, key: string): boolean {
  if (filter === ">") return true;
  if (!filter.includes("*") && !filter.includes(">")) return filter === key;
  const f = filter.split(".");
  const k = key.split(".");
  for (let i = 0; i < f.length; i++) {
    const t = f[i];
    if (t === ">") return k.length > i;
    if (i >= k.length) return false;
    if (t !== "*" && t !== k[i]) return false;
  }
  return f.length === k.length;
}
