/**
 * Failures of the world: a lost compare-and-set, NATS unreachable or
 * overloaded, a missing bucket, a refused permission, a closed cache, a
 * feature the server or runtime lacks, a bound reached.
 *
 * @module
 */
import { KvedgeError } from "./kvedge_error.ts";

/**
 * A compare-and-set lost: the key's revision was not the expected one, or a
 * `create()` found the key present.
 *
 * @example
 * ```ts
 * import { ConflictError } from "../errors.ts";
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
 * import { UnavailableError } from "../errors.ts";
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
 * import { OverloadedError, UnavailableError } from "../errors.ts";
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
 * The bucket does not exist and the cache was not asked to create it.
 *
 * @example
 * ```ts
 * import { BucketNotFoundError } from "../errors.ts";
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
 * import { PermissionError } from "../errors.ts";
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
 * import { ClosedError } from "../errors.ts";
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
 * The operation needs a newer nats-server, or a bucket configured for it
 * (e.g. per-key TTL needs nats-server 2.11+ and a bucket created with limit
 * markers). Nothing was written.
 *
 * @example
 * ```ts
 * import { UnsupportedError } from "../errors.ts";
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
 * A reader of `changes()` or `events()` fell more than its buffer behind
 * (the cache never grows memory for a slow reader); the iterator fails with
 * this. Start a new iterator, or replay with `changes({ fromRevision })`.
 *
 * @example
 * ```ts
 * import { OverflowError } from "../errors.ts";
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
 * A read would return more than the bound its caller set (`history(key, {
 * maxBytes })`); it stopped reading at the bound instead of holding it all.
 *
 * @example
 * ```ts
 * import { TooLargeError } from "../errors.ts";
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
 * import { UnsupportedRuntimeError } from "../errors.ts";
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
