/**
 * Translation of NATS client failures into kvedge's typed errors; what a
 * failure is, is decided in `src/nats_errors.ts`.
 *
 * @module
 */
import {
  ClosedConnectionError,
  ConnectionError,
  DrainingConnectionError,
  NoRespondersError,
  RequestError,
  TimeoutError,
} from "@nats-io/nats-core";
import {
  BucketNotFoundError,
  ConflictError,
  KvedgeError,
  PermissionError,
  UnavailableError,
} from "./errors.ts";
import {
  isMaxConsumers,
  isPermissionDenied,
  isStreamNotFound,
  isWrongLastSequence,
} from "./nats_errors.ts";

/** What was attempted when a NATS call failed. */
export interface NatsAttempt {
  /** What the caller was doing, e.g. `get "a"` (the message says "Cannot <action>"). */
  action: string;
  /** The bucket (or stream) it was about. */
  bucket: string;
  /** The key, if one. */
  key?: string;
}

/**
 * Maps a NATS client error raised during `attempt` to a typed kvedge error;
 * messages never include server internals.
 */
export function mapNatsError(err: unknown, attempt: NatsAttempt): KvedgeError {
  const { action, bucket, key } = attempt;
  if (err instanceof KvedgeError) return err;
  if (isWrongLastSequence(err)) {
    return new ConflictError(`Cannot ${action}: the key changed (revision mismatch)`, {
      key: key ?? "",
      cause: err,
    });
  }
  if (isPermissionDenied(err)) {
    return new PermissionError(`Cannot ${action}: not permitted by the NATS credentials`, {
      cause: err,
    });
  }
  if (isStreamNotFound(err)) {
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
  if (isMaxConsumers(err)) {
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
