/**
 * The base of kvedge's typed errors and their stable codes. Callers branch on
 * the class or on `code`, never on the message text.
 *
 * @module
 */

/**
 * Stable machine-readable error codes.
 *
 * @example
 * ```ts
 * import { type ErrorCode, KvedgeError } from "../../mod.ts";
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
 * import { KvedgeError } from "../errors.ts";
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
