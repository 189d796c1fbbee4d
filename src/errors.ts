/**
 * Typed errors of kvedge. Callers branch on the class or on `code`, never on
 * the message text.
 *
 * @module
 */

/**
 * Stable machine-readable error codes.
 *
 * @example
 * ```ts
 * import { type ErrorCode, KvedgeError } from "../mod.ts";
 * function codeOf(err: unknown): ErrorCode | undefined {
 *   return err instanceof KvedgeError ? err.code : undefined;
 * }
 * ```
 */
export type ErrorCode =
  | "CONFLICT"
  | "UNAVAILABLE"
  | "VALIDATION"
  | "BAD_KEY"
  | "BUCKET_NOT_FOUND"
  | "PERMISSION"
  | "CLOSED"
  | "LOADER"
  | "UNSUPPORTED"
  | "DECODE"
  | "OVERFLOW"
  | "BAD_BOOKMARK"
  | "BOOKMARK_AHEAD"
  | "BOOKMARK_NOT_REACHED"
  | "TOO_LARGE"
  | "UNSUPPORTED_RUNTIME";

/**
 * Base class of every failure kvedge reports about the world (as opposed to
 * programming errors, which are `TypeError`/`RangeError`).
 *
 * @example
 * ```ts
 * import { KvedgeError } from "./errors.ts";
 * try {
 *   throw new KvedgeError("UNAVAILABLE", "Cannot get: NATS is unreachable");
 * } catch (err) {
 *   if (err instanceof KvedgeError) console.log(err.code);
 * }
 * ```
 */
export class KvedgeError extends Error {
  /** Stable code to branch on. */
  readonly code: ErrorCode;
  /** Builds an error with a code, a message and an optional cause. */
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/**
 * A compare-and-set lost: the key's revision was not the expected one, or a
 * `create()` found the key present.
 *
 * @example
 * ```ts
 * import { ConflictError } from "./errors.ts";
 * const err = new ConflictError("Cannot update \"a\": revision is 5, expected 4", { key: "a", expected: 4 });
 * console.log(err.code, err.key);
 * ```
 */
export class ConflictError extends KvedgeError {
  /** The key the write was for. */
  readonly key: string;
  /** The revision the caller expected (0 for create-only). */
  readonly expected: number | undefined;
  /** Builds a conflict for `key`. */
  constructor(
    message: string,
    details: { key: string; expected?: number; cause?: unknown },
  ) {
    super("CONFLICT", message, { cause: details.cause });
    this.key = details.key;
    this.expected = details.expected;
  }
}

/**
 * NATS could not be reached in time: a miss, a write or a listing failed fast
 * instead of hanging.
 *
 * @example
 * ```ts
 * import { UnavailableError } from "./errors.ts";
 * const err = new UnavailableError("Cannot get \"a\": NATS is disconnected");
 * console.log(err.code); // "UNAVAILABLE"
 * ```
 */
export class UnavailableError extends KvedgeError {
  /** Builds an unavailability error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super("UNAVAILABLE", message, options);
  }
}

/**
 * The cache refused work at once because a bound of its own was reached
 * (`maxConcurrentMisses`): retry later. A kind of {@link UnavailableError}
 * (same `code`), so callers that retry on unavailability need no change.
 *
 * @example
 * ```ts
 * import { OverloadedError, UnavailableError } from "./errors.ts";
 * const err = new OverloadedError("Cannot get \"a\": 256 misses in flight", 256);
 * console.log(err instanceof UnavailableError, err.limit); // true 256
 * ```
 */
export class OverloadedError extends UnavailableError {
  /** The bound that was reached. */
  readonly limit: number;
  /** Builds the error with the bound that was reached. */
  constructor(message: string, limit: number) {
    super(message);
    this.limit = limit;
  }
}

/**
 * One problem found by a schema, as a path and a message.
 *
 * @example
 * ```ts
 * import { ValidationError, type ValidationIssue } from "../mod.ts";
 * function issuesOf(err: unknown): ValidationIssue[] {
 *   return err instanceof ValidationError ? err.issues : [];
 * }
 * ```
 */
export interface ValidationIssue {
  /** Where in the value the problem is (property names and indexes). */
  path: (string | number)[];
  /** What is wrong there. */
  message: string;
}

/**
 * A value failed the cache's zod schema (on write, before any I/O; or on read,
 * in which case the value is never served).
 *
 * @example
 * ```ts
 * import { ValidationError } from "./errors.ts";
 * const err = new ValidationError("Cannot set \"a\": value does not match the schema", [
 *   { path: ["name"], message: "Required" },
 * ]);
 * console.log(err.issues.length);
 * ```
 */
export class ValidationError extends KvedgeError {
  /** The schema's findings. */
  readonly issues: ValidationIssue[];
  /** Builds a validation error from schema issues. */
  constructor(message: string, issues: ValidationIssue[], options?: { cause?: unknown }) {
    super("VALIDATION", message, options);
    this.issues = issues;
  }
}

/**
 * A key is not a valid NATS KV key (checked before any I/O).
 *
 * @example
 * ```ts
 * import { KeyError } from "./errors.ts";
 * const err = new KeyError("Cannot get: key \"a..b\" has an empty token", "a..b");
 * console.log(err.code); // "BAD_KEY"
 * ```
 */
export class KeyError extends KvedgeError {
  /** The offending key, truncated to 128 characters. */
  readonly key: string;
  /** Builds a key error. */
  constructor(message: string, key: string) {
    super("BAD_KEY", message);
    this.key = key.length > 128 ? key.slice(0, 128) + "…" : key;
  }
}

/**
 * The bucket does not exist and the cache was not asked to create it.
 *
 * @example
 * ```ts
 * import { BucketNotFoundError } from "./errors.ts";
 * const err = new BucketNotFoundError("users");
 * console.log(err.message);
 * ```
 */
export class BucketNotFoundError extends KvedgeError {
  /** The missing bucket. */
  readonly bucket: string;
  /**
   * Builds the error for `bucket` while attempting `action` (default
   * "open cache", which also says how to have the bucket created).
   */
  constructor(bucket: string, options: { cause?: unknown; action?: string } = {}) {
    const action = options.action ?? "open cache";
    const hint = action.startsWith("open cache") ? ` (pass "create" to make it)` : "";
    super(
      "BUCKET_NOT_FOUND",
      `Cannot ${action}: bucket "${bucket}" does not exist${hint}`,
      { cause: options.cause },
    );
    this.bucket = bucket;
  }
}

/**
 * NATS refused the operation for lack of permission (the credentials do not
 * allow that subject).
 *
 * @example
 * ```ts
 * import { PermissionError } from "./errors.ts";
 * const err = new PermissionError("Cannot set \"a\": not permitted by the NATS credentials");
 * console.log(err.code); // "PERMISSION"
 * ```
 */
export class PermissionError extends KvedgeError {
  /** Builds a permission error. */
  constructor(message: string, options?: { cause?: unknown }) {
    super("PERMISSION", message, options);
  }
}

/**
 * The cache was closed; no further operation is possible.
 *
 * @example
 * ```ts
 * import { ClosedError } from "./errors.ts";
 * console.log(new ClosedError("get").message);
 * ```
 */
export class ClosedError extends KvedgeError {
  /** Builds the error for the attempted action. */
  constructor(action: string) {
    super("CLOSED", `Cannot ${action}: the cache is closed`);
  }
}

/**
 * The user's `loader` failed; the original error is the `cause`. Loader
 * failures are never cached.
 *
 * @example
 * ```ts
 * import { LoaderError } from "./errors.ts";
 * const err = new LoaderError("user.1", new Error("db down"));
 * console.log(err.code, err.key);
 * ```
 */
export class LoaderError extends KvedgeError {
  /** The key whose load failed. */
  readonly key: string;
  /** Builds the error, wrapping the loader's failure. */
  constructor(key: string, cause: unknown) {
    super("LOADER", `Cannot load "${key}": the loader failed`, { cause });
    this.key = key;
  }
}

/**
 * The operation needs a newer nats-server, or a bucket configured for it
 * (e.g. per-key TTL needs nats-server 2.11+ and a bucket created with limit
 * markers). Nothing was written.
 *
 * @example
 * ```ts
 * import { UnsupportedError } from "./errors.ts";
 * const err = new UnsupportedError("Cannot set \"a\": per-key TTL needs nats-server 2.11 or newer (connected to 2.9.10)", {
 *   feature: "per-key TTL",
 *   requiredVersion: "2.11.0",
 *   serverVersion: "2.9.10",
 * });
 * console.log(err.code, err.requiredVersion); // "UNSUPPORTED" "2.11.0"
 * ```
 */
export class UnsupportedError extends KvedgeError {
  /** The feature asked for, e.g. `"per-key TTL"`. */
  readonly feature: string;
  /** The oldest nats-server version that has it. */
  readonly requiredVersion: string;
  /** The connected server's version, when known. */
  readonly serverVersion: string | undefined;
  /** Builds the error; the message names the feature and the version needed. */
  constructor(
    message: string,
    details: {
      feature: string;
      requiredVersion: string;
      serverVersion?: string;
      cause?: unknown;
    },
  ) {
    super("UNSUPPORTED", message, { cause: details.cause });
    this.feature = details.feature;
    this.requiredVersion = details.requiredVersion;
    this.serverVersion = details.serverVersion;
  }
}

/**
 * A stored value fails the cache's codec or schema (it was written by another
 * client, e.g. `nats kv put` of text into a JSON bucket). Such a value is never
 * served: reading it throws this until a valid value replaces it.
 *
 * @example
 * ```ts
 * import { DecodeError } from "./errors.ts";
 * const err = new DecodeError("get", "greeting", 7, new SyntaxError("not JSON"));
 * console.log(err.code, err.key, err.revision); // "DECODE" "greeting" 7
 * ```
 */
export class DecodeError extends KvedgeError {
  /** The key whose value cannot be decoded. */
  readonly key: string;
  /** The KV revision of that value. */
  readonly revision: number;
  /** Builds the error for the attempted action; `cause` is the codec's or schema's failure. */
  constructor(action: string, key: string, revision: number, cause: unknown) {
    super(
      "DECODE",
      `Cannot ${action} "${key}": the stored value at revision ${revision} does not pass ` +
        `the cache's codec or schema`,
      { cause },
    );
    this.key = key;
    this.revision = revision;
  }
}

/**
 * The user's projection `map` (or what it returned) failed: a property of
 * the event and the code, not of the world, so retrying it blindly would not
 * help. A runner reports it in `status().lastError` and, with
 * `onMapError: "stop"`, `caughtUp()` rejects with it as the `cause`.
 *
 * @example
 * ```ts
 * import { ProjectionMapError } from "./errors.ts";
 * const err = new ProjectionMapError("Cannot project event 7: map threw", 7);
 * console.log(err.code, err.seq); // "VALIDATION" 7
 * ```
 */
export class ProjectionMapError extends KvedgeError {
  /** Source sequence of the event. */
  readonly seq: number;
  /** Builds the error for the event at `seq`. */
  constructor(message: string, seq: number, cause?: unknown) {
    super("VALIDATION", message, { cause });
    this.seq = seq;
  }
}

/**
 * A reader of `changes()` or `events()` fell more than its buffer behind
 * (the cache never grows memory for a slow reader); the iterator fails with
 * this. Start a new iterator, or replay with `changes({ fromRevision })`.
 *
 * @example
 * ```ts
 * import { OverflowError } from "./errors.ts";
 * const err = new OverflowError("follow changes", 10_000);
 * console.log(err.code); // "OVERFLOW"
 * ```
 */
export class OverflowError extends KvedgeError {
  /** How many unread items the reader may hold. */
  readonly bufferSize: number;
  /** Builds the error for `action` ("follow changes") and the buffer's size. */
  constructor(action: string, bufferSize: number) {
    super(
      "OVERFLOW",
      `Cannot ${action}: the reader fell more than ${bufferSize} items behind`,
    );
    this.bufferSize = bufferSize;
  }
}

/**
 * The codes of a {@link BookmarkError}.
 *
 * @example
 * ```ts
 * import type { BookmarkErrorCode } from "./errors.ts";
 * const retryable = (code: BookmarkErrorCode) => code === "BOOKMARK_NOT_REACHED";
 * console.log(retryable("BOOKMARK_AHEAD")); // false
 * ```
 */
export type BookmarkErrorCode = "BAD_BOOKMARK" | "BOOKMARK_AHEAD" | "BOOKMARK_NOT_REACHED";

/**
 * A read with a bookmark (rule 8) could not be answered no older than it:
 *
 * - `BOOKMARK_NOT_REACHED`: the cache had not applied the revision within
 *   `bookmarkWaitMs` and the fallback read (the stream leader; in a region,
 *   the mirror once caught up, else the hub) failed or could not vouch for
 *   it (NATS or the hub unreachable). Retryable; nothing older was served.
 * - `BOOKMARK_AHEAD`: the revision is far beyond the bucket's last sequence
 *   (more than 1 000 past it, as the stream leader reports it): a bookmark
 *   from another bucket's epoch or forged. Not retryable.
 * - `BAD_BOOKMARK`: the bookmark text is malformed or over its bounds.
 *
 * @example
 * ```ts
 * import { BookmarkError } from "./errors.ts";
 * const err = new BookmarkError("BOOKMARK_NOT_REACHED", "Cannot get \"a\": not reached", {
 *   bucket: "users",
 *   revision: 42,
 *   reached: 40,
 * });
 * console.log(err.code, err.revision, err.reached); // "BOOKMARK_NOT_REACHED" 42 40
 * ```
 */
export class BookmarkError extends KvedgeError {
  /** The bucket whose revision was asked for ("" for a malformed bookmark). */
  readonly bucket: string;
  /** The revision asked for (0 for a malformed bookmark). */
  readonly revision: number;
  /** The revision the cache had applied when it gave up (0 if unknown). */
  readonly reached: number;
  /** Builds the error; `code` says which of the three failures it is. */
  constructor(
    code: BookmarkErrorCode,
    message: string,
    details: { bucket: string; revision: number; reached?: number; cause?: unknown },
  ) {
    super(code, message, { cause: details.cause });
    this.bucket = details.bucket;
    this.revision = details.revision;
    this.reached = details.reached ?? 0;
  }
}

/**
 * A read would return more than the bound its caller set (`history(key, {
 * maxBytes })`); it stopped reading at the bound instead of holding it all.
 *
 * @example
 * ```ts
 * import { TooLargeError } from "./errors.ts";
 * const err = new TooLargeError("read history of \"a\"", 1024);
 * console.log(err.code, err.limitBytes); // "TOO_LARGE" 1024
 * ```
 */
export class TooLargeError extends KvedgeError {
  /** The bound, in bytes. */
  readonly limitBytes: number;
  /** Builds the error for `action` and the bound that was passed. */
  constructor(action: string, limitBytes: number) {
    super("TOO_LARGE", `Cannot ${action}: the result is larger than ${limitBytes} bytes`);
    this.limitBytes = limitBytes;
  }
}

/**
 * The JavaScript runtime lacks something kvedge needs, found at open before
 * any connection is made (instead of a hang or a `TypeError` deep inside):
 * `Promise.withResolvers` (Node < 22), or a global `WebSocket` for `ws://` and
 * `wss://` URLs when no `wsFactory` is given.
 *
 * @example
 * ```ts
 * import { UnsupportedRuntimeError } from "./errors.ts";
 * const err = new UnsupportedRuntimeError("Cannot open cache: this runtime has no Promise.withResolvers", "Promise.withResolvers");
 * console.log(err.code, err.missing); // "UNSUPPORTED_RUNTIME" "Promise.withResolvers"
 * ```
 */
export class UnsupportedRuntimeError extends KvedgeError {
  /** What the runtime lacks, e.g. `"Promise.withResolvers"` or `"WebSocket"`. */
  readonly missing: string;
  /** Builds the error; the message says what is missing and what to do. */
  constructor(message: string, missing: string) {
    super("UNSUPPORTED_RUNTIME", message);
    this.missing = missing;
  }
}
