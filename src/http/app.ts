/**
 * `createApp()`: the Hono HTTP facade over already-opened caches. It has no
 * network of its own; `workers/edge.ts` serves it with `Deno.serve`, tests
 * call `app.request()`.
 *
 * The routes live in `routes/` (keys, listing, watch, operations), each a
 * Hono app mounted here with `app.route()`; what they share (auth, metrics,
 * the log line, error rendering) is the one pipeline of `pipeline.ts`, which
 * the GET fast path (`fast_get.ts`) uses too.
 *
 * @module
 */
import { Hono } from "hono";
import { resolveAppOptions } from "./app_options.ts";
import type { CreateAppOptions, HttpApp } from "./app_options.ts";
import { corsMiddleware } from "./cors.ts";
import { fastGet } from "./fast_get.ts";
import { Pipeline, readHead } from "./pipeline.ts";
import { KEY, keyRoutes } from "./routes/keys.ts";
import { listingRoutes } from "./routes/listing.ts";
import { opsRoutes } from "./routes/ops.ts";
import { watchRoutes } from "./routes/watch.ts";

export type {
  AppAuthOptions,
  AppBucketOptions,
  AppLimits,
  AppReadinessOptions,
  CreateAppOptions,
  HttpApp,
  RequestInfo,
} from "./app_options.ts";
export type { CorsOptions } from "./cors.ts";
export type { ProblemCode } from "./problem.ts";

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
 * import { openCache } from "../../mod.ts";
 * import { createApp } from "../../http.ts";
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
  return buildApp(options, { fastPath: true });
}

/** Internal switches of {@link buildApp}, for the parity test. */
export interface BuildAppSwitches {
  /** Answer `GET /v1/buckets/:bucket/keys/:key` without Hono's router (`fast_get.ts`). */
  fastPath: boolean;
  /** Called each time the fast path answers (so a test can see it was taken). */
  onFastPath?: () => void;
}

/** {@link createApp} with internal switches (not exported from `http.ts`). */
export function buildApp(options: CreateAppOptions, switches: BuildAppSwitches): HttpApp {
  const p = new Pipeline(options, resolveAppOptions(options));
  const app = new Hono();
  app.onError(function onError(err, c) {
    return p.renderError(err, c.req.path);
  });
  app.notFound(function notFound(c) {
    return p.notFound(c.req.method, c.req.path);
  });
  if (p.cors !== undefined) app.use(corsMiddleware(p.cors));
  app.route("/", keyRoutes(p));
  app.route("/", listingRoutes(p));
  app.route("/", watchRoutes(p));
  app.route("/", opsRoutes(p));
  p.metrics.route("*", "bad_host");

  const honoFetch = app.fetch;
  const getKey = p.metrics.route("GET", KEY);
  app.fetch = function fetch(request, env, executionCtx) {
    const head = readHead(request);
    const refused = p.refuseHost(request, head.host) ?? p.refuseHeaders(request, head);
    if (refused !== undefined) return refused;
    if (switches.fastPath && request.method === "GET") {
      const res = fastGet(p, getKey, request, head);
      if (res !== undefined) {
        switches.onFastPath?.();
        return res;
      }
    }
    return honoFetch(request, env, executionCtx);
  };
  return app;
}
