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
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, RECONNECT_POLICY, transportOf } from "../connect.ts";
import { openCache } from "../open.ts";
import { resolveOptions } from "../options.ts";
import { assertRuntime } from "../runtime_check.ts";
import type { Cache, CacheOptions, LocalBounds, NatsConnectOptions } from "../types.ts";
import { type AppBucketOptions, createApp, type CreateAppOptions, type HttpApp } from "./app.ts";
import { problemInstance, toProblem } from "./problem.ts";
import { RequestBoundSocket } from "./request_bound_socket.ts";

/**
 * One bucket served by {@link createFetchHandler}: the cache's options, minus the connection.
 *
 * @example
 * ```ts
 * import type { FetchHandlerBucketOptions } from "../../http.ts";
 * const config: FetchHandlerBucketOptions = { mode: "lazy", readOnly: true, maxAgeMs: 10_000 };
 * ```
 */
export interface FetchHandlerBucketOptions extends
  Omit<
    CacheOptions<unknown>,
    "servers" | "connection" | "connectOptions" | "bucket" | "local" | "snapshot"
  > {
  /** Bounds of this bucket's local store. Default: the handler's `local`. */
  local?: LocalBounds;
  /** Refuse writes to this bucket (`PUT`/`DELETE` answer 405). Default false. */
  readOnly?: boolean;
  /** `Cache-Control: max-age` of values, in ms (see `createApp`). Default 0. */
  maxAgeMs?: number;
}

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

interface Opened {
  nc: NatsConnection;
  socket: RequestBoundSocket;
  /** Requests being answered on this opening. */
  inFlight: number;
  caches: Record<string, Cache<unknown>>;
  app: HttpApp;
  shutdown: AbortController;
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
  const { servers, connectOptions, buckets, local, waitForSync, onOpenError, ...appOptions } =
    options;
  const serverList = typeof servers === "string" ? servers.split(",") : servers;
  let opened: Opened | undefined;
  let opening: Promise<Opened> | undefined;
  let lastOpenError: unknown;

  /** Set once the runtime refused the shared connection to a later request: then one per request. */
  let perRequest = false;

  const open = async (): Promise<Opened> => {
    const socket = new RequestBoundSocket();
    const nc = await connectNats(
      {
        ...RECONNECT_POLICY,
        name: "kvedge-isolate",
        ...connectOptions,
        servers: serverList,
        wsFactory: socket.factory(connectOptions?.wsFactory),
      } as Parameters<typeof connectNats>[0],
    );
    const caches: Record<string, Cache<unknown>> = {};
    try {
      await Promise.all(
        Object.entries(buckets).map(async ([bucket, b]) => {
          const { readOnly: _r, maxAgeMs: _m, ...cacheOptions } = b;
          caches[bucket] = await openCache<unknown>({
            ...cacheOptions,
            local: b.local ?? local,
            bucket,
            connection: nc,
          });
        }),
      );
      if (waitForSync) await Promise.all(Object.values(caches).map((c) => c.ready()));
    } catch (err) {
      await Promise.all(Object.values(caches).map((c) => c.close().catch(() => {})));
      await nc.close().catch(() => {});
      throw err;
    }
    const served: Record<string, AppBucketOptions> = {};
    for (const [bucket, b] of Object.entries(buckets)) {
      served[bucket] = {
        cache: caches[bucket]!,
        ...(b.readOnly === undefined ? {} : { readOnly: b.readOnly }),
        ...(b.codec === undefined ? {} : { codec: b.codec }),
        ...(b.maxAgeMs === undefined ? {} : { maxAgeMs: b.maxAgeMs }),
      };
    }
    const shutdown = new AbortController();
    const app = createApp({ ...appOptions, buckets: served, signal: shutdown.signal });
    return { nc, socket, inFlight: 0, caches, app, shutdown };
  };

  const shut = async (o: Opened): Promise<void> => {
    o.shutdown.abort();
    await Promise.all(Object.values(o.caches).map((c) => c.close().catch(() => {})));
    await o.nc.close().catch(() => {});
  };

  const ensure = (): Promise<Opened> => {
    if (opened !== undefined) return Promise.resolve(opened);
    opening ??= open().then(
      (o) => {
        opened = o;
        opening = undefined;
        lastOpenError = undefined;
        return o;
      },
      (err) => {
        // The next request tries again: an isolate must not stay broken after a blip.
        opening = undefined;
        lastOpenError = err;
        try {
          onOpenError?.(err);
        } catch {
          // A failing logger must not turn the 503 into a crash.
        }
        throw err;
      },
    );
    return opening;
  };

  /** Answers on the shared opening, `undefined` when this request may not use it. */
  const serveShared = async (o: Opened, request: Request): Promise<Response | undefined> => {
    if (!o.socket.usable()) {
      abandon(o);
      return undefined;
    }
    o.inFlight++;
    try {
      return await o.app.fetch(request);
    } finally {
      o.inFlight--;
    }
  };

  /**
   * The shared opening belongs to another request: no request but its owner may
   * close it, so it is closed from the owner's context, on its socket's next
   * message once none of the owner's requests is being answered.
   */
  const abandon = (o: Opened): void => {
    perRequest = true;
    if (opened === o) opened = undefined;
    const closeWhenIdle = () => {
      if (o.inFlight > 0) o.socket.onNextActivity(closeWhenIdle);
      else void shut(o);
    };
    o.socket.onNextActivity(closeWhenIdle);
  };

  /** One connection for this request alone, closed once the answer is complete. */
  const servePerRequest = async (request: Request): Promise<Response> => {
    const o = await open();
    let res: Response;
    try {
      res = await o.app.fetch(request);
      if (res.body !== null && res.headers.get("content-type")?.startsWith("text/event-stream")) {
        // A stream holds the connection until the client or the shutdown ends it.
        const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
        res.body.pipeTo(writable).catch(() => {}).finally(() => shut(o));
        return new Response(readable, res);
      }
      const body = res.body === null ? null : await res.arrayBuffer();
      res = new Response(body, res);
    } catch (err) {
      await shut(o);
      throw err;
    }
    await shut(o);
    return res;
  };

  const fetch = async (request: Request): Promise<Response> => {
    try {
      if (!perRequest) {
        // The warm path: two property reads, then the app's own pipeline.
        const res = await serveShared(opened ?? await ensure(), request);
        if (res !== undefined) return res;
      }
      return await servePerRequest(request);
    } catch (err) {
      return toProblem(err).getResponse(problemInstance(new URL(request.url).pathname));
    }
  };

  const close = async (): Promise<void> => {
    const o = opened ?? await opening?.catch(() => undefined);
    opened = undefined;
    opening = undefined;
    if (o === undefined) return;
    await shut(o);
  };

  return {
    fetch,
    caches: async () => ({ ...(await ensure()).caches }),
    close,
    lastOpenError: () => lastOpenError,
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
