/**
 * The one request pipeline of the HTTP facade: the auth checks, the route
 * metrics and the `onRequest` log line, the error rendering, and the lookups
 * every route shares (bucket, writer, key). Hono's routes and the GET fast
 * path (`fast_get.ts`) both go through these functions, so each exists once.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { OverloadedError } from "../errors.ts";
import { bucketProblem, keyProblem } from "../keys.ts";
import type { Cache } from "../types.ts";
import type { CreateAppOptions, RequestInfo, ResolvedAppOptions } from "./app_options.ts";
import { tokenCheck, tokenGuard } from "./auth.ts";
import { BOOKMARK_HEADER, HttpBookmarks } from "./bookmarks.ts";
import { corsPolicy } from "./cors.ts";
import type { CorsPolicy } from "./cors.ts";
import { Admission } from "./admission.ts";
import { HttpMetrics } from "./metrics.ts";
import type { RouteMetrics } from "./metrics.ts";
import { HttpProblem, problemInstance, serverFault, toProblem } from "./problem.ts";
import { ServedBucket } from "./served_bucket.ts";

/** A Host header value: a name or IPv4 address, or a bracketed IPv6 address, and an optional port. */
const VALID_HOST =
  /^(?:[A-Za-z0-9](?:[A-Za-z0-9._-]{0,252})?|\[[0-9A-Fa-f:.]{2,45}\])(?::[0-9]{1,5})?$/;

/**
 * What the pipeline reads of a request's header fields, in one pass over
 * them (each `headers.get()` of a served request is a call into the
 * runtime): their number and size for the limits, and the fields the GET
 * fast path needs. Values are as `headers.get()` answers them (repeated
 * fields combined).
 *
 * @example
 * ```ts
 * import { readHead, type RequestHead } from "./pipeline.ts";
 * const head: RequestHead = readHead(new Request("http://x/", { headers: { host: "x" } }));
 * console.log(head.host); // "x"
 * ```
 */
export interface RequestHead {
  /** Header fields. */
  count: number;
  /** Bytes of their names and values. */
  bytes: number;
  /** `Host`. */
  host: string | null;
  /** `Authorization`. */
  authorization: string | null;
  /** `If-None-Match`. */
  ifNoneMatch: string | null;
  /** `KV-Bookmark`. */
  bookmark: string | null;
}

function readField(this: RequestHead, value: string, name: string): void {
  this.count++;
  this.bytes += name.length + value.length;
  switch (name) {
    case "host":
      this.host = value;
      break;
    case "authorization":
      this.authorization = value;
      break;
    case "if-none-match":
      this.ifNoneMatch = value;
      break;
    case BOOKMARK_HEADER:
      this.bookmark = value;
  }
}

/**
 * Reads a request's header fields in one pass.
 *
 * @example
 * ```ts
 * import { readHead } from "./pipeline.ts";
 * const head = readHead(new Request("http://x/", { headers: { "if-none-match": '"3"' } }));
 * console.log(head.count, head.ifNoneMatch); // 1 "\"3\""
 * ```
 */
export function readHead(request: Request): RequestHead {
  const head: RequestHead = {
    count: 0,
    bytes: 0,
    host: null,
    authorization: null,
    ifNoneMatch: null,
    bookmark: null,
  };
  // forEach, not for…of: Deno's Headers iterator costs ~5 µs a request, forEach ~0.7.
  request.headers.forEach(readField, head);
  return head;
}

/**
 * Options of {@link Pipeline.admit}: which admission, and how a refusal is
 * counted and worded.
 *
 * @example
 * ```ts ignore
 * const release = p.admit(c.req.raw, {
 *   admission: p.scans,
 *   env: c.env,
 *   bound: "scans",
 *   what: "listings and history reads",
 * });
 * ```
 */
export interface AdmitOptions {
  /** The admission to enter. */
  admission: Admission;
  /** The runtime's per-request environment (Hono's `c.env`), for `clientOf`. */
  env: unknown;
  /** The bound's name in `kvedge_http_refused_total{bound}` (`<bound>_per_client` for a client's cap). */
  bound: string;
  /** What is refused, plural, for the problem's detail ("listings and history reads"). */
  what: string;
}

/** What every route of one app shares: its buckets, limits, checks and instruments. */
export class Pipeline {
  readonly served = new Map<string, ServedBucket>();
  readonly limits: ResolvedAppOptions;
  readonly metrics = new HttpMetrics();
  /** The bookmarks of requests and answers (rule 8). */
  readonly bookmarks: HttpBookmarks;
  /** The CORS rules, or none (no CORS headers at all). */
  readonly cors: CorsPolicy | undefined;
  /** The read-token check of the `Authorization` header; none when reads are open. */
  readonly readCheck: ((authorization: string | null) => void) | undefined;
  /** Middleware before every read route. */
  readonly readGuards: MiddlewareHandler[];
  /** Middleware before every write route. */
  readonly writeGuards: MiddlewareHandler[];
  readonly onRequest: ((info: RequestInfo) => void) | undefined;
  readonly onStreamEnd: ((info: { bucket: string; reason: string }) => void) | undefined;
  readonly shutdownSignal: AbortSignal | undefined;
  /** Reads that run a consumer on KV (listings not answered locally, histories). */
  readonly scans: Admission;
  /** Watch streams replaying from a revision. */
  readonly replays: Admission;
  readonly clientOf: (request: Request, env: unknown) => string | undefined;
  readonly #unmatched: RouteMetrics;

  constructor(options: CreateAppOptions, limits: ResolvedAppOptions) {
    this.limits = limits;
    this.bookmarks = new HttpBookmarks(limits.bookmarkCookie);
    for (const [name, b] of limits.buckets) this.served.set(name, new ServedBucket(name, b));
    this.onRequest = options.onRequest;
    this.onStreamEnd = options.onStreamEnd;
    this.shutdownSignal = options.signal;
    this.cors = options.cors === undefined ? undefined : corsPolicy(options.cors);

    const readTokens = options.auth?.readTokens ?? [];
    const writeTokens = options.auth?.writeTokens ?? [];
    const readCheck = readTokens.length > 0
      ? tokenCheck({ tokens: [...readTokens, ...writeTokens], action: "reads" })
      : undefined;
    this.readCheck = readCheck;
    this.readGuards = readCheck === undefined ? [] : [tokenGuard(readCheck)];
    this.writeGuards = writeTokens.length > 0
      ? [
        tokenGuard(
          tokenCheck({ tokens: writeTokens, insufficientTokens: readTokens, action: "writes" }),
        ),
      ]
      : options.auth?.anonymousWrites
      ? []
      : [function writesDisabled() {
        throw new HttpProblem("forbidden", "writes are disabled: no write token is configured");
      }];
    this.#unmatched = this.metrics.route("*", "*");
    this.scans = new Admission(limits.maxConcurrentScans);
    this.replays = new Admission(limits.maxReplays, limits.maxReplaysPerClient);
    const scans = this.scans;
    const replays = this.replays;
    this.metrics.inflight("scan", () => scans.open);
    this.metrics.inflight("replay", () => replays.open);
    this.clientOf = options.clientOf ?? (() => undefined);
    this.#onRefused = options.onRefused;
  }

  readonly #onRefused: ((info: { bound: string }) => void) | undefined;
  #goodHost = "";
  #goodKey = "";
  #lastBucket: ServedBucket | undefined;

  /** Counts (and reports) a request refused by the bound named `bound`. */
  refused(bound: string): void {
    this.metrics.refuse(bound);
    try {
      this.#onRefused?.({ bound });
    } catch {
      // A logging hook must not break the request.
    }
  }

  /**
   * Takes a place in `options.admission` for the request, or throws 503
   * `overloaded` (counted as `kvedge_http_refused_total{bound}`). Returns the
   * release.
   */
  admit(request: Request, options: AdmitOptions): () => void {
    const { admission, bound, what } = options;
    const entered = admission.enter(this.clientOf(request, options.env));
    if (typeof entered === "function") return entered;
    const name = entered === "client" ? `${bound}_per_client` : bound;
    this.refused(name);
    throw new HttpProblem(
      "overloaded",
      entered === "client"
        ? `too many ${what} of this client at once (${name}); retry later`
        : `too many ${what} at once (${name}); retry later`,
      { headers: { "retry-after": "1" } },
    );
  }

  /**
   * A request with more header fields or bytes than the limits: 431
   * `headers_too_large` before routing (the transport allows more: Deno
   * reads up to 128 fields and about 64 KiB of head).
   */
  refuseHeaders(request: Request, head: RequestHead): Response | undefined {
    const { maxHeaderCount, maxHeaderBytes } = this.limits;
    if (head.count <= maxHeaderCount && head.bytes <= maxHeaderBytes) return undefined;
    this.refused("headers");
    this.record(this.metrics.route("*", "headers"), request.method, "", 431, 0, undefined, "*");
    return new HttpProblem(
      "headers_too_large",
      `at most ${maxHeaderCount} header fields and ${maxHeaderBytes} bytes of headers are accepted`,
      { extensions: { maxHeaderCount, maxHeaderBytes } },
    ).getResponse(undefined);
  }

  /** Records one finished request: the route's metrics and the `onRequest` log line. */
  record(
    rm: RouteMetrics,
    method: string,
    path: string,
    status: number,
    durationMs: number,
    error?: unknown,
    route: string = rm.route,
  ): void {
    rm.observe(status, durationMs / 1000);
    if (this.onRequest !== undefined) {
      // One object per request (no spread): the hook runs on every hit.
      const info: RequestInfo = { method, route, path: problemInstance(path), status, durationMs };
      if (error !== undefined) info.error = error;
      this.onRequest(info);
    }
  }

  /** Middleware timing a route and recording it (first in every route's chain). */
  measure(rm: RouteMetrics): MiddlewareHandler {
    // deno-lint-ignore no-this-alias
    const p = this;
    return async function measure(c, next) {
      const t0 = performance.now();
      await next();
      const status = c.res.status;
      p.record(
        rm,
        c.req.method,
        c.req.path,
        status,
        performance.now() - t0,
        status >= 500 ? serverFault(c.error) : undefined,
      );
    };
  }

  /** Renders any error as `application/problem+json` (the one error path). */
  renderError(err: unknown, path: string): Response {
    if (err instanceof OverloadedError) this.refused("misses");
    return toProblem(err).getResponse(problemInstance(path));
  }

  /** The 404 of a path no route matches. */
  notFound(method: string, path: string): Response {
    const res = new HttpProblem("not_found", "no such route").getResponse(problemInstance(path));
    this.record(this.#unmatched, method, path, 404, 0);
    return res;
  }

  /**
   * `Deno.serve` builds `request.url` from the Host header, so a Host of
   * `x/v1/buckets/other/keys/k?` would move the request target into the
   * query: a Host that is not a plain host[:port] is refused before routing,
   * which leaves the URL's path exactly the request target.
   */
  refuseHost(request: Request, host: string | null): Response | undefined {
    // A client sends the same Host on every request: the last good one is kept.
    if (host === null || host === this.#goodHost) return undefined;
    if (VALID_HOST.test(host)) {
      this.#goodHost = host;
      return undefined;
    }
    this.record(this.metrics.route("*", "bad_host"), request.method, "", 400, 0, undefined, "*");
    return new HttpProblem("bad_request", "the Host header is not a valid host[:port]")
      .getResponse(undefined);
  }

  bucketOf(c: Context): ServedBucket {
    return this.bucketNamed(c.req.param("bucket") ?? "");
  }

  /** A served bucket by name, or 404 (only configured buckets are served). */
  bucketNamed(name: string): ServedBucket {
    // Requests name the same few buckets: the last one found is kept.
    const last = this.#lastBucket;
    if (last !== undefined && name === last.name) return last;
    const b = this.served.get(name);
    if (b === undefined) {
      const shown = bucketProblem(name) === undefined ? `"${name}"` : "this bucket";
      throw new HttpProblem("not_found", `bucket ${shown} is not served here`);
    }
    this.#lastBucket = b;
    return b;
  }

  /** Throws 400 `bad_key` unless `key` is a valid key (the last good one is kept). */
  checkKey(key: string): void {
    if (key === this.#goodKey) return;
    validKey(key);
    this.#goodKey = key;
  }

  /** The bucket's writer, or 405 when it is read-only at this edge. */
  writerOf(b: ServedBucket): Cache<unknown> {
    if (b.writer === undefined) {
      throw new HttpProblem("method_not_allowed", `bucket "${b.name}" is read-only at this edge`, {
        headers: { allow: "GET, HEAD" },
      });
    }
    return b.writer;
  }

  keyOf(c: Context): string {
    const key = c.req.param("key") ?? "";
    this.checkKey(key);
    return key;
  }
}

/** A key, checked: 400 `bad_key` unless it is a valid NATS KV key. */
export function validKey(key: string): string {
  const problem = keyProblem(key);
  if (problem !== undefined) throw new HttpProblem("bad_key", problem);
  return key;
}

/** The answer of a route to a method it does not allow (OPTIONS: 204 with `Allow`). */
export function methodNotAllowed(allow: string): (c: Context) => Response {
  return function methodNotAllowed(c) {
    if (c.req.method === "OPTIONS") {
      return new Response(null, { status: 204, headers: { allow } });
    }
    throw new HttpProblem("method_not_allowed", `${c.req.method} is not allowed here`, {
      headers: { allow },
    });
  };
}
