/**
 * kvedge's HTTP facade: `createApp()` builds a Hono app over caches already
 * opened with `openCache()` (serve it with `Deno.serve(app.fetch)`), and
 * `createFetchHandler()` opens the caches itself and answers `fetch` requests
 * in an isolate (Deno Deploy, workerd, Bun, Node). The routes, headers and
 * errors are described in docs/http.md.
 *
 * @example Serve one bucket over HTTP
 * ```ts ignore
 * import { openCache } from "@kvedge/kvedge";
 * import { createApp } from "@kvedge/kvedge/http";
 * const config = await openCache({
 *   servers: "nats://127.0.0.1:4222",
 *   bucket: "config",
 *   local: { maxItems: 10_000 },
 * });
 * const app = createApp({ buckets: { config: { cache: config } } });
 * Deno.serve({ port: 8080 }, app.fetch);
 * ```
 *
 * @example A fetch handler that opens its own caches
 * ```ts ignore
 * import { createFetchHandler } from "@kvedge/kvedge/http";
 * const handler = createFetchHandler({
 *   servers: "wss://nats.example.com:443",
 *   buckets: { config: { mode: "lazy" } },
 *   local: { maxItems: 5_000 },
 * });
 * export default { fetch: handler.fetch };
 * ```
 *
 * @module
 */
export {
  type AppAuthOptions,
  type AppBucketOptions,
  type AppLimits,
  type AppReadinessOptions,
  type CorsOptions,
  createApp,
  type CreateAppOptions,
  type HttpApp,
  type ProblemCode,
  type RequestInfo,
} from "./src/http/app.ts";
export {
  createFetchHandler,
  type FetchHandler,
  type FetchHandlerBucketOptions,
  type FetchHandlerOptions,
} from "./src/http/fetch_handler.ts";
