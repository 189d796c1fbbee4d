/**
 * CORS with an explicit origin allow-list. Hono's `cors()` defaults to
 * `origin: "*"` and answers every preflight; this one only ever reflects an
 * origin it was given, never sends credentials, and always sends
 * `Vary: Origin` so shared caches keep responses per origin apart.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";

/** Options of {@link cors}. */
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

  return async function cors(c, next) {
    const origin = c.req.raw.headers.get("origin");
    const allow = allowOrigin(origin);
    if (c.req.method === "OPTIONS" && c.req.raw.headers.has("access-control-request-method")) {
      const headers: Record<string, string> = { vary: "Origin" };
      if (allow !== undefined) {
        headers["access-control-allow-origin"] = allow;
        headers["access-control-allow-methods"] = ALLOW_METHODS;
        headers["access-control-allow-headers"] = ALLOW_HEADERS;
        headers["access-control-max-age"] = maxAge;
      }
      return new Response(null, { status: 204, headers });
    }
    await next();
    const h = c.res.headers;
    h.append("vary", "Origin");
    if (allow !== undefined) {
      h.set("access-control-allow-origin", allow);
      h.set("access-control-expose-headers", EXPOSE_HEADERS);
    }
    return undefined;
  };
}
