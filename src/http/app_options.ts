/**
 * The options of `createApp()` and their validation into a resolved form
 * with every default applied, so that the routes read plain numbers.
 *
 * @module
 */
import { bucketProblem } from "../keys.ts";
import type { Cache, Codec, ReadonlyCache } from "../types.ts";
import type { CorsOptions } from "./cors.ts";

/** One bucket served by the app. */
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
   * use revalidates with `If-None-Match`, which costs a 304).
   */
  maxAgeMs?: number;
}

/** Who may read and write. */
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

/** Bounds of the app; all have safe defaults. */
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
}

/** When `/readyz` answers 200. */
export interface AppReadinessOptions {
  /**
   * How long a bucket may be `stale` (NATS unreachable, serving resident
   * entries) and still count as ready, in ms, counted from when it became
   * stale. Default `Infinity`: "disconnected is not down" (rule 7), so an
   * outage of NATS does not pull every edge out of a load balancer at once.
   */
  maxStaleMs?: number;
}

/** One finished request, for logging (`onRequest`). Never contains headers or tokens. */
export interface RequestInfo {
  /** The request method. */
  method: string;
  /** The matched route template, e.g. `/v1/buckets/:bucket/keys/:key`, or `*` when none matched. */
  route: string;
  /**
   * The request path without the query, as routed: escapes decoded as by
   * `decodeURI` (so `%2F` stays encoded), on the fast path and Hono's alike.
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
 */
export interface HttpApp {
  /** Answers one request; give it to `Deno.serve(app.fetch)`. Never rejects. */
  fetch(request: Request): Response | Promise<Response>;
  /** Answers a request built from a path or `Request`, with no network (for tests). */
  request(input: string | URL | Request, init?: RequestInit): Response | Promise<Response>;
}

/** Options of {@link createApp}. */
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
  /** Aborting it ends every open SSE stream cleanly (graceful shutdown). */
  signal?: AbortSignal;
}
const DEFAULTS = {
  maxBodyBytes: 1 << 20,
  maxSseStreams: 1000,
  sseHeartbeatMs: 15_000,
  sseBufferSize: 1024,
  sseBufferBytes: 4 << 20,
  maxJsonDepth: 64,
  sseRetryMs: 2000,
  maxListLimit: 1000,
} as const;
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
  maxStaleMs: number;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new RangeError(`Cannot create app: "${name}" must be a positive integer, got ${v}`);
  }
  return v;
}

/** Checks `options` and applies the defaults; throws `TypeError`/`RangeError` as `createApp` does. */
export function resolveAppOptions(options: CreateAppOptions): ResolvedAppOptions {
  const buckets: [string, AppBucketOptions][] = [];
  for (const [name, b] of Object.entries(options.buckets ?? {})) {
    const problem = bucketProblem(name);
    if (problem !== undefined) throw new TypeError(`Cannot create app: ${problem}`);
    if (b === undefined || b.cache === undefined || typeof b.cache.getEntry !== "function") {
      throw new TypeError(`Cannot create app: bucket "${name}" needs an opened "cache"`);
    }
    buckets.push([name, b]);
  }
  if (buckets.length === 0) {
    throw new RangeError('Cannot create app: "buckets" must name at least one bucket');
  }
  const limits = options.limits ?? {};
  const maxBodyBytes = positiveInt(limits.maxBodyBytes, DEFAULTS.maxBodyBytes, "maxBodyBytes");
  const maxSseStreams = positiveInt(limits.maxSseStreams, DEFAULTS.maxSseStreams, "maxSseStreams");
  const heartbeatMs = positiveInt(limits.sseHeartbeatMs, DEFAULTS.sseHeartbeatMs, "sseHeartbeatMs");
  const sseBufferSize = positiveInt(limits.sseBufferSize, DEFAULTS.sseBufferSize, "sseBufferSize");
  const sseRetryMs = positiveInt(limits.sseRetryMs, DEFAULTS.sseRetryMs, "sseRetryMs");
  const sseBufferBytes = positiveInt(
    limits.sseBufferBytes,
    DEFAULTS.sseBufferBytes,
    "sseBufferBytes",
  );
  const maxJsonDepth = positiveInt(limits.maxJsonDepth, DEFAULTS.maxJsonDepth, "maxJsonDepth");
  const maxListLimit = positiveInt(limits.maxListLimit, DEFAULTS.maxListLimit, "maxListLimit");
  const maxStaleMs = options.readiness?.maxStaleMs ?? Infinity;
  if (!(maxStaleMs >= 0)) {
    throw new RangeError(`Cannot create app: "maxStaleMs" must be >= 0, got ${maxStaleMs}`);
  }
  return {
    buckets,
    maxBodyBytes,
    maxSseStreams,
    heartbeatMs,
    sseBufferSize,
    sseRetryMs,
    sseBufferBytes,
    maxJsonDepth,
    maxListLimit,
    maxStaleMs,
  };
}
