/**
 * Validation of `openCache()` options (zod at the boundary) into a resolved,
 * trusted configuration.
 *
 * @module
 */
import { z } from "zod";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  bucketName,
  fn,
  integer,
  keyFilter,
  nonNegativeOrInfinity,
  parseOptions,
} from "./validate.ts";
import { jsonCodec } from "./codec.ts";
import type {
  CacheMode,
  CacheOptions,
  Codec,
  CreateBucketOptions,
  LoaderFn,
  RegionOptions,
  SchemaLike,
} from "./types.ts";
import { fileStorage, type SnapshotStorage } from "./snapshot_file.ts";

/** Options after validation, with defaults applied. */
export interface ResolvedOptions<T> {
  servers: string[] | undefined;
  connectOptions: CacheOptions<T>["connectOptions"];
  connection: NatsConnection | undefined;
  bucket: string;
  create: Required<CreateBucketOptions> | undefined;
  mode: CacheMode;
  keys: string;
  maxItems: number;
  maxBytes: number;
  maxTtlMs: number;
  maxNegativeShare: number;
  maxConcurrentMisses: number;
  schema: SchemaLike<T> | undefined;
  codec: Codec<T>;
  loader: LoaderFn<T> | undefined;
  writeBack: boolean;
  negativeTtlMs: number;
  loaderTimeoutMs: number;
  missTimeoutMs: number;
  writeTimeoutMs: number;
  closeTimeoutMs: number;
  staleIfErrorMs: number;
  heartbeatMs: number;
  reconcileMs: number;
  allowDirect: boolean;
  /** A snapshot `path` is resolved to its file's storage here. */
  snapshot: { storage: SnapshotStorage; intervalMs: number } | undefined;
  onEvent: CacheOptions<T>["onEvent"];
  region: Required<RegionOptions> | undefined;
  bookmarkWaitMs: number;
}

/** Longest timer a platform takes, ms (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * The integer bounds of the options an environment can set too: the edge
 * worker checks its variables against these (host/edge_config.ts), so one
 * bound is written once.
 * @internal
 */
export const OPTION_BOUNDS = {
  maxItems: [1, Number.MAX_SAFE_INTEGER],
  maxBytes: [1, Number.MAX_SAFE_INTEGER],
  maxTtlMs: [1, MAX_TIMER_MS],
  missTimeoutMs: [1, 600_000],
  writeTimeoutMs: [1, 600_000],
  maxConcurrentMisses: [1, 1_000_000],
  bookmarkWaitMs: [0, 600_000],
} as const satisfies Record<string, readonly [number, number]>;

const ms = integer(0, MAX_TIMER_MS);

const OptionsSchema = z.object({
  servers: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  connectOptions: z.record(z.string(), z.unknown()).optional(),
  connection: z.custom<NatsConnection>(
    (v) =>
      typeof v === "object" && v !== null && typeof (v as NatsConnection).subscribe === "function",
    { message: "must be a NatsConnection" },
  ).optional(),
  bucket: bucketName,
  create: z.union([
    z.boolean(),
    z.object({
      replicas: z.union([z.literal(1), z.literal(3), z.literal(5)]).optional(),
      history: integer(1, 64).optional(),
      ttlMs: ms.optional(),
      maxBytes: z.number().int().min(-1).optional(),
      maxValueSize: z.number().int().min(-1).optional(),
      storage: z.enum(["file", "memory"]).optional(),
      markerTtlMs: integer(1000).optional(),
    }).strict(),
  ]).optional(),
  mode: z.enum(["lazy", "replica"]).optional(),
  keys: keyFilter.optional(),
  local: z.object({
    maxItems: integer(...OPTION_BOUNDS.maxItems).optional(),
    maxBytes: integer(...OPTION_BOUNDS.maxBytes).optional(),
    maxTtlMs: integer(...OPTION_BOUNDS.maxTtlMs).optional(),
    maxNegativeShare: z.number().gt(0).max(1).optional(),
  }).strict(),
  schema: z.custom<SchemaLike<unknown>>(
    (v) =>
      typeof v === "object" && v !== null &&
      typeof (v as SchemaLike<unknown>).safeParse === "function",
    { message: "must be a zod schema" },
  ).optional(),
  codec: z.object({ encode: fn, decode: fn, contentType: z.string().optional() }).optional(),
  loader: fn.optional(),
  writeBack: z.boolean().optional(),
  negativeTtlMs: ms.optional(),
  maxConcurrentMisses: integer(...OPTION_BOUNDS.maxConcurrentMisses).optional(),
  loaderTimeoutMs: integer(1, MAX_TIMER_MS).optional(),
  missTimeoutMs: integer(...OPTION_BOUNDS.missTimeoutMs).optional(),
  writeTimeoutMs: integer(...OPTION_BOUNDS.writeTimeoutMs).optional(),
  closeTimeoutMs: integer(1, 600_000).optional(),
  staleIfErrorMs: nonNegativeOrInfinity.optional(),
  heartbeatMs: integer(100, 300_000).optional(),
  reconcileMs: ms.optional(),
  allowDirect: z.boolean().optional(),
  snapshot: z.object({
    path: z.string().min(1).optional(),
    storage: z.custom<SnapshotStorage>(
      (v) =>
        typeof v === "object" && v !== null &&
        typeof (v as SnapshotStorage).read === "function" &&
        typeof (v as SnapshotStorage).write === "function",
      { message: "must have read() and write()" },
    ).optional(),
    intervalMs: ms.optional(),
  }).strict().optional(),
  onEvent: fn.optional(),
  region: z.object({
    hubDomain: z.string().regex(/^[A-Za-z0-9_-]+$/, {
      message: "must be a JetStream domain name (letters, digits, _ and -)",
    }),
    checkMs: integer(10, 600_000).optional(),
    maxSilenceMs: integer(1_000, MAX_TIMER_MS).optional(),
  }).strict().optional(),
  bookmarkWaitMs: integer(...OPTION_BOUNDS.bookmarkWaitMs).optional(),
}).strict();

/**
 * Validates options and applies defaults. Throws `TypeError` for a wrong type
 * and `RangeError` for a value out of range or an unbounded configuration.
 */
export function resolveOptions<T>(input: CacheOptions<T>): ResolvedOptions<T> {
  const o = parseOptions(OptionsSchema, input, { action: "open cache" });
  if ((o.servers === undefined) === (o.connection === undefined)) {
    throw new TypeError('Cannot open cache: exactly one of "servers" and "connection" is required');
  }
  if (o.local.maxItems === undefined && o.local.maxBytes === undefined) {
    throw new RangeError(
      'Cannot open cache: "local" needs "maxItems" or "maxBytes" (an unbounded cache would grow without limit)',
    );
  }
  if (o.region && o.create !== undefined && o.create !== false) {
    throw new TypeError(
      'Cannot open cache: "create" cannot be used with "region" (the bucket lives on the hub; create the regional mirror with `deno task kv mirror`)',
    );
  }
  if (o.snapshot && (o.snapshot.path === undefined) === (o.snapshot.storage === undefined)) {
    throw new TypeError(
      'Cannot open cache: "snapshot" needs exactly one of "path" and "storage"',
    );
  }
  if (o.writeBack && !o.loader) {
    throw new TypeError('Cannot open cache: "writeBack" needs a "loader"');
  }
  const create = o.create === undefined || o.create === false ? undefined : {
    replicas: 1,
    history: 10,
    ttlMs: 0,
    maxBytes: -1,
    maxValueSize: -1,
    storage: "file" as const,
    markerTtlMs: 0,
    ...(o.create === true ? {} : o.create),
  };
  return {
    servers: o.servers === undefined
      ? undefined
      : Array.isArray(o.servers)
      ? o.servers
      : o.servers.split(","),
    connectOptions: input.connectOptions,
    connection: input.connection as NatsConnection | undefined,
    bucket: o.bucket,
    create,
    mode: o.mode ?? "lazy",
    keys: o.keys ?? ">",
    maxItems: o.local.maxItems ?? 0,
    maxBytes: o.local.maxBytes ?? 0,
    maxTtlMs: o.local.maxTtlMs ?? 0,
    maxNegativeShare: o.local.maxNegativeShare ?? 0.25,
    maxConcurrentMisses: o.maxConcurrentMisses ?? 256,
    schema: input.schema,
    codec: input.codec ?? jsonCodec<T>(),
    loader: input.loader,
    writeBack: o.writeBack ?? false,
    negativeTtlMs: o.negativeTtlMs ?? 30_000,
    loaderTimeoutMs: o.loaderTimeoutMs ?? 5_000,
    missTimeoutMs: o.missTimeoutMs ?? 1_000,
    writeTimeoutMs: o.writeTimeoutMs ?? 5_000,
    closeTimeoutMs: o.closeTimeoutMs ?? 5_000,
    staleIfErrorMs: o.staleIfErrorMs ?? Infinity,
    heartbeatMs: o.heartbeatMs ?? 5_000,
    reconcileMs: o.reconcileMs ?? 30_000,
    allowDirect: o.allowDirect ?? false,
    snapshot: o.snapshot && {
      storage: o.snapshot.storage ?? fileStorage(o.snapshot.path!),
      intervalMs: o.snapshot.intervalMs ?? 60_000,
    },
    onEvent: input.onEvent,
    region: o.region && { checkMs: 1_000, maxSilenceMs: 3_000, ...o.region },
    bookmarkWaitMs: o.bookmarkWaitMs ?? 250,
  };
}
