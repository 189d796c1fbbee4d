/**
 * The errors of the operator scripts and their one-line wording: a usage
 * mistake (exit 2, `UsageError` from `host/usage_error.ts`), a described
 * failure (exit 1), and {@link oneLine}, which
 * turns any error, the NATS client's included, into one line an operator can
 * act on.
 *
 * @module
 */
import {
  AuthorizationError,
  ConnectionError,
  NoRespondersError,
  PermissionViolationError,
  TimeoutError,
} from "@nats-io/nats-core";
import { JetStreamApiError } from "@nats-io/jetstream";
import { redactSecrets } from "../../host/nats_env.ts";

/** A mistake in the command line (exit code 2): the one class, in `host/usage_error.ts`. */
export { UsageError } from "../../host/usage_error.ts";

/**
 * A failure that has already been described for the user: one line, exit code 1.
 *
 * @example
 * ```ts
 * import { CliError } from "./errors.ts";
 * throw new CliError('bucket "demo" does not exist');
 * ```
 */
export class CliError extends Error {
  /** Process exit code, 1 unless told otherwise. */
  readonly exitCode: number;
  /** Builds the error. */
  constructor(message: string, options?: { exitCode?: number; cause?: unknown }) {
    super(message, { cause: options?.cause });
    this.name = "CliError";
    this.exitCode = options?.exitCode ?? 1;
  }
}

/**
 * Describes any error on one line, turning the NATS client's errors into
 * something an operator can act on.
 *
 * @example
 * ```ts
 * import { oneLine } from "./errors.ts";
 * console.log(oneLine(new Error("boom\nmore"))); // "boom more"
 * ```
 */
export function oneLine(err: unknown): string {
  let msg: string;
  if (err instanceof TimeoutError) {
    msg = "timed out waiting for NATS";
  } else if (err instanceof NoRespondersError) {
    msg = "no responders (is JetStream enabled, and does the bucket exist?)";
  } else if (err instanceof PermissionViolationError || err instanceof AuthorizationError) {
    msg = `not permitted: ${err.message}`;
  } else if (err instanceof ConnectionError) {
    msg = err.message;
  } else if (err instanceof JetStreamApiError) {
    msg = err.message;
  } else if (err instanceof Error) {
    msg = err.message || err.name;
  } else {
    msg = String(err);
  }
  return redactSecrets(msg.replace(/\s*\n\s*/g, " ").trim());
}
