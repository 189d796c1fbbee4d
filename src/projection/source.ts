/**
 * What a projection reads and how its run is named: the source stream, its
 * filter and (for a bucket source) its KV prefix, the durable consumer's name
 * and description, and the status a run starts from.
 *
 * @module
 */
import { kvStreamName, kvSubject, kvSubjectPrefix } from "../kv_layout.ts";
import type { Projection, ProjectionStatus } from "./types.ts";

/** A projection's source and consumer, resolved. */
export interface SourceSpec {
  /** The source stream. */
  stream: string;
  /** The subject filter, if any. */
  filter: string | undefined;
  /** `$KV.<bucket>.` for a bucket source (an event's key follows it), else undefined. */
  kvPrefix: string | undefined;
  /** The source as the status shows it. */
  label: string;
  /** The durable consumer: `projection_<name>`. */
  durable: string;
  /** The consumer's description. */
  description: string;
}

/**
 * Resolves `projection`'s source and consumer.
 *
 * @example
 * ```ts ignore
 * const spec = resolveSource(projection); // { stream: "KV_users", filter: "$KV.users.>", ... }
 * ```
 */
export function resolveSource(projection: Projection<unknown>): SourceSpec {
  const src = projection.source;
  const named = {
    durable: `projection_${projection.name}`,
    description: `kvedge projection ${projection.name} -> ${projection.target.bucket}`,
  };
  if ("bucket" in src) {
    return {
      stream: kvStreamName(src.bucket),
      kvPrefix: kvSubjectPrefix(src.bucket),
      filter: kvSubject(src.bucket, src.keys),
      label: `bucket ${src.bucket} ${src.keys}`,
      ...named,
    };
  }
  return {
    stream: src.stream,
    kvPrefix: undefined,
    filter: src.subject,
    label: `stream ${src.stream}${src.subject ? " " + src.subject : ""}`,
    ...named,
  };
}

/**
 * The status of a run of `projection` that has not started yet.
 *
 * @example
 * ```ts ignore
 * const status = initialStatus(projection, resolveSource(projection)); // state "starting"
 * ```
 */
export function initialStatus(projection: Projection<unknown>, spec: SourceSpec): ProjectionStatus {
  return {
    name: projection.name,
    source: spec.label,
    target: projection.target.bucket,
    consumer: spec.durable,
    state: "starting",
    since: Date.now(),
    checkpoint: 0,
    sourceSeq: 0,
    lag: 0,
    epoch: "",
    events: 0,
    applied: 0,
    skipped: 0,
    ignored: 0,
    conflicts: 0,
    retries: 0,
    mapErrors: 0,
  };
}
