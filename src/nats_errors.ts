/**
 * What a NATS client failure is, decided once, from the classes and codes
 * nats.js exports (`@nats-io/nats-core`'s error classes, `@nats-io/jetstream`'s
 * `JetStreamApiError` and `JetStreamApiCodes`), never from message text.
 * nats.js wraps what really happened (a permission violation inside a
 * `RequestError`, "no responders" inside `JetStreamNotEnabled`), so every
 * check looks at the whole `cause` chain. `src/errors_map.ts` turns these
 * into kvedge's typed errors; the projection, the bucket setup and the
 * watcher ask here too.
 *
 * @module
 */
import {
  AuthorizationError,
  InvalidArgumentError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import { errorChain } from "./describe.ts";

/**
 * JetStream API error codes kvedge branches on: nats.js's `JetStreamApiCodes`
 * and the ones it does not name (nats-server's `errors.json`).
 */
export const JsCodes = {
  ...JetStreamApiCodes,
  /** `JSMaximumConsumersLimitErr`: "maximum consumers limit reached". */
  MaximumConsumersLimit: 10026,
  /** `JSStreamMessageExceedsMaximumErr`: "message size exceeds maximum allowed". */
  MessageExceedsMaximum: 10054,
} as const;

/**
 * The JetStream API error code of `err` or of an error in its cause chain
 * (`undefined`: none is a `JetStreamApiError`).
 *
 * @example
 * ```ts
 * import { jsApiCode, JsCodes } from "./nats_errors.ts";
 * const code = jsApiCode(new Error("not from JetStream")); // undefined
 * console.log(code === JsCodes.StreamNotFound); // false
 * ```
 */
export function jsApiCode(err: unknown): number | undefined {
  for (const e of errorChain(err)) if (e instanceof JetStreamApiError) return e.code;
  return undefined;
}

/**
 * Whether JetStream answered "stream not found" (code 10059): the bucket's
 * stream does not exist.
 *
 * @example
 * ```ts
 * import { isStreamNotFound } from "./nats_errors.ts";
 * console.log(isStreamNotFound(new Error("stream not found"))); // false: text is not a code
 * ```
 */
export function isStreamNotFound(err: unknown): boolean {
  return jsApiCode(err) === JsCodes.StreamNotFound;
}

/**
 * Whether JetStream answered "consumer not found" (code 10014).
 *
 * @example
 * ```ts
 * import { isConsumerNotFound } from "./nats_errors.ts";
 * console.log(isConsumerNotFound(undefined)); // false
 * ```
 */
export function isConsumerNotFound(err: unknown): boolean {
  return jsApiCode(err) === JsCodes.ConsumerNotFound;
}

/**
 * Whether `err` is JetStream's "wrong last sequence" (codes 10071, 10164):
 * a compare-and-set that lost.
 *
 * @example
 * ```ts
 * import { isWrongLastSequence } from "./nats_errors.ts";
 * console.log(isWrongLastSequence(new Error("boom"))); // false
 * ```
 */
export function isWrongLastSequence(err: unknown): boolean {
  const code = jsApiCode(err);
  return code === JsCodes.StreamWrongLastSequence ||
    code === JsCodes.StreamWrongLastSequenceUnknown;
}

/**
 * Whether JetStream refused a consumer because its stream has as many as it
 * may hold (code 10026).
 *
 * @example
 * ```ts
 * import { isMaxConsumers } from "./nats_errors.ts";
 * console.log(isMaxConsumers(new Error("boom"))); // false
 * ```
 */
export function isMaxConsumers(err: unknown): boolean {
  return jsApiCode(err) === JsCodes.MaximumConsumersLimit;
}

/**
 * Whether the NATS credentials do not allow what was asked: a permission
 * violation (often inside a `RequestError`) or an authorization failure.
 *
 * @example
 * ```ts
 * import { PermissionViolationError, RequestError } from "@nats-io/nats-core";
 * import { isPermissionDenied } from "./nats_errors.ts";
 * const denied = new PermissionViolationError("Permissions Violation", "publish", "$JS.API.INFO");
 * console.log(isPermissionDenied(new RequestError("refused", { cause: denied }))); // true
 * ```
 */
export function isPermissionDenied(err: unknown): boolean {
  return errorChain(err).some((e) =>
    e instanceof PermissionViolationError || e instanceof AuthorizationError
  );
}

/**
 * The message nats.js gives the `InvalidArgumentError` it throws before
 * sending a message over the server's `max_payload`: it has no class or code
 * of its own, so it is told apart by this text, built with nats.js's own
 * formatter so that it follows nats.js's wording.
 */
const MAX_PAYLOAD = InvalidArgumentError.format("payload", "max_payload size exceeded").message;

/**
 * Whether NATS refused a message for its size: nats.js before sending it
 * (over the server's `max_payload`), or JetStream (over the stream's
 * `max_msg_size`, code 10054).
 *
 * @example
 * ```ts
 * import { isMessageTooLarge } from "./nats_errors.ts";
 * console.log(isMessageTooLarge(new Error("boom"))); // false
 * ```
 */
export function isMessageTooLarge(err: unknown): boolean {
  return jsApiCode(err) === JsCodes.MessageExceedsMaximum ||
    errorChain(err).some((e) => e instanceof InvalidArgumentError && e.message === MAX_PAYLOAD);
}

/**
 * Whether nobody answered in time: a request that timed out, no responders,
 * or JetStream answering 503 (a stream or the meta layer without a leader,
 * e.g. code 10008 "JetStream system temporarily unavailable").
 *
 * @example
 * ```ts
 * import { TimeoutError } from "@nats-io/nats-core";
 * import { isUnanswered } from "./nats_errors.ts";
 * console.log(isUnanswered(new TimeoutError())); // true
 * ```
 */
export function isUnanswered(err: unknown): boolean {
  return errorChain(err).some((e) =>
    e instanceof TimeoutError || e instanceof NoRespondersError ||
    (e instanceof RequestError && e.isNoResponders()) ||
    (e instanceof JetStreamApiError && e.status === 503)
  );
}
