/**
 * CORS with an explicit origin allow-list. Hono's `cors()` defaults to
 * `origin: "*"` and answers every preflight; this one only ever reflects an
 * origin it was given, never sends credentials, and always sends
 * `Vary: Origin` so shared caches keep responses per origin apart.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";

/**
 * Options of {@link cors}.
 *
 * @example
 * ```ts
 * import type { CorsOptions } from "../../http.ts";
 * const cors: CorsOptions = { origins: ["https://app.example.com"], maxAgeSeconds: 3_600 };
 * ```
 */
export interface CorsOptions {
  /**
   * Exact origins allowed, e.g. `["https://app.example.com"]` (scheme, host
   * and port; no trailing slash). `"*"` allows any origin (never with
   * credentials, which this middleware does not send anyway). Required.
   */
  origins: readonly string[];
  /** How long browsers may cache a preflight answer, in seconds. Default 600. */
  maxAgeSeconds?: number;
}

const ALLOW_METHODS = "GET, HEAD, PUT, DELETE, OPTIONS";
const ALLOW_HEADERS = "Authorization, Content-Type, If-Match, If-None-Match, Last-Event-ID";
const EXPOSE_HEADERS = "ETag, Last-Modified, X-Cache, Cache-Control, Retry-After, Location";

/**
 * Middleware adding CORS headers for allowed origins and answering
 * preflight requests (`OPTIONS` with `Access-Control-Request-Method`) with
 * 204. A disallowed origin gets no CORS headers, so the browser blocks it.
 *
 * @example
 * ```ts
 * import { Hono } from "hono";
 * import { cors } from "./cors.ts";
 * const app = new Hono();
 * app.use(cors({ origins: ["https://app.example.com"] }));
 * ```
 */
export function cors(options: CorsOptions): MiddlewareHandler {
  return corsMiddleware(corsPolicy(options));
}

/** The middleware of a {@link CorsPolicy}, so that a route and a hot path share one policy. */
export function corsMiddleware(policy: CorsPolicy): MiddlewareHandler {
  return async function cors(c, next) {
    const preflight = policy.preflight(c.req.raw);
    if (preflight !== undefined) return preflight;
    await next();
    policy.decorate(c.req.raw, c.res.headers);
    return undefined;
  };
}

/** The CORS rules as plain functions, for {@link cors} and for hot paths outside the middleware chain. */
export interface CorsPolicy {
  /** The 204 answer of a preflight request; `undefined` for any other request. */
  preflight(request: Request): Response | undefined;
  /** Adds the CORS headers of `request`'s origin to a response's headers. */
  decorate(request: Request, headers: Headers): void;
}

/** Checks `options` and builds the {@link CorsPolicy} behind {@link cors}. */
export function corsPolicy(options: CorsOptions): CorsPolicy {
  if (!Array.isArray(options.origins) || options.origins.length === 0) {
    throw new RangeError('Cannot enable CORS: "origins" must list at least one origin');
  }
  for (const o of options.origins) {
    if (o !== "*" && !/^[a-z][a-z0-9+.-]*:\/\/[^/\s]+$/i.test(o)) {
      throw new TypeError(
        `Cannot enable CORS: origin ${JSON.stringify(o)} is not "scheme://host[:port]"`,
      );
    }
  }
  const any = options.origins.includes("*");
  const allowed = new Set(options.origins.map((o) => o.toLowerCase()));
  const maxAge = String(options.maxAgeSeconds ?? 600);

  function allowOrigin(origin: string | null): string | undefined {
    if (origin === null) return undefined;
    if (any) return "*";
    return allowed.has(origin.toLowerCase()) ? origin : undefined;
  }

  return {
    preflight(request) {
      if (request.method !== "OPTIONS" || !request.headers.has("access-control-request-method")) {
        return undefined;
      }
      const allow = allowOrigin(request.headers.get("origin"));
      const headers: Record<string, string> = { vary: "Origin" };
      if (allow !== undefined) {
        headers["access-control-allow-origin"] = allow;
        headers["access-control-allow-methods"] = ALLOW_METHODS;
        headers["access-control-allow-headers"] = ALLOW_HEADERS;
        headers["access-control-max-age"] = maxAge;
      }
      return new Response(null, { status: 204, headers });
    },
    decorate(request, headers) {
      const allow = allowOrigin(request.headers.get("origin"));
      headers.append("vary", "Origin");
      if (allow !== undefined) {
        headers.set("access-control-allow-origin", allow);
        headers.set("access-control-expose-headers", EXPOSE_HEADERS);
      }
    },
  };
}
