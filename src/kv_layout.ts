/**
 * The JetStream KV message layout, in one place: stream and subject names,
 * the headers that mark deletes, purges, rollups and per-key TTLs, and the
 * server's limit/delete markers (2.11+, `Nats-Marker-Reason`). The cache's
 * watcher and write path, the replica bootstrap, projections, the snapshot
 * and the CLI read and write messages only through these, so a marker means
 * the same thing everywhere.
 *
 * @module
 */
import type { Operation } from "./types.ts";

/** Prefix of a bucket's stream name: bucket `b` is stream `KV_b`. */
export const KV_STREAM_PREFIX = "KV_";
/** Prefix of a bucket's subjects: key `k` of bucket `b` is `$KV.b.k`. */
export const KV_SUBJECT_PREFIX = "$KV.";

/** Header a client sets on a delete (`DEL`) or purge (`PURGE`); absent on a put. */
export const KV_OPERATION_HEADER = "KV-Operation";
/**
 * Header the server (2.11+) sets on the delete markers it writes itself:
 * `MaxAge` (the key's TTL or the bucket's max age removed it), `Purge`
 * (a purge with markers), `Remove` (a removal with markers).
 */
export const MARKER_REASON_HEADER = "Nats-Marker-Reason";
/** Header asking the server to drop older messages: `sub` keeps only this one for its subject. */
export const ROLLUP_HEADER = "Nats-Rollup";
/** The {@linkcode ROLLUP_HEADER} value of a KV purge: only the subject's older messages go. */
export const ROLLUP_SUBJECT = "sub";
/** Per-message TTL header (2.11+), a Go duration or whole seconds, e.g. `"1500ms"`, `"30s"`. */
export const TTL_HEADER = "Nats-TTL";

/** Why the server wrote a marker (value of {@linkcode MARKER_REASON_HEADER}). */
export type MarkerReason = "MaxAge" | "Purge" | "Remove";

/** The stream that holds `bucket`: `KV_<bucket>`. */
export function kvStreamName(bucket: string): string {
  return `${KV_STREAM_PREFIX}${bucket}`;
}

/** The subject prefix of `bucket`'s keys: `$KV.<bucket>.` (with the trailing dot). */
export function kvSubjectPrefix(bucket: string): string {
  return `${KV_SUBJECT_PREFIX}${bucket}.`;
}

/** The subject of `key` in `bucket`: `$KV.<bucket>.<key>`. */
export function kvSubject(bucket: string, key: string): string {
  return `${KV_SUBJECT_PREFIX}${bucket}.${key}`;
}

/** The bucket of a KV stream name, or `undefined` when it is not one (`KV_b` → `b`). */
export function bucketOfStream(stream: string): string | undefined {
  return stream.startsWith(KV_STREAM_PREFIX) ? stream.slice(KV_STREAM_PREFIX.length) : undefined;
}

/** Anything with a case-insensitive header lookup (nats.js `MsgHdrs`). */
export interface HeaderLookup {
  /** The header's value, `""` or `undefined` when absent. */
  get(name: string): string | undefined;
}

/**
 * The KV operation a stored message stands for: a client's `KV-Operation`
 * (`DEL`, `PURGE`) decides when present; otherwise a server marker (ADR-48)
 * reads by its `Nats-Marker-Reason`: `MaxAge` and `Purge` as `PURGE`,
 * `Remove` as `DEL`, any other reason as `PURGE` too (a marker never holds a
 * value). Without either header the message is a `PUT`.
 *
 * @example
 * ```ts ignore
 * const op = operationOf(msg.headers); // "PUT" | "DEL" | "PURGE"
 * ```
 */
export function operationOf(headers: HeaderLookup | undefined): Operation {
  if (!headers) return "PUT";
  const op = headers.get(KV_OPERATION_HEADER);
  if (op === "DEL" || op === "PURGE") return op;
  const reason = headers.get(MARKER_REASON_HEADER);
  if (reason) return reason === "Remove" ? "DEL" : "PURGE";
  return "PUT";
}

/** The marker reason of a stored message, or `undefined` when the server did not write it. */
export function markerReasonOf(headers: HeaderLookup | undefined): string | undefined {
  return headers?.get(MARKER_REASON_HEADER) || undefined;
}

/**
 * A TTL in milliseconds as the `Nats-TTL` header value. The server counts in
 * whole seconds at least one second long, so the value is rounded up to a
 * whole second (`1500` → `"2s"`).
 */
export function ttlHeaderValue(ttlMs: number): string {
  return `${Math.max(1, Math.ceil(ttlMs / 1000))}s`;
}

const DURATION_UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  "µs": 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};

/**
 * The TTL of a stored message in milliseconds, from its `Nats-TTL` header (a
 * Go duration such as `"1m30s"`, or whole seconds); 0 when it has none, says
 * `"never"`, or cannot be read.
 *
 * @example
 * ```ts
 * import { ttlOfHeader } from "./kv_layout.ts";
 * ttlOfHeader({ get: () => "1500ms" }); // 1500
 * ```
 */
export function ttlOfHeader(headers: HeaderLookup | undefined): number {
  const v = headers?.get(TTL_HEADER)?.trim();
  if (!v || v === "never") return 0;
  if (/^\d+$/.test(v)) return Number(v) * 1000;
  let ms = 0;
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/gy;
  let m: RegExpExecArray | null;
  let end = 0;
  while ((m = re.exec(v)) !== null) {
    ms += Number(m[1]) * DURATION_UNIT_MS[m[2]!]!;
    end = re.lastIndex;
  }
  return end === v.length && ms > 0 ? Math.ceil(ms) : 0;
}

/**
 * The headers of an entry read with nats.js's `kv.get()` (its stored entry
 * keeps the message as `sm`; the public `KvEntry` type does not show them),
 * or `undefined`.
 */
export function entryHeaders(entry: unknown): HeaderLookup | undefined {
  const sm = (entry as { sm?: { header?: HeaderLookup } } | null)?.sm;
  return sm?.header;
}
