/**
 * Creating a KV bucket's stream exactly as the `nats` CLI (natscli v0.5.0,
 * nats.go's `CreateKeyValue`) does, so that a bucket made by kvedge and one
 * made by `nats kv add` are the same stream: either tool's create of an
 * existing bucket with the same settings then succeeds instead of failing
 * with "stream name already in use". nats.js's `Kvm.create()` differs in one
 * setting (`deny_delete` is left false) and cannot be told otherwise.
 *
 * @module
 */
import { nanos } from "@nats-io/nats-core";
import {
  DiscardPolicy,
  type JetStreamManager,
  RetentionPolicy,
  StorageType,
  type StreamConfig,
  type StreamInfo,
} from "@nats-io/jetstream";
import { KV_SUBJECT_PREFIX, kvStreamName } from "./kv_layout.ts";
import { isStreamNotFound } from "./nats_errors.ts";

/** The options of a new bucket (0 or absent: unlimited / none). */
export interface KvBucketOptions {
  /** Revisions kept per key (at least 1). */
  history: number;
  /** Stream replicas. */
  replicas: number;
  /** Bucket-wide max age, ms. */
  ttlMs?: number;
  /** Bucket size limit, bytes. */
  maxBytes?: number;
  /** Largest value, bytes. */
  maxValueSize?: number;
  /** Where the stream keeps its messages. */
  storage: "file" | "memory";
  /** Per-key TTL: how long the server's delete markers live, ms (nats-server 2.11+). */
  markerTtlMs?: number;
  /** The stream's description. */
  description?: string;
}

/** The server's default duplicate window, which natscli caps a short TTL below. */
const DUPLICATE_WINDOW_MS = 120_000;

/**
 * The stream configuration natscli's `nats kv add` sends for `bucket`.
 *
 * @example
 * ```ts
 * import { kvStreamConfig } from "./kv_create.ts";
 * const c = kvStreamConfig("cfg", { history: 10, replicas: 3, storage: "file" });
 * console.log(c.name, c.deny_delete); // "KV_cfg" true
 * ```
 */
export function kvStreamConfig(
  bucket: string,
  s: KvBucketOptions,
): Partial<StreamConfig> & { name: string } {
  const ttlMs = s.ttlMs ?? 0;
  const markerTtlMs = s.markerTtlMs ?? 0;
  return {
    name: kvStreamName(bucket),
    ...(s.description ? { description: s.description } : {}),
    subjects: [`${KV_SUBJECT_PREFIX}${bucket}.>`],
    retention: RetentionPolicy.Limits,
    max_msgs_per_subject: s.history,
    max_msgs: -1,
    max_bytes: s.maxBytes && s.maxBytes > 0 ? s.maxBytes : -1,
    max_age: nanos(ttlMs),
    max_msg_size: s.maxValueSize && s.maxValueSize > 0 ? s.maxValueSize : -1,
    max_consumers: -1,
    storage: s.storage === "memory" ? StorageType.Memory : StorageType.File,
    num_replicas: s.replicas,
    discard: DiscardPolicy.New,
    duplicate_window: nanos(ttlMs > 0 && ttlMs < DUPLICATE_WINDOW_MS ? ttlMs : DUPLICATE_WINDOW_MS),
    allow_rollup_hdrs: true,
    deny_delete: true,
    allow_direct: true,
    ...(markerTtlMs > 0
      ? { allow_msg_ttl: true, subject_delete_marker_ttl: nanos(markerTtlMs) }
      : {}),
  };
}

/**
 * The bucket's stream info, after creating the stream with
 * {@linkcode kvStreamConfig} if it does not exist. An existing bucket is kept
 * as it is, whatever its settings (as `Kvm.create()` does).
 *
 * @example
 * ```ts ignore
 * import { jetstreamManager } from "@nats-io/jetstream";
 * import { ensureKvBucket } from "./kv_create.ts";
 * const info = await ensureKvBucket(await jetstreamManager(nc), "cfg", {
 *   history: 10, replicas: 1, storage: "file",
 * });
 * ```
 */
export async function ensureKvBucket(
  jsm: JetStreamManager,
  bucket: string,
  options: KvBucketOptions,
): Promise<StreamInfo> {
  try {
    return await jsm.streams.info(kvStreamName(bucket));
  } catch (err) {
    if (!isStreamNotFound(err)) throw err;
  }
  return await jsm.streams.add(kvStreamConfig(bucket, options));
}
