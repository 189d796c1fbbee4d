/**
 * `createApp()`: the Hono HTTP facade over already-opened caches. It has no
 * network of its own; `workers/edge.ts` serves it with `Deno.serve`, tests
 * call `app.request()`.
 *
 * @module
 */
import { isJsonCodec, jsonCodec } from "../codec.ts";
import { jsonDepth, stringifyJson } from "../json_text.ts";
import { Hono } from "hono";
import type { Context, MiddlewareHandler } from "hono";
import type { Cache, Codec, Entry, ReadonlyCache, SetOptions } from "../types.ts";
import { ConflictError } from "../errors.ts";
import { bucketProblem, filterProblem, keyProblem, MAX_KEY_LENGTH } from "../keys.ts";
import { requireToken, tokenCheck } from "./auth.ts";
import { readBodyCapped } from "./body.ts";
import { cors } from "./cors.ts";
import type { CorsOptions } from "./cors.ts";
import { formatEtag, ifNoneMatchHits, parseEntityTags, parseIfMatch } from "./etag.ts";
import { HttpMetrics } from "./metrics.ts";
import type { MetricsBucket, RouteMetrics } from "./metrics.ts";
import { handleProblem, HttpProblem, problemInstance, toProblem } from "./problem.ts";
import { sseStream } from "./sse.ts";
import type { SseEvent } from "./sse.ts";

export type { CorsOptions } from "./cors.ts";
export type { ProblemCode } from "./problem.ts";

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
  /** The request path (percent-encoded as received). */
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

const DEFAULT_LIST_LIMIT = 100;
const KEY_PREFIX = /^[-/_=.a-zA-Z0-9]*$/;

const JSON_CODEC: Codec<unknown> = jsonCodec<unknown>();
/** A Host header value: a name or IPv4 address, or a bracketed IPv6 address, and an optional port. */
const VALID_HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/** A served bucket with everything its requests need pre-resolved. */
class ServedBucket {
  readonly name: string;
  readonly cache: ReadonlyCache<unknown>;
  readonly writer: Cache<unknown> | undefined;
  readonly codec: Codec<unknown>;
  readonly isJson: boolean;
  readonly contentType: string;
  readonly maxAgeMs: number;
  // Values are shared objects held by the local store; their JSON is kept by
  // identity so a hot key is stringified once, not once per request.
  readonly #jsonOf = new WeakMap<object, string>();
  #lastCreatedMs = NaN;
  #lastModified = "";
  #lastRevision = NaN;
  #lastEtag = "";
  #ttlCheckedAt = -Infinity;
  #bucketTtlMs = 0;
  #maxTtlMs = 0;

  constructor(name: string, o: AppBucketOptions) {
    this.name = name;
    this.cache = o.cache;
    const writable = typeof (o.cache as Partial<Cache<unknown>>).set === "function";
    this.writer = writable && !o.readOnly ? (o.cache as Cache<unknown>) : undefined;
    this.codec = o.codec ?? JSON_CODEC;
    this.isJson = o.codec === undefined || isJsonCodec(o.codec);
    this.contentType = this.isJson
      ? "application/json"
      : (o.codec?.contentType ?? "application/octet-stream");
    this.maxAgeMs = o.maxAgeMs ?? 0;
  }

  /** The response body of a value. */
  body(value: unknown): string | Uint8Array {
    if (!this.isJson) return this.codec.encode(value);
    if (typeof value !== "object" || value === null) return JSON.stringify(value);
    let s = this.#jsonOf.get(value);
    if (s === undefined) {
      s = stringifyJson(value);
      this.#jsonOf.set(value, s);
    }
    return s;
  }

  /** A value inside a JSON document (SSE, history): itself for JSON, base64 otherwise. */
  jsonValue(value: unknown): { value: unknown } | { valueBase64: string } {
    if (this.isJson) return { value };
    return { valueBase64: toBase64(this.codec.encode(value)) };
  }

  /** Parses a request body into a value, or throws `bad_request` (or `too_deep`). */
  decode(bytes: Uint8Array, maxJsonDepth: number): unknown {
    if (this.isJson && jsonDepth(bytes, maxJsonDepth) > maxJsonDepth) {
      throw new HttpProblem(
        "too_deep",
        `the JSON body nests deeper than ${maxJsonDepth} levels (the limit)`,
        { extensions: { maxDepth: maxJsonDepth } },
      );
    }
    try {
      return this.codec.decode(bytes);
    } catch (err) {
      throw new HttpProblem(
        "bad_request",
        this.isJson
          ? "the body is not valid JSON"
          : "the body cannot be decoded by the bucket's codec",
        { cause: err },
      );
    }
  }

  /** The ETag of a revision (the last one is kept: a hot key's is built once). */
  etag(revision: number): string {
    if (revision !== this.#lastRevision) {
      this.#lastRevision = revision;
      this.#lastEtag = formatEtag(revision);
    }
    return this.#lastEtag;
  }

  lastModified(createdMs: number): string {
    if (createdMs !== this.#lastCreatedMs) {
      this.#lastCreatedMs = createdMs;
      this.#lastModified = new Date(createdMs).toUTCString();
    }
    return this.#lastModified;
  }

  cacheControl(e: Entry<unknown>, now: number): string {
    if (this.maxAgeMs <= 0 || e.stale) return "no-cache";
    if (now - this.#ttlCheckedAt > 1000) {
      // status() builds an object; once a second is plenty for TTL settings.
      const s = this.cache.status();
      this.#bucketTtlMs = s.bucketTtlMs;
      this.#maxTtlMs = s.maxTtlMs;
      this.#ttlCheckedAt = now;
    }
    let ms = this.maxAgeMs;
    if (this.#bucketTtlMs > 0) ms = Math.min(ms, e.createdMs + this.#bucketTtlMs - now);
    if (this.#maxTtlMs > 0) ms = Math.min(ms, this.#maxTtlMs);
    const s = Math.floor(ms / 1000);
    return s > 0 ? `max-age=${s}` : "no-cache";
  }
}

function toBase64(bytes: Uint8Array): string {
  let s = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

function encodeCursor(key: string): string {
  return btoa(key).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): string {
  const bad = () => new HttpProblem("bad_request", "cursor is not one this server issued");
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(cursor)) throw bad();
  let key: string;
  try {
    key = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw bad();
  }
  if (keyProblem(key) !== undefined) throw bad();
  return key;
}

/** A NATS filter that narrows a listing to `prefix` (the rest is a `startsWith`). */
function filterForPrefix(prefix: string): string {
  const dot = prefix.lastIndexOf(".");
  if (dot <= 0) return ">";
  const filter = prefix.slice(0, dot) + ".>";
  return filterProblem(filter) === undefined ? filter : ">";
}

function checkPrefix(prefix: string | undefined): string {
  if (prefix === undefined || prefix === "") return "";
  if (prefix.length > MAX_KEY_LENGTH || !KEY_PREFIX.test(prefix)) {
    throw new HttpProblem(
      "bad_request",
      "prefix may only contain key characters (letters, digits, - / _ = .)",
    );
  }
  return prefix;
}

function positiveInt(value: number | undefined, fallback: number, name: string): number {
  const v = value ?? fallback;
  if (!Number.isSafeInteger(v) || v <= 0) {
    throw new RangeError(`Cannot create app: "${name}" must be a positive integer, got ${v}`);
  }
  return v;
}

/** The body of `GET /`: every route, in a line each (docs/http.md has the details). */
const INDEX = {
  name: "kvedge",
  docs: "docs/http.md",
  endpoints: {
    "GET /v1/buckets": "the buckets served here",
    "GET|HEAD /v1/buckets/{bucket}/keys/{key}": "a value; ETag is its revision",
    "PUT /v1/buckets/{bucket}/keys/{key}":
      "write (If-Match: compare-and-set, If-None-Match: *, ?ttl=<s>)",
    "DELETE /v1/buckets/{bucket}/keys/{key}": "delete (?purge=true drops the history)",
    "GET /v1/buckets/{bucket}/keys": "keys, sorted and paged (?prefix=&limit=&cursor=)",
    "GET /v1/buckets/{bucket}/keys/{key}/history": "a key's kept revisions",
    "GET /v1/buckets/{bucket}/watch": "changes as Server-Sent Events (?prefix=, Last-Event-ID)",
    "GET /v1/stats": "every bucket's stats and status",
    "GET /healthz": "the process is up",
    "GET /readyz": "every bucket is synced (or stale within bounds)",
    "GET /metrics": "Prometheus metrics",
  },
} as const;

function methodNotAllowed(allow: string): (c: Context) => Response {
  return function methodNotAllowed(c) {
    if (c.req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { allow } });
    }
    throw new HttpProblem("method_not_allowed", `${c.req.method} is not allowed here`, {
      headers: { allow },
    });
  };
}

/**
 * Builds the Hono app of the HTTP facade over already-opened caches. It opens
 * nothing and listens nowhere: serve it with `Deno.serve(app.fetch)` or call
 * `app.request()`.
 *
 * Routes: `GET|HEAD|PUT|DELETE /v1/buckets/:bucket/keys/:key`, `GET
 * /v1/buckets/:bucket/keys`, `GET /v1/buckets/:bucket/keys/:key/history`,
 * `GET /v1/buckets/:bucket/watch` (SSE), `GET /v1/buckets`, `GET /v1/stats`,
 * `/healthz`, `/readyz`, `/metrics`. Every error is `application/problem+json`
 * with a stable `code`.
 *
 * @example
 * ```ts ignore
 * import { createApp, openCache } from "./mod.ts";
 * const users = await openCache({ servers: "nats://127.0.0.1:4222", bucket: "users", local: { maxItems: 10_000 } });
 * const app = createApp({
 *   buckets: { users: { cache: users } },
 *   auth: { writeTokens: ["s3cret"] },
 * });
 * const res = await app.request("/v1/buckets/users/keys/user.42");
 * console.log(res.status, res.headers.get("etag"));
 * ```
 */
export function createApp(options: CreateAppOptions): HttpApp {
  const served = new Map<string, ServedBucket>();
  for (const [name, b] of Object.entries(options.buckets ?? {})) {
    const problem = bucketProblem(name);
    if (problem !== undefined) throw new TypeError(`Cannot create app: ${problem}`);
    if (b === undefined || b.cache === undefined || typeof b.cache.getEntry !== "function") {
      throw new TypeError(`Cannot create app: bucket "${name}" needs an opened "cache"`);
    }
    served.set(name, new ServedBucket(name, b));
  }
  if (served.size === 0) {
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

  const readTokens = options.auth?.readTokens ?? [];
  const writeTokens = options.auth?.writeTokens ?? [];
  const readAuth = readTokens.length > 0
    ? { tokens: [...readTokens, ...writeTokens], action: "reads" }
    : undefined;
  const readGuards: MiddlewareHandler[] = readAuth ? [requireToken(readAuth)] : [];
  const readCheck = readAuth ? tokenCheck(readAuth) : undefined;
  const writeGuards: MiddlewareHandler[] = writeTokens.length > 0
    ? [requireToken({ tokens: writeTokens, insufficientTokens: readTokens, action: "writes" })]
    : options.auth?.anonymousWrites
    ? []
    : [function writesDisabled() {
      throw new HttpProblem("forbidden", "writes are disabled: no write token is configured");
    }];

  const metrics = new HttpMetrics();
  const onRequest = options.onRequest;
  const shutdownSignal = options.signal;

  function measure(rm: RouteMetrics): MiddlewareHandler {
    return async function measure(c, next) {
      const t0 = performance.now();
      await next();
      const ms = performance.now() - t0;
      const status = c.res.status;
      rm.observe(status, ms / 1000);
      if (onRequest !== undefined) {
        onRequest({
          method: c.req.method,
          route: rm.route,
          path: c.req.path,
          status,
          durationMs: ms,
          ...(status >= 500 && c.error !== undefined ? { error: c.error } : {}),
        });
      }
    };
  }

  function bucketOf(c: Context): ServedBucket {
    return bucketNamed(c.req.param("bucket") ?? "");
  }

  function bucketNamed(name: string): ServedBucket {
    const b = served.get(name);
    if (b === undefined) {
      const shown = bucketProblem(name) === undefined ? `"${name}"` : "this bucket";
      throw new HttpProblem("not_found", `bucket ${shown} is not served here`);
    }
    return b;
  }

  function writerOf(b: ServedBucket): Cache<unknown> {
    if (b.writer === undefined) {
      throw new HttpProblem("method_not_allowed", `bucket "${b.name}" is read-only at this edge`, {
        headers: { allow: "GET, HEAD" },
      });
    }
    return b.writer;
  }

  function keyOf(c: Context): string {
    return validKey(c.req.param("key") ?? "");
  }

  function validKey(key: string): string {
    const problem = keyProblem(key);
    if (problem !== undefined) throw new HttpProblem("bad_key", problem);
    return key;
  }

  const app = new Hono();
  app.onError(handleProblem);
  const unmatched = metrics.route("*", "*");
  app.notFound(function notFound(c) {
    const res = new HttpProblem("not_found", "no such route").getResponse(
      problemInstance(c.req.path),
    );
    unmatched.observe(404, 0);
    onRequest?.({ method: c.req.method, route: "*", path: c.req.path, status: 404, durationMs: 0 });
    return res;
  });
  if (options.cors !== undefined) app.use(cors(options.cors));

  // ---- keys --------------------------------------------------------------
  const KEY = "/v1/buckets/:bucket/keys/:key";

  /** GET/HEAD of one key: shared by the Hono route and the fast path below. */
  async function readKey(b: ServedBucket, key: string, request: Request, head: boolean) {
    return respondEntry(b, await b.cache.getEntry(key), request, head);
  }

  function respondEntry(
    b: ServedBucket,
    e: Entry<unknown> | undefined,
    request: Request,
    head: boolean,
  ): Response {
    if (e === undefined) throw new HttpProblem("not_found", "the key is absent");
    const etag = b.etag(e.revision);
    const cacheControl = b.cacheControl(e, Date.now());
    const inm = request.headers.get("if-none-match");
    if (inm !== null && ifNoneMatchHits(inm, etag)) {
      return new Response(null, {
        status: 304,
        headers: { etag, "x-cache": e.source, "cache-control": cacheControl },
      });
    }
    // Deno converts a headers record in the Response constructor through a
    // slow WebIDL path (several µs for five entries, as much as the rest of
    // the request); setting them on the response's own Headers is ~20× cheaper.
    const res = new Response(head ? null : b.body(e.value) as BodyInit, {
      headers: { "content-type": b.contentType },
    });
    const h = res.headers;
    h.set("etag", etag);
    h.set("last-modified", b.lastModified(e.createdMs));
    h.set("x-cache", e.source);
    h.set("cache-control", cacheControl);
    return res;
  }

  const getKeyMetrics = metrics.route("GET", KEY);
  app.get(KEY, measure(getKeyMetrics), ...readGuards, function getKey(c) {
    return readKey(bucketOf(c), keyOf(c), c.req.raw, c.req.method === "HEAD");
  });

  app.put(KEY, measure(metrics.route("PUT", KEY)), ...writeGuards, async function putKey(c) {
    const b = bucketOf(c);
    const w = writerOf(b);
    const key = keyOf(c);
    const ifMatchHeader = c.req.raw.headers.get("if-match");
    const ifNoneMatchHeader = c.req.raw.headers.get("if-none-match");
    let createOnly = false;
    if (ifNoneMatchHeader !== null) {
      if (parseEntityTags(ifNoneMatchHeader) !== "*") {
        throw new HttpProblem(
          "bad_request",
          'a PUT supports only "If-None-Match: *" (create only)',
        );
      }
      createOnly = true;
    }
    const ifMatch = ifMatchHeader === null ? undefined : parseIfMatch(ifMatchHeader);
    // ?ttl=<seconds>: per-key TTL (nats-server 2.11+, a bucket with limit markers).
    const ttlText = c.req.query("ttl");
    if (ttlText !== undefined && (!/^[1-9]\d{0,8}$/.test(ttlText) || ifMatch !== undefined)) {
      throw new HttpProblem(
        "bad_request",
        "ttl must be a whole number of seconds (1 or more), on a PUT without If-Match",
      );
    }
    const setOptions = ttlText === undefined ? {} : { ttlMs: Number(ttlText) * 1000 };
    if (createOnly && ifMatch !== undefined) {
      // "must exist" and "must not exist" at once can never hold.
      throw new HttpProblem("precondition_failed", "If-Match and If-None-Match: * contradict");
    }
    const value = b.decode(await readBodyCapped(c.req.raw, maxBodyBytes), maxJsonDepth);

    let revision: number;
    let created = false;
    if (createOnly) {
      revision = await createOrConflict(w, key, value, setOptions);
      created = true;
    } else if (ifMatch !== undefined) {
      revision = await w.update(key, value, await expectedRevision(b, key, ifMatch));
    } else {
      // Try create first so a new key answers 201; a conflict means it exists.
      // (Not peek() first: that would count every write as a cache hit.)
      try {
        revision = await w.create(key, value, setOptions);
        created = true;
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        revision = await w.set(key, value, setOptions);
      }
    }
    const headers: Record<string, string> = { etag: formatEtag(revision) };
    if (created) {
      headers.location = `/v1/buckets/${b.name}/keys/${encodeURIComponent(key)}`;
    }
    return c.json({ key, revision }, created ? 201 : 200, headers);
  });

  async function createOrConflict(
    w: Cache<unknown>,
    key: string,
    value: unknown,
    options: SetOptions,
  ) {
    try {
      return await w.create(key, value, options);
    } catch (err) {
      if (err instanceof ConflictError) {
        throw new HttpProblem("precondition_failed", "the key already exists", { cause: err });
      }
      throw err;
    }
  }

  /** The revision a conditional write must find, from `If-Match`. */
  async function expectedRevision(
    b: ServedBucket,
    key: string,
    ifMatch: ReturnType<typeof parseIfMatch>,
  ): Promise<number> {
    const fail = () => new HttpProblem("precondition_failed", "If-Match does not match the key");
    if (!ifMatch.any && ifMatch.revisions.length === 1) return ifMatch.revisions[0]!;
    if (!ifMatch.any && ifMatch.revisions.length === 0) throw fail();
    // `*` or several tags: read the current revision, then let the
    // compare-and-set on it make the check atomic.
    const current = await b.cache.getEntry(key);
    if (current === undefined) throw fail();
    if (!ifMatch.any && !ifMatch.revisions.includes(current.revision)) throw fail();
    return current.revision;
  }

  app.delete(
    KEY,
    measure(metrics.route("DELETE", KEY)),
    ...writeGuards,
    async function deleteKey(c) {
      const b = bucketOf(c);
      const w = writerOf(b);
      const key = keyOf(c);
      const purge = c.req.query("purge");
      if (purge !== undefined && purge !== "true" && purge !== "false") {
        throw new HttpProblem("bad_request", 'purge must be "true" or "false"');
      }
      const ifMatchHeader = c.req.raw.headers.get("if-match");
      const opts = ifMatchHeader === null
        ? {}
        : { expectedRevision: await expectedRevision(b, key, parseIfMatch(ifMatchHeader)) };
      const revision = purge === "true" ? await w.purge(key, opts) : await w.delete(key, opts);
      return c.json({ key, revision }, 200);
    },
  );
  app.all(KEY, measure(metrics.route("OTHER", KEY)), methodNotAllowed("GET, HEAD, PUT, DELETE"));

  // ---- listing and history ---------------------------------------------
  const KEYS = "/v1/buckets/:bucket/keys";
  app.get(KEYS, measure(metrics.route("GET", KEYS)), ...readGuards, async function listKeys(c) {
    const b = bucketOf(c);
    const prefix = checkPrefix(c.req.query("prefix"));
    const limitText = c.req.query("limit");
    const limit = limitText === undefined
      ? Math.min(DEFAULT_LIST_LIMIT, maxListLimit)
      : Number(limitText);
    if (!/^[0-9]{1,7}$/.test(limitText ?? "1") || !(limit >= 1 && limit <= maxListLimit)) {
      throw new HttpProblem("bad_request", `limit must be an integer from 1 to ${maxListLimit}`);
    }
    const cursorText = c.req.query("cursor");
    const after = cursorText === undefined || cursorText === ""
      ? undefined
      : decodeCursor(cursorText);

    // Keep only the smallest limit+1 keys past the cursor, trimming as we go,
    // so memory stays O(limit) however large the bucket is.
    let page: string[] = [];
    const keep = limit + 1;
    for await (const k of b.cache.keys(filterForPrefix(prefix))) {
      if (prefix !== "" && !k.startsWith(prefix)) continue;
      if (after !== undefined && k <= after) continue;
      page.push(k);
      if (page.length >= keep * 4) page = page.sort().slice(0, keep);
    }
    page.sort();
    const more = page.length > limit;
    if (more) page = page.slice(0, limit);
    return c.json({ keys: page, cursor: more ? encodeCursor(page[page.length - 1]!) : null });
  });
  app.all(KEYS, measure(metrics.route("OTHER", KEYS)), methodNotAllowed("GET, HEAD"));

  const HISTORY = "/v1/buckets/:bucket/keys/:key/history";
  app.get(
    HISTORY,
    measure(metrics.route("GET", HISTORY)),
    ...readGuards,
    async function keyHistory(c) {
      const b = bucketOf(c);
      const key = keyOf(c);
      const history = await b.cache.history(key);
      if (history.length === 0) throw new HttpProblem("not_found", "the key has no history");
      // stringifyJson, not c.json(): a value another client wrote may nest
      // deeper than JSON.stringify's recursion survives.
      return c.body(
        stringifyJson({
          key,
          history: history.map((h) => ({
            revision: h.revision,
            operation: h.operation,
            createdMs: h.createdMs,
            ...(h.operation === "PUT" && h.value !== undefined ? b.jsonValue(h.value) : {}),
          })),
        }),
        200,
        { "content-type": "application/json" },
      );
    },
  );
  app.all(HISTORY, measure(metrics.route("OTHER", HISTORY)), methodNotAllowed("GET, HEAD"));

  // ---- watch (SSE) -------------------------------------------------------
  const WATCH = "/v1/buckets/:bucket/watch";
  app.get(WATCH, measure(metrics.route("GET", WATCH)), ...readGuards, function watch(c) {
    const b = bucketOf(c);
    const prefix = checkPrefix(c.req.query("prefix"));
    const lastEventId = c.req.raw.headers.get("last-event-id");
    let fromRevision: number | undefined;
    if (lastEventId !== null && lastEventId.trim() !== "") {
      const id = lastEventId.trim();
      if (!/^[0-9]{1,16}$/.test(id) || !Number.isSafeInteger(Number(id))) {
        throw new HttpProblem("bad_request", "Last-Event-ID must be a revision number");
      }
      fromRevision = Number(id) + 1;
    }
    if (metrics.sse.open >= maxSseStreams) {
      metrics.sse.refused++;
      throw new HttpProblem("too_many_streams", "too many open watch streams; retry later", {
        headers: { "retry-after": "5" },
      });
    }
    const headers = {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    };
    if (c.req.method === "HEAD") return new Response(null, { status: 200, headers });

    const filter = filterForPrefix(prefix);
    const cache = b.cache;
    async function* changes(signal: AbortSignal): AsyncIterable<SseEvent> {
      const it = cache.changes({
        ...(fromRevision === undefined ? {} : { fromRevision }),
        ...(filter === ">" ? {} : { filter }),
        signal,
        bufferSize: sseBufferSize,
      });
      for await (const ch of it) {
        if (prefix !== "" && !ch.key.startsWith(prefix)) continue;
        yield {
          event: ch.operation.toLowerCase(),
          id: String(ch.revision),
          data: stringifyJson({
            key: ch.key,
            revision: ch.revision,
            operation: ch.operation,
            createdMs: ch.createdMs,
            ...(ch.operation === "PUT" && ch.value !== undefined ? b.jsonValue(ch.value) : {}),
          }),
        };
      }
    }
    metrics.sse.open++;
    const body = sseStream(changes, {
      heartbeatMs,
      retryMs: sseRetryMs,
      bufferSize: sseBufferSize,
      bufferBytes: sseBufferBytes,
      ...(shutdownSignal === undefined ? {} : { shutdownSignal }),
      onClose(reason) {
        options.onStreamEnd?.({ bucket: b.name, reason });
        metrics.sse.open--;
        metrics.sseStreams.delete(body);
        if (reason === "slow_client") metrics.sse.slowClients++;
      },
    });
    metrics.sseStreams.add(body);
    return new Response(body, { status: 200, headers });
  });
  app.all(WATCH, measure(metrics.route("OTHER", WATCH)), methodNotAllowed("GET, HEAD"));

  // ---- operations ----------------------------------------------------------
  app.get(
    "/v1/buckets",
    measure(metrics.route("GET", "/v1/buckets")),
    ...readGuards,
    function listBuckets(c) {
      return c.json({
        buckets: [...served.values()].map((b) => ({
          name: b.name,
          mode: b.cache.mode,
          readOnly: b.writer === undefined,
          contentType: b.contentType,
        })),
      });
    },
  );

  app.get(
    "/v1/stats",
    measure(metrics.route("GET", "/v1/stats")),
    ...readGuards,
    function stats(c) {
      const buckets: Record<string, unknown> = {};
      for (const b of served.values()) {
        buckets[b.name] = {
          readOnly: b.writer === undefined,
          stats: b.cache.stats(),
          status: b.cache.status(),
        };
      }
      return c.json({ buckets, sse: { ...metrics.sse } });
    },
  );

  // A newcomer's first request: what is here, without naming any bucket (that needs a token).
  app.get("/", measure(metrics.route("GET", "/")), function index(c) {
    return c.json(INDEX);
  });

  app.get("/healthz", measure(metrics.route("GET", "/healthz")), function healthz(c) {
    return c.json({ status: "ok" });
  });

  app.get("/readyz", measure(metrics.route("GET", "/readyz")), function readyz(c) {
    // Bucket names and states are for readers: anyone else learns ready or not.
    let detailed = true;
    if (readCheck !== undefined) {
      try {
        readCheck(c.req.raw.headers.get("authorization"));
      } catch {
        detailed = false;
      }
    }
    const now = Date.now();
    const buckets: Record<string, { state: string; ready: boolean }> = {};
    const reasons: string[] = [];
    for (const b of served.values()) {
      const s = b.cache.status();
      const ready = s.state === "synced" || (s.state === "stale" && now - s.since <= maxStaleMs);
      buckets[b.name] = { state: s.state, ready };
      if (!ready) {
        reasons.push(
          s.state === "stale"
            ? `bucket "${b.name}" has been stale for ${now - s.since} ms`
            : `bucket "${b.name}" is ${s.state}`,
        );
      }
    }
    if (reasons.length > 0) {
      throw new HttpProblem(
        "unavailable",
        detailed ? `not ready: ${reasons.join("; ")}` : "not ready",
        { headers: { "retry-after": "1" }, ...(detailed ? { extensions: { buckets } } : {}) },
      );
    }
    return c.json(detailed ? { status: "ready", buckets } : { status: "ready" });
  });

  app.get("/metrics", measure(metrics.route("GET", "/metrics")), ...readGuards, function scrape(c) {
    const list: MetricsBucket[] = [];
    for (const b of served.values()) {
      list.push({ name: b.name, stats: b.cache.stats(), status: b.cache.status() });
    }
    return c.body(metrics.render(list), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  });
  for (const p of ["/", "/v1/buckets", "/v1/stats", "/healthz", "/readyz", "/metrics"]) {
    app.all(p, measure(metrics.route("OTHER", p)), methodNotAllowed("GET, HEAD"));
  }
  // `Deno.serve` builds `request.url` from the Host header, so a Host of
  // `x/v1/buckets/other/keys/k?` would move the request target into the
  // query: a Host that is not a plain host[:port] is refused before routing,
  // which leaves the URL's path exactly the request target.
  const badHost = metrics.route("*", "bad_host");
  function refuseHost(request: Request): Response | undefined {
    const host = request.headers.get("host");
    if (host === null || VALID_HOST.test(host)) return undefined;
    badHost.observe(400, 0);
    onRequest?.({ method: request.method, route: "*", path: "", status: 400, durationMs: 0 });
    return new HttpProblem("bad_request", "the Host header is not a valid host[:port]")
      .getResponse(undefined);
  }
  const honoFetch = app.fetch;
  // The GET hit path is the hot path (benchmarked against bare Deno.serve),
  // so without CORS `GET /v1/buckets/<bucket>/keys/<key>` skips hono's
  // router, context and middleware chain and runs the same checks and the
  // same readKey() directly. Anything else, or any path it is unsure about,
  // goes to hono.
  const fast = options.cors === undefined;
  app.fetch = function fetch(request, env, executionCtx) {
    const refused = refuseHost(request);
    if (refused !== undefined) return refused;
    if (fast && request.method === "GET") {
      const res = fastGet(request);
      if (res !== undefined) return res;
    }
    return honoFetch(request, env, executionCtx);
  };

  function fastGet(request: Request): Promise<Response> | undefined {
    const url = request.url;
    const start = url.indexOf("/", url.indexOf(":") + 3);
    if (start < 0 || !url.startsWith("/v1/buckets/", start)) return undefined;
    let end = url.length;
    for (let i = start + 12; i < url.length; i++) {
      const ch = url.charCodeAt(i);
      if (ch === 0x3f || ch === 0x23) { // ? or #
        end = i;
        break;
      }
    }
    const slash = url.indexOf("/", start + 12);
    if (slash < 0 || slash >= end || !url.startsWith("/keys/", slash)) return undefined;
    const name = url.slice(start + 12, slash);
    let key = url.slice(slash + 6, end);
    if (key === "" || key.includes("/") || name.includes("%")) return undefined;
    if (key.includes("%")) {
      try {
        key = decodeURIComponent(key);
      } catch {
        return undefined; // hono's lenient decoding decides
      }
    }
    return fastRead(request, name, key, url.slice(start, end));
  }

  async function fastRead(request: Request, name: string, key: string, path: string) {
    const t0 = performance.now();
    let res: Response;
    let error: unknown;
    try {
      readCheck?.(request.headers.get("authorization"));
      const b = bucketNamed(name);
      res = respondEntry(b, await b.cache.getEntry(validKey(key)), request, false);
    } catch (err) {
      const p = toProblem(err);
      if (p.status >= 500) error = err;
      res = p.getResponse(problemInstance(path));
    }
    const ms = performance.now() - t0;
    getKeyMetrics.observe(res.status, ms / 1000);
    if (onRequest !== undefined) {
      onRequest({
        method: "GET",
        route: KEY,
        path,
        status: res.status,
        durationMs: ms,
        ...(error === undefined ? {} : { error }),
      });
    }
    return res;
  }

  return app;
}
