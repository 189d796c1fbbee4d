/**
 * `UsageError`: a mistake in a command line (an unknown flag, a bad value, a
 * missing argument), the one class for it. Every entry point that reads argv
 * (the `kv`, `seed`, `bench` and `soak` scripts, the projector) throws it and
 * answers it with its usage and exit code 2.
 *
 * @module
 */

/**
 * A mistake in the command line: reported on one line with exit code 2.
 *
 * @example
 * ```ts
 * import { UsageError } from "./usage_error.ts";
 * const err = new UsageError('unknown command "frob"');
 * console.log(err.name, err.message); // UsageError unknown command "frob"
 * ```
 */
export class UsageError extends Error {
  /** Builds a usage error. */
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}
