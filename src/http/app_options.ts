/**
 * The options of `createApp()` and their validation into a resolved form
 * with every default applied, so that the routes read plain numbers.
 *
 * @module
 */
import { z } from "zod";
import { bucketProblem } from "../keys.ts";
import { fn, nonNegativeOrInfinity, parseOptions } from "../validate.ts";
import type { Cache, Codec, ReadonlyCache } from "../types.ts";
import type { CorsOptions } from "./cors.ts";

/**
 * One bucket served by the app.
 *
 * @example
 * ```ts
 * import { openCache } from "../../mod.ts";
 * import type { AppBucketOptions } from "../../http.ts";
 * const cache = await openCache({ servers: "nats://127.0.0.1:4222", bucket: "config", local: { maxItems: 1_000 } });
 * const config: AppBucketOptions = { cache, readOnly: true, maxAgeMs: 5_000 };
 * ```
 */
export interface AppBucketOptions {
  /**
   * The opened cache. A `Cache` can be written through the app (unless
   * `readOnly`); a `ReadonlyCache` is always read-only.
   */
  // deno-lint-ignore no-explicit-any
  cache: ReadonlyCache<any> | Cache<any>;
  /**
   * Refuse writes to this bucket at the edge: `PUT`/`DELETE` answer 405
   * `method_not_allowed` (with `Allow: GET, HEAD`). Default false.
   */
  readOnly?: boolean;
  /**
   * The codec the cache was opened with, used to turn request bodies into
   * values and values into response bodies. Default JSON
   * (`application/json`). A codec's `contentType` becomes the response's
   * `Content-Type` (default `application/octet-stream`).
   */
  // deno-lint-ignore no-explicit-any
  codec?: Codec<any>;
  /**
   * How long HTTP clients may reuse a value without revalidating, in ms
   * (`Cache-Control: max-age`), further capped by the bucket TTL left for the
   * entry and by the cache's `local.maxTtlMs`. Default 0: `no-cache` (every
   * use revalidates with `If-None-Match`, which costs a 304). An integer >= 0.
   */
  maxAgeMs?: number;
}

/**
 * Who may read and write.
 *
 * @example
 * ```ts
 * import type { AppAuthOptions } from "../../http.ts";
 * const auth: AppAuthOptions = { readTokens: ["r3ad"], writeTokens: ["wr1te"] };
 * ```
 */
export interface AppAuthOptions {
  /**
   * Bearer tokens that allow reads. Empty or omitted: reads are open. Write
   * tokens also allow reads.
   */
  readTokens?: readonly string[];
  /**
   * Bearer tokens that allow writes. A read token on a write answers 403;
   * no or an unknown token answers 401.
   */
  writeTokens?: readonly string[];
  /**
   * With no `writeTokens`: allow writes without any token (development
   * only). Default false, so that a facade with no write token configured
   * refuses writes (403 `forbidden`) instead of accepting them from anyone.
   */
  anonymousWrites?: boolean;
}

/**
 * Bounds of the app; all have safe defaults.
 *
 * @example
 * ```ts
 * import type { AppLimits } from "../../http.ts";
 * const limits: AppLimits = { maxBodyBytes: 64 * 1024, maxSseStreams: 200, maxConcurrentScans: 2 };
 * ```
 */
export interface AppLimits {
  /** Largest request body, in bytes; past it 413 `too_large`. Default 1 048 576 (NATS' default `max_payload`). */
  maxBodyBytes?: number;
  /** Most concurrent SSE streams, all buckets together; past it 503 `too_many_streams`. Default 1 000. */
  maxSseStreams?: number;
  /** Interval of SSE heartbeat comments, in ms. Default 15 000. */
  sseHeartbeatMs?: number;
  /** Chunks queued for one slow SSE client before it is disconnected. Default 1 024. */
  sseBufferSize?: number;
  /**
   * Bytes queued for one slow SSE client before it is disconnected (each
   * chunk counts at least `sseBufferBytes / sseBufferSize`), so a stream holds
   * at most about this much however large the values are; all streams
   * together at most `maxSseStreams` times it. Default 4 194 304 (4 MiB).
   */
  sseBufferBytes?: number;
  /**
   * Deepest nesting of `[` and `{` accepted in a JSON request body; deeper
   * answers 422 `too_deep`. Default 64.
   */
  maxJsonDepth?: number;
  /** Reconnect delay advised to SSE clients (`retry:`), in ms. Default 2 000. */
  sseRetryMs?: number;
  /** Largest page of a key listing (`limit`). Default 1 000. */
  maxListLimit?: number;
  /**
   * Most reads that scan KV at once, all buckets together: key listings a
   * cache cannot answer locally (`status().listing` is `kv`: a lazy cache, a
   * replica not synced or not holding everything) and history reads; each
   * runs a consumer on the server. Past it 503 `overloaded` with
   * `Retry-After`. A replica's local listings are not counted. Default 4.
   */
  maxConcurrentScans?: number;
  /**
   * Most bytes of values a history response may carry; a key whose kept
   * history is larger answers 422 `result_too_large` (reading stops at the
   * bound, so memory stays bounded by it). Default 8 388 608 (8 MiB).
   */
  maxHistoryBytes?: number;
  /**
   * Most watch streams replaying from a revision (`Last-Event-ID`) at once,
   * all clients together; each runs its own consumer from that revision for
   * its whole life. Past it 503 `overloaded` with `Retry-After`. Default 64.
   */
  maxReplays?: number;
  /**
   * Most replaying watch streams of one client (as `clientOf` tells clients
   * apart; without it only `maxReplays` applies). Default 4.
   */
  maxReplaysPerClient?: number;
  /** Most request header fields; past it 431 `headers_too_large`. Default 64. */
  maxHeaderCount?: number;
  /**
   * Most bytes of request header names and values together; past it 431
   * `headers_too_large`. Default 16 384.
   */
  maxHeaderBytes?: number;
}

/**
 * When `/readyz` answers 200.
 *
 * @example
 * ```ts
 * import type { AppReadinessOptions } from "../../http.ts";
 * // Leave the load balancer after 5 minutes without NATS.
 * const readiness: AppReadinessOptions = { maxStaleMs: 5 * 60_000 };
 * ```
 */
export interface AppReadinessOptions {
  /**
   * How long a bucket may be `stale` (NATS unreachable, serving resident
   * entries) and still count as ready, in ms, counted from when it became
   * stale. Default `Infinity`: "disconnected is not down" (rule 7), so an
   * outage of NATS does not pull every edge out of a load balancer at once.
   */
  maxStaleMs?: number;
}

/**
 * One finished request, for logging (`onRequest`). Never contains headers or tokens.
 *
 * @example
 * ```ts
 * import type { RequestInfo } from "../../http.ts";
 * function logLine(info: RequestInfo): string {
 *   return JSON.stringify({ method: info.method, route: info.route, status: info.status, ms: info.durationMs });
 * }
 * ```
 */
export interface RequestInfo {
  /** The request method. */
  method: string;
  /** The matched route template, e.g. `/v1/buckets/:bucket/keys/:key`, or `*` when none matched. */
  route: string;
  /**
   * The request path without the query, as routed: escapes decoded as by
   * `decodeURI` (so `%2F` stays encoded), on the fast path and Hono's alike;
   * cut after 256 characters (then ending in `…`), so a log line stays short
   * however long the path a client sent.
   */
  path: string;
  /** Response status. */
  status: number;
  /** Time to the response headers, in ms. */
  durationMs: number;
  /** The error behind a 5xx answer, for the server's log only (never sent to the client). */
  error?: unknown;
}

/**
 * The facade: a hono `Hono` app, typed structurally so that kvedge's public
 * API does not expose hono's types (cast to `Hono` to mount it inside a
 * larger hono app).
 *
 * @example
 * ```ts
 * import type { HttpApp } from "../../http.ts";
 * async function status(app: HttpApp): Promise<number> {
 *   return (await app.request("/healthz")).status;
 * }
 * ```
 */
export interface HttpApp {
  /**
   * Answers one request; give it to `Deno.serve(app.fetch)`. Never rejects.
   * `env` reaches `clientOf` (`Deno.serve` passes its handler info).
   */
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
  /** Answers a request built from a path or `Request`, with no network (for tests). */
  request(input: string | URL | Request, init?: RequestInit): Response | Promise<Response>;
}

/**
 * Options of {@link createApp}.
 *
 * @example
 * ```ts
 * import { openCache } from "../../mod.ts";
 * import type { CreateAppOptions } from "../../http.ts";
 * const users = await openCache({ servers: "nats://127.0.0.1:4222", bucket: "users", local: { maxItems: 10_000 } });
 * const options: CreateAppOptions = {
 *   buckets: { users: { cache: users } },
 *   auth: { writeTokens: ["s3cret"] },
 *   cors: { origins: ["https://app.example.com"] },
 *   onRequest: (info) => console.log(info.route, info.status),
 * };
 * ```
 */
export interface CreateAppOptions {
  /** The buckets served, by name; only these are served (others: 404). At least one. */
  buckets: Record<string, AppBucketOptions>;
  /** Tokens. Default: reads open, writes refused. */
  auth?: AppAuthOptions;
  /** CORS; omitted: off (no CORS headers at all). */
  cors?: CorsOptions;
  /** Bounds. */
  limits?: AppLimits;
  /** Readiness policy of `/readyz`. */
  readiness?: AppReadinessOptions;
  /** Called after every request (one log line per request in the worker). */
  onRequest?: (info: RequestInfo) => void;
  /**
   * Called when a watch (SSE) stream ends, with why: `slow_client` (its
   * queue passed `sseBufferSize` chunks or `sseBufferBytes` bytes and it was
   * dropped), `client`, `source_end`, `source_error` or `shutdown`.
   */
  onStreamEnd?: (info: { bucket: string; reason: string }) => void;
  /**
   * Called when a bound of the facade refuses a request (`maxConcurrentScans`,
   * `maxReplays`, `maxReplaysPerClient`, `maxHistoryBytes`, the header
   * limits), with the bound's name as in `kvedge_http_refused_total{bound}`.
   */
  onRefused?: (info: { bound: string }) => void;
  /** Aborting it ends every open SSE stream cleanly (graceful shutdown). */
  signal?: AbortSignal;
  /**
   * Rule 8 for browsers: the name of a cookie that reads honour when a
   * request has no `KV-Bookmark` header, and that answers set (`Path=/;
   * SameSite=Lax; HttpOnly`) whenever they move the bookmark forward.
   * Omitted: off, only the header is used. Letters, digits, `_` and `-`.
   */
  bookmarkCookie?: string;

  /**
   * Tells clients apart for the per-client bounds (`maxReplaysPerClient`),
   * e.g. by the connection's remote address; undefined for a request whose
   * client is not known (only the total bounds apply to it). Called with the
   * request and `env`, the second argument the app's `fetch` was called with
   * (`Deno.serve(app.fetch)` passes its `Deno.ServeHandlerInfo` there, so
   * `(_, info) => info?.remoteAddr?.hostname` reads the peer's address only
   * when a bound needs it). Default: none.
   */
  clientOf?: (request: Request, env: unknown) => string | undefined;
}
/**
 * The default of every bound in {@link AppLimits}: the one place they are
 * written (the edge worker's `KVEDGE_*` variables default to these too).
 *
 * @example
 * ```ts
 * import { APP_LIMIT_DEFAULTS } from "./app_options.ts";
 * console.log(APP_LIMIT_DEFAULTS.maxBodyBytes); // 1048576
 * ```
 */
export const APP_LIMIT_DEFAULTS = {
  maxBodyBytes: 1 << 20,
  maxSseStreams: 1000,
  sseHeartbeatMs: 15_000,
  sseBufferSize: 1024,
  sseBufferBytes: 4 << 20,
  maxJsonDepth: 64,
  sseRetryMs: 2000,
  maxListLimit: 1000,
  maxConcurrentScans: 4,
  maxHistoryBytes: 8 << 20,
  maxReplays: 64,
  maxReplaysPerClient: 4,
  maxHeaderCount: 64,
  maxHeaderBytes: 16 << 10,
} as const satisfies Required<AppLimits>;
const DEFAULTS = APP_LIMIT_DEFAULTS;

/** `CreateAppOptions` with every default applied and every bound checked. */
export interface ResolvedAppOptions {
  buckets: [name: string, options: AppBucketOptions][];
  maxBodyBytes: number;
  maxSseStreams: number;
  heartbeatMs: number;
  sseBufferSize: number;
  sseRetryMs: number;
  sseBufferBytes: number;
  maxJsonDepth: number;
  maxListLimit: number;
  maxConcurrentScans: number;
  maxHistoryBytes: number;
  maxReplays: number;
  maxReplaysPerClient: number;
  maxHeaderCount: number;
  maxHeaderBytes: number;
  maxStaleMs: number;
  bookmarkCookie: string | undefined;
}

const POSITIVE_INT = "must be a positive integer";
const posInt = z.number({ error: POSITIVE_INT }).int({ error: POSITIVE_INT })
  .min(1, { error: POSITIVE_INT }).max(Number.MAX_SAFE_INTEGER, { error: POSITIVE_INT });
/** Every bound of {@link AppLimits}: a positive integer, optional. */
const LimitsSchema = z.object(
  Object.fromEntries(Object.keys(DEFAULTS).map((k) => [k, posInt.optional()])) as Record<
    keyof AppLimits,
    z.ZodOptional<typeof posInt>
  >,
).strict();
const BucketSchema = z.object({
  cache: z.custom<AppBucketOptions["cache"]>(
    (v) =>
      typeof v === "object" && v !== null &&
      typeof (v as ReadonlyCache<unknown>).getEntry === "function",
    { message: "must be an opened cache" },
  ),
  readOnly: z.boolean().optional(),
  codec: z.object({ encode: fn, decode: fn, contentType: z.string().optional() }).optional(),
  maxAgeMs: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER).optional(),
}).strict();

const AppOptionsSchema = z.object({
  buckets: z.record(z.string(), BucketSchema).superRefine((buckets, ctx) => {
    const names = Object.keys(buckets);
    if (names.length === 0) {
      ctx.addIssue({
        code: "too_small",
        origin: "object",
        minimum: 1,
        inclusive: true,
        input: buckets,
        message: "must name at least one bucket",
      });
    }
    for (const name of names) {
      const p = bucketProblem(name);
      if (p) ctx.addIssue({ code: "custom", path: [name], input: buckets, message: p });
    }
  }),
  auth: z.object({
    readTokens: z.array(z.string()).optional(),
    writeTokens: z.array(z.string()).optional(),
    anonymousWrites: z.boolean().optional(),
  }).strict().optional(),
  // The origins' syntax is checked by corsPolicy(), which the middleware shares.
  cors: z.object({
    origins: z.array(z.string()),
    maxAgeSeconds: z.number().int().min(0).max(2 ** 31 - 1).optional(),
  }).strict().optional(),
  limits: LimitsSchema.optional(),
  readiness: z.object({ maxStaleMs: nonNegativeOrInfinity.optional() }).strict().optional(),
  onRequest: fn.optional(),
  onStreamEnd: fn.optional(),
  onRefused: fn.optional(),
  signal: z.instanceof(AbortSignal, { message: "must be an AbortSignal" }).optional(),
  bookmarkCookie: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, {
    message: "must be 1 to 64 letters, digits, _ or -",
  }).optional(),
  clientOf: fn.optional(),
}).strict();

/**
 * Checks `options` and applies the defaults; throws `TypeError` (wrong type)
 * or `RangeError` (out of range) as `createApp` does, in openCache's style.
 */
export function resolveAppOptions(options: CreateAppOptions): ResolvedAppOptions {
  const o = parseOptions(AppOptionsSchema, options, { action: "create app" });
  const limits = o.limits ?? {};
  return {
    // The caller's objects, not zod's copies: a bucket's cache and codec are used as given.
    buckets: Object.entries(options.buckets),
    maxBodyBytes: limits.maxBodyBytes ?? DEFAULTS.maxBodyBytes,
    maxSseStreams: limits.maxSseStreams ?? DEFAULTS.maxSseStreams,
    heartbeatMs: limits.sseHeartbeatMs ?? DEFAULTS.sseHeartbeatMs,
    sseBufferSize: limits.sseBufferSize ?? DEFAULTS.sseBufferSize,
    sseRetryMs: limits.sseRetryMs ?? DEFAULTS.sseRetryMs,
    sseBufferBytes: limits.sseBufferBytes ?? DEFAULTS.sseBufferBytes,
    maxJsonDepth: limits.maxJsonDepth ?? DEFAULTS.maxJsonDepth,
    maxListLimit: limits.maxListLimit ?? DEFAULTS.maxListLimit,
    maxConcurrentScans: limits.maxConcurrentScans ?? DEFAULTS.maxConcurrentScans,
    maxHistoryBytes: limits.maxHistoryBytes ?? DEFAULTS.maxHistoryBytes,
    maxReplays: limits.maxReplays ?? DEFAULTS.maxReplays,
    maxReplaysPerClient: limits.maxReplaysPerClient ?? DEFAULTS.maxReplaysPerClient,
    maxHeaderCount: limits.maxHeaderCount ?? DEFAULTS.maxHeaderCount,
    maxHeaderBytes: limits.maxHeaderBytes ?? DEFAULTS.maxHeaderBytes,
    maxStaleMs: o.readiness?.maxStaleMs ?? Infinity,
    bookmarkCookie: o.bookmarkCookie,
  };
}
