/**
 * The writer: set/create/update/delete/purge. Checks the key and the schema
 * before any I/O, encodes, builds the KV headers (operation, rollup, TTL),
 * publishes with compare-and-set, and hands the acknowledged revision to
 * the store's owner (`Freshness.apply`, source "write") so a cache reads its
 * own writes.
 *
 * @module
 */
import { headers as natsHeaders } from "@nats-io/nats-core";
import {
  ClosedError,
  ConflictError,
  UnavailableError,
  UnsupportedError,
  ValidationError,
} from "../errors.ts";
import { mapNatsError } from "../errors_map.ts";
import { isWrongLastSequence } from "../nats_errors.ts";
import { assertKey } from "../keys.ts";
import {
  KV_OPERATION_HEADER,
  kvStreamName,
  ROLLUP_HEADER,
  ROLLUP_SUBJECT,
  TTL_HEADER,
  ttlHeaderValue,
} from "../kv_layout.ts";
import { assertServerVersion, PER_KEY_TTL_VERSION, serverVersion } from "../server_version.ts";
import type { DeleteOptions, Operation, SetOptions } from "../types.ts";
import { assertInFilter, assertUp, type CacheCore } from "./core.ts";

/** A write of a value: its key, the value and the write's options. */
export interface ValueWrite<T> {
  /** The key. */
  key: string;
  /** The value (checked by the schema, then encoded). */
  value: T;
  /** `ttlMs`: the key's own TTL. */
  options?: SetOptions;
}

/** `set()`: writes `w.value` whatever the key holds. */
export async function set<T>(c: CacheCore<T>, w: ValueWrite<T>): Promise<number> {
  const { key } = w;
  assertWritable(c, { key, action: "set" });
  const { value: checked, bytes } = encode(c, { key, value: w.value, action: "set" });
  const ttl = await ttlFor(c, { ttlMs: w.options?.ttlMs, action: `set "${key}"` });
  const rev = await publish(c, { key, data: bytes, op: "PUT", action: `set "${key}"`, ttl });
  own(c, { key, rev, value: checked, encodedBytes: bytes.byteLength });
  return rev;
}

/** `create()`: writes `w.value` only if the key holds nothing (or a delete). */
export async function create<T>(c: CacheCore<T>, w: ValueWrite<T>): Promise<number> {
  const { key } = w;
  assertWritable(c, { key, action: "create" });
  const { value: checked, bytes } = encode(c, { key, value: w.value, action: "create" });
  const ttl = await ttlFor(c, { ttlMs: w.options?.ttlMs, action: `create "${key}"` });
  const action = `create "${key}"`;
  let rev: number;
  try {
    rev = await publish(c, { key, data: bytes, op: "PUT", expected: 0, action, ttl });
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    // Present in the stream, but maybe only as a delete marker: then create over it.
    const last = await c.sync.link.kv.get(key).catch((e) => {
      throw mapNatsError(e, { action: `create "${key}"`, bucket: c.bucket, key });
    });
    if (last === null || last.operation === "PUT") {
      throw new ConflictError(`Cannot create "${key}": the key exists`, { key, expected: 0 });
    }
    rev = await publish(c, {
      key,
      data: bytes,
      op: "PUT",
      expected: last.revision,
      action,
      ttl,
    });
  }
  own(c, { key, rev, value: checked, encodedBytes: bytes.byteLength });
  return rev;
}

/** `update()`: writes `w.value` only if the key is at `w.expectedRevision`. */
export async function update<T>(
  c: CacheCore<T>,
  w: { key: string; value: T; expectedRevision: number },
): Promise<number> {
  const { key, expectedRevision } = w;
  assertWritable(c, { key, action: "update" });
  assertRevision(expectedRevision, "update");
  const { value: checked, bytes } = encode(c, { key, value: w.value, action: "update" });
  const rev = await publish(c, {
    key,
    data: bytes,
    op: "PUT",
    expected: expectedRevision,
    action: `update "${key}"`,
  });
  own(c, { key, rev, value: checked, encodedBytes: bytes.byteLength });
  return rev;
}

/** `delete()` or `purge()` of `w.key`, with the options' compare-and-set. */
export async function remove<T>(
  c: CacheCore<T>,
  w: { key: string; op: "DEL" | "PURGE"; options: DeleteOptions },
): Promise<number> {
  const { key, op, options } = w;
  const action = op === "DEL" ? "delete" : "purge";
  assertWritable(c, { key, action });
  if (options.expectedRevision !== undefined) assertRevision(options.expectedRevision, action);
  const rev = await publish(c, {
    key,
    data: undefined,
    op,
    expected: options.expectedRevision,
    action: `${action} "${key}"`,
  });
  c.freshness.apply({ source: "write", key, rev, created: Date.now(), op });
  return rev;
}

/** An acknowledged own write goes into the store at once, so this cache reads its own writes. */
function own<T>(
  c: CacheCore<T>,
  w: { key: string; rev: number; value: T; encodedBytes: number },
): void {
  c.freshness.apply({ source: "write", op: "PUT", created: Date.now(), ...w });
}

/**
 * Throws unless `w.key` may be written now: the cache is open, the key is
 * valid and in its filter, NATS is up. `w.action` names the call in errors.
 */
export function assertWritable<T>(c: CacheCore<T>, w: { key: string; action: string }): void {
  const { key, action } = w;
  if (c.life.closed) throw new ClosedError(action);
  assertKey(key, action);
  assertInFilter(c, key, action);
  assertUp(c, `${action} "${key}"`);
}

/** Validates `w.value` against the schema (before any I/O) and encodes it; `w.action` names the call in errors. */
export function encode<T>(
  c: CacheCore<T>,
  w: { key: string; value: T; action: string },
): { value: T; bytes: Uint8Array } {
  const { key, value, action } = w;
  let checked = value;
  if (c.o.schema) {
    const r = c.o.schema.safeParse(value);
    if (!r.success) {
      throw new ValidationError(
        `Cannot ${action} "${key}": value does not match the schema`,
        r.error.issues.map((i) => ({
          path: i.path.map((p) => typeof p === "symbol" ? String(p) : p),
          message: i.message,
        })),
      );
    }
    checked = r.data;
  }
  let bytes: Uint8Array;
  try {
    bytes = c.o.codec.encode(checked);
  } catch (err) {
    throw new ValidationError(
      `Cannot ${action} "${key}": the codec cannot encode the value`,
      [],
      {
        cause: err,
      },
    );
  }
  return { value: checked, bytes };
}

/**
 * The `Nats-TTL` value of a write with `w.ttlMs`, once the server and the
 * bucket are known to honour it: a 2.9 server would store the header and
 * never expire the key. `w.action` names the call in errors.
 */
export async function ttlFor<T>(
  c: CacheCore<T>,
  w: { ttlMs: number | undefined; action: string },
): Promise<string | undefined> {
  const { ttlMs, action } = w;
  if (ttlMs === undefined) return undefined;
  if (!Number.isFinite(ttlMs) || ttlMs < 1000) {
    throw new RangeError(`Cannot ${action}: "ttlMs" must be at least 1000, got ${ttlMs}`);
  }
  assertServerVersion(c.sync.link.nc, {
    feature: "per-key TTL",
    requiredVersion: PER_KEY_TTL_VERSION,
    action,
  });
  let config = c.sync.lastInfo?.config ?? c.sync.link.info.config;
  if (!config.subject_delete_marker_ttl) {
    // The bucket may have been given markers since it was last read.
    try {
      config = (await c.sync.link.jsm.streams.info(kvStreamName(c.bucket))).config;
    } catch (err) {
      throw mapNatsError(err, { action, bucket: c.bucket });
    }
  }
  if (!config.allow_msg_ttl || !config.subject_delete_marker_ttl) {
    const version = serverVersion(c.sync.link.nc);
    throw new UnsupportedError(
      `Cannot ${action}: bucket "${c.bucket}" has no limit markers, so its edges would ` +
        `not see the key expire (create it with "create.markerTtlMs", or ` +
        `"nats kv add --marker-ttl")`,
      {
        feature: "per-key TTL",
        requiredVersion: PER_KEY_TTL_VERSION,
        ...(version ? { serverVersion: version } : {}),
      },
    );
  }
  return ttlHeaderValue(ttlMs);
}

/**
 * Deadline of a regional write while the link believes the hub unreachable,
 * ms (at most `writeTimeoutMs`). The write is still tried, not refused on a
 * belief that may be up to a check old: cut off, the leaf has no route to
 * the hub and it fails at once ("no responders"); healed, it succeeds.
 */
const DOUBTFUL_HUB_WRITE_MS = 1_000;

/** A message to publish to a key's subject. */
export interface Publish {
  /** The key. */
  key: string;
  /** The encoded value; undefined for a delete or purge. */
  data: Uint8Array | undefined;
  /** The operation (`KV-Operation` header for DEL and PURGE). */
  op: Operation;
  /** Compare-and-set: the key's expected last revision (0: absent); undefined for none. */
  expected?: number | undefined;
  /** What the caller is doing, for error messages (`set "k"`). */
  action: string;
  /** The `Nats-TTL` header value, if any. */
  ttl?: string | undefined;
}

/** Publishes `m` with compare-and-set; resolves to the acknowledged revision. */
export async function publish<T>(c: CacheCore<T>, m: Publish): Promise<number> {
  const { key, data, op, expected, action, ttl } = m;
  let h;
  if (op !== "PUT") {
    h = natsHeaders();
    h.set(KV_OPERATION_HEADER, op);
    if (op === "PURGE") h.set(ROLLUP_HEADER, ROLLUP_SUBJECT);
  }
  if (ttl !== undefined) {
    h ??= natsHeaders();
    h.set(TTL_HEADER, ttl);
    // No older revision may come back when this one expires.
    h.set(ROLLUP_HEADER, ROLLUP_SUBJECT);
  }
  const link = c.sync.link.region?.link;
  const doubtful = link !== undefined && !link.reachable;
  try {
    const ack = await c.sync.link.js.publish(c.sync.writePrefix + key, data ?? new Uint8Array(0), {
      ...(h ? { headers: h } : {}),
      ...(expected !== undefined ? { expect: { lastSubjectSequence: expected } } : {}),
      timeout: doubtful ? Math.min(c.o.writeTimeoutMs, DOUBTFUL_HUB_WRITE_MS) : c.o.writeTimeoutMs,
    });
    // The hub answered: the link's belief is out of date.
    if (doubtful) link.nudge();
    return ack.seq;
  } catch (err) {
    if (isWrongLastSequence(err)) {
      throw new ConflictError(
        expected === 0
          ? `Cannot ${action}: the key exists`
          : `Cannot ${action}: the key is not at revision ${expected}`,
        { key, expected, cause: err },
      );
    }
    const e = mapNatsError(err, { action, bucket: c.bucket, key });
    if (doubtful && e instanceof UnavailableError) throw link.unreachable(action, err);
    throw e;
  }
}

function assertRevision(rev: unknown, action: string): void {
  if (!Number.isSafeInteger(rev) || (rev as number) < 0) {
    throw new RangeError(
      `Cannot ${action}: a revision must be a non-negative integer, got ${String(rev)}`,
    );
  }
}
