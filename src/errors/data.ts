/**
 * Failures about data: a value that fails its schema or codec, a bad key, a
 * loader that threw, a projection's map that threw, a bookmark that cannot be
 * honoured.
 *
 * @module
 */
import { KvedgeError } from "./kvedge_error.ts";

/**
 * One problem found by a schema, as a path and a message.
 *
 * @example
 * ```ts
 * import { ValidationError, type ValidationIssue } from "../../mod.ts";
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
 * import { ValidationError } from "../errors.ts";
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
 * import { KeyError } from "../errors.ts";
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
 * The user's `loader` failed; the original error is the `cause`. Loader
 * failures are never cached.
 *
 * @example
 * ```ts
 * import { LoaderError } from "../errors.ts";
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
 * A stored value fails the cache's codec or schema (it was written by another
 * client, e.g. `nats kv put` of text into a JSON bucket). Such a value is never
 * served: reading it throws this until a valid value replaces it.
 *
 * @example
 * ```ts
 * import { DecodeError } from "../errors.ts";
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
 * import { ProjectionMapError } from "../errors.ts";
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
 * The codes of a {@link BookmarkError}.
 *
 * @example
 * ```ts
 * import type { BookmarkErrorCode } from "../errors.ts";
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
 * import { BookmarkError } from "../errors.ts";
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
