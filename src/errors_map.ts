/**
 * Translation of NATS client failures into kvedge's typed errors.
 *
 * @module
 */
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
} from "@nats-io/nats-core";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";
import {
  BucketNotFoundError,
  ConflictError,
  KvedgeError,
  PermissionError,
  UnavailableError,
} from "./errors.ts";

/** JetStream's "maximum consumers limit reached" (not in `JetStreamApiCodes`). */
const MAXIMUM_CONSUMERS_LIMIT = 10026;

/** Whether `err` is JetStream's "wrong last sequence" (a lost compare-and-set). */
export function isWrongLastSequence(err: unknown): boolean {
  return (err instanceof JetStreamApiError &&
    (err.code === JetStreamApiCodes.StreamWrongLastSequence ||
      err.code === JetStreamApiCodes.StreamWrongLastSequenceUnknown)) ||
    (err instanceof Error && /wrong last sequence/i.test(err.message));
}

/**
 * Maps a NATS client error raised while attempting `action` (e.g. `get "a"`)
 * to a typed kvedge error; messages never include server internals.
 */
export function mapNatsError(
  err: unknown,
  action: string,
  bucket: string,
  key?: string,
): KvedgeError {
  if (err instanceof KvedgeError) return err;
  if (isWrongLastSequence(err)) {
    return new ConflictError(`Cannot ${action}: the key changed (revision mismatch)`, {
      key: key ?? "",
      cause: err,
    });
  }
  if (
    err instanceof PermissionViolationError ||
    (err instanceof Error && /permissions? violation|authorization/i.test(err.message))
  ) {
    return new PermissionError(`Cannot ${action}: not permitted by the NATS credentials`, {
      cause: err,
    });
  }
  if (
    (err instanceof JetStreamApiError && err.code === JetStreamApiCodes.StreamNotFound) ||
    (err instanceof Error && /stream not found/i.test(err.message))
  ) {
    return new BucketNotFoundError(bucket, { cause: err, action });
  }
  if (
    err instanceof TimeoutError || err instanceof NoRespondersError ||
    err instanceof RequestError || err instanceof ClosedConnectionError ||
    err instanceof ConnectionError || err instanceof DrainingConnectionError
  ) {
    const why = err instanceof TimeoutError ? "timed out" : "NATS is unavailable";
    return new UnavailableError(`Cannot ${action}: ${why}`, { cause: err });
  }
  if (
    (err instanceof JetStreamApiError && err.code === MAXIMUM_CONSUMERS_LIMIT) ||
    (err instanceof Error && /maximum consumers limit/i.test(err.message))
  ) {
    // Every edge holds one consumer on the bucket's stream; nats-server 2.15
    // limits a stream to 1 000 unless the stream or the server says otherwise.
    return new UnavailableError(
      `Cannot ${action}: the stream KV_${bucket} has reached its consumer limit (one per edge; ` +
        `nats-server 2.15 allows 1000 per stream by default): raise it with ` +
        `"nats stream edit KV_${bucket} --max-consumers <n>" or the server's ` +
        `jetstream { limits { default_max_consumers } }, or put edges behind regional mirrors`,
      { cause: err },
    );
  }
  return new UnavailableError(
    `Cannot ${action}: ${err instanceof Error ? err.message : String(err)}`,
    {
      cause: err,
    },
  );
}
