/**
 * The HTTP facade as a plain `fetch` handler for short-lived isolates (Deno
 * Deploy, Supabase Edge Functions, Cloudflare Workers): nothing happens at
 * construction; the first request opens one NATS connection (WebSocket with a
 * `ws://`/`wss://` URL) and the caches, concurrent first requests share that
 * opening, and every later request of the isolate reuses it. No filesystem.
 *
 * A runtime that binds a socket to the request that opened it (Cloudflare's
 * workerd) is detected at the start of the first request that may not use the
 * shared connection ({@linkcode RequestBoundSocket}): from then on every
 * request opens its own connection and closes it when its answer is complete
 * (no cache survives between requests: keep one in a Durable Object instead,
 * `./workerd.ts`). Without that, nats.js would swallow the refused sends and
 * every miss and write would wait out its deadline.
 *
 * @module
 */
import { transportOf } from "../connect.ts";
import { resolveOptions } from "../options.ts";
import { assertRuntime } from "../runtime_check.ts";
import type { Cache, LocalBounds, NatsConnectOptions } from "../types.ts";
import type { CreateAppOptions } from "./app.ts";
import { type FetchHandlerBucketOptions, IsolateOpening } from "./isolate_opening.ts";

export type { FetchHandlerBucketOptions };

/**
 * Options of {@link createFetchHandler}.
 *
 * @example
 * ```ts
 * import type { FetchHandlerOptions } from "../../http.ts";
 * const options: FetchHandlerOptions = {
 *   servers: "wss://nats.example.com",
 *   buckets: { config: { mode: "lazy", readOnly: true } },
 *   local: { maxItems: 5_000 },
 * };
 * ```
 */
export interface FetchHandlerOptions extends Omit<CreateAppOptions, "buckets" | "signal"> {
  /**
   * NATS URL(s): `wss://…` (or `ws://…`) where the runtime allows no raw TCP,
   * `nats://…` where it does. One transport per list.
   */
  servers: string | string[];
  /**
   * Connection options (auth, `name`…). Over WebSocket, `wsFactory` supplies the
   * socket where the global `WebSocket` cannot be used (Cloudflare Workers).
   */
  connectOptions?: NatsConnectOptions;
  /** The buckets served, by name. At least one. */
  buckets: Record<string, FetchHandlerBucketOptions>;
  /** Local bounds of every bucket that sets none (an isolate's memory is small: keep them small). */
  local: LocalBounds;
  /**
   * Before the first answer, wait until every cache is `ready()` (a replica
   * bucket: its snapshot applied). Default `false`: answer as soon as the caches
   * are open; a replica bucket answers reads from KV (as misses) until synced.
   * Isolates live seconds, so a full sync per cold start is usually the wrong trade.
   */
  waitForSync?: boolean;
  /**
   * Called with the error each time opening the connection and caches fails
   * (NATS unreachable, credentials refused, a bucket missing): the request
   * that tried answers a problem (`503 unavailable`, or `403
   * upstream_forbidden` for a permission the identity lacks) that names no
   * cause, so log it here, e.g. `onOpenError: (err) => console.error(err)`.
   * The error is also kept as {@link FetchHandler.lastOpenError}. An
   * exception it throws is ignored.
   */
  onOpenError?: (error: unknown) => void;
}

/**
 * A facade for `export default { fetch }` / `Deno.serve(handler.fetch)`.
 *
 * @example
 * ```ts
 * import { createFetchHandler, type FetchHandler } from "../../http.ts";
 * const handler: FetchHandler = createFetchHandler({
 *   servers: "wss://nats.example.com",
 *   buckets: { config: { mode: "lazy" } },
 *   local: { maxItems: 5_000 },
 * });
 * const res = await handler.fetch(new Request("https://edge.example/v1/buckets/config/keys/flags"));
 * console.log(res.status);
 * await handler.close();
 * ```
 */
export interface FetchHandler extends AsyncDisposable {
  /** Answers one request (bound: pass it around freely). Never rejects. */
  readonly fetch: (request: Request) => Promise<Response>;
  /**
   * The open caches by bucket, opening them first if no request did yet. Where
   * the runtime binds sockets to requests (workerd), caches opened here belong
   * to the calling request.
   */
  caches(): Promise<Record<string, Cache<unknown>>>;
  /** Ends open SSE streams, closes the caches and the connection. A later request opens them again. */
  close(): Promise<void>;
  /** Why the last opening failed; `undefined` before any failure and once an opening succeeds. */
  lastOpenError(): unknown;
}

/**
 * Builds the HTTP facade as a `fetch` handler that opens its NATS connection
 * and caches once per isolate, on the first request. A failed opening answers
 * 503 `unavailable` and is tried again by the next request. Options are
 * checked at once (`TypeError`/`RangeError`); no I/O happens before the first
 * request.
 *
 * @example
 * ```ts ignore
 * import { createFetchHandler } from "./fetch_handler.ts";
 * const handler = createFetchHandler({
 *   servers: "wss://nats.example.com",
 *   connectOptions: { token: "edge-token" },
 *   buckets: { config: { mode: "lazy", readOnly: true } },
 *   local: { maxItems: 5_000 },
 * });
 * export default { fetch: handler.fetch };
 * ```
 */
export function createFetchHandler(options: FetchHandlerOptions): FetchHandler {
  validate(options);
  const { servers, connectOptions, buckets, local, waitForSync, onOpenError, ...app } = options;
  const opening = new IsolateOpening({
    servers: typeof servers === "string" ? servers.split(",") : servers,
    connectOptions,
    buckets,
    local,
    waitForSync: waitForSync === true,
    app,
    onOpenError,
  });
  const close = () => opening.close();
  return {
    fetch: (request) => opening.fetch(request),
    caches: () => opening.caches(),
    close,
    lastOpenError: () => opening.lastOpenError,
    [Symbol.asyncDispose]: close,
  };
}

/** Checks what can be checked without I/O, so a bad deployment fails at start, not per request. */
function validate(options: FetchHandlerOptions): void {
  if (typeof options !== "object" || options === null) {
    throw new TypeError("Cannot create fetch handler: options must be an object");
  }
  const { servers, buckets } = options;
  const list = typeof servers === "string" ? servers.split(",") : servers;
  if (!Array.isArray(list) || list.length === 0 || list.some((s) => !s?.trim())) {
    throw new TypeError('Cannot create fetch handler: "servers" must name at least one URL');
  }
  const websocket = transportOf(list) === "websocket";
  assertRuntime("create fetch handler", {
    websocket,
    wsFactory: typeof options.connectOptions?.wsFactory === "function",
  });
  if (typeof buckets !== "object" || buckets === null || Object.keys(buckets).length === 0) {
    throw new TypeError('Cannot create fetch handler: "buckets" must name at least one bucket');
  }
  for (const [bucket, b] of Object.entries(buckets)) {
    const { readOnly: _r, maxAgeMs: _m, ...cacheOptions } = b ?? {};
    // Same checks openCache() makes; the connection is not opened here.
    resolveOptions({ ...cacheOptions, local: b?.local ?? options.local, bucket, servers: list });
  }
}
