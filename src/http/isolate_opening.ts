/**
 * The connection and caches of a fetch handler's isolate, and their one
 * owner: {@linkcode IsolateOpening} opens them on the first request, shares
 * that opening between concurrent first requests, keeps the last failure,
 * and, once the runtime refuses the shared socket to a later request
 * (workerd), switches to one opening per request for good.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { connectNats, RECONNECT_POLICY } from "../connect.ts";
import { openCache } from "../open.ts";
import type { Cache, CacheOptions, LocalBounds, NatsConnectOptions } from "../types.ts";
import { type AppBucketOptions, createApp, type CreateAppOptions, type HttpApp } from "./app.ts";
import { problemInstance, toProblem } from "./problem.ts";
import { RequestBoundSocket } from "./request_bound_socket.ts";

/**
 * One bucket served by `createFetchHandler()`: the cache's options, minus the connection.
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
 * What an opening needs: the fetch handler's options, checked, with the
 * server list split.
 */
export interface OpeningConfig {
  /** NATS URLs, one transport. */
  servers: string[];
  /** Connection options (auth, `name`, `wsFactory`…). */
  connectOptions: NatsConnectOptions | undefined;
  /** The buckets served, by name. */
  buckets: Record<string, FetchHandlerBucketOptions>;
  /** Local bounds of every bucket that sets none. */
  local: LocalBounds;
  /** Wait until every cache is `ready()` before the first answer. */
  waitForSync: boolean;
  /** The app's own options. */
  app: Omit<CreateAppOptions, "buckets" | "signal">;
  /** Called with the error of each failed opening; what it throws is ignored. */
  onOpenError: ((error: unknown) => void) | undefined;
}

/** One opening: the connection, its socket's watch, the caches and the app over them. */
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
 * The isolate's opening, shared by its requests while the runtime lets them
 * share it. Its state is `#private`: the handler asks it, never writes it.
 *
 * @example
 * ```ts ignore
 * import { IsolateOpening } from "./isolate_opening.ts";
 * const opening = new IsolateOpening(config); // no I/O yet
 * const res = await opening.fetch(new Request("https://edge.example/v1/buckets/config/keys/flags"));
 * await opening.close();
 * ```
 */
export class IsolateOpening {
  readonly #config: OpeningConfig;
  #opened: Opened | undefined;
  #opening: Promise<Opened> | undefined;
  #lastOpenError: unknown;
  /** Set once the runtime refused the shared connection to a later request: then one per request. */
  #perRequest = false;

  /** Keeps the configuration; opens nothing. */
  constructor(config: OpeningConfig) {
    this.#config = config;
  }

  /** Why the last opening failed; `undefined` before any failure and once an opening succeeds. */
  get lastOpenError(): unknown {
    return this.#lastOpenError;
  }

  /**
   * Answers `request` on the shared opening, or on one of its own once
   * sharing was refused. Never rejects: a failed opening answers its problem.
   */
  async fetch(request: Request): Promise<Response> {
    try {
      if (!this.#perRequest) {
        // The warm path: two property reads, then the app's own pipeline.
        const res = await this.#serveShared(this.#opened ?? await this.#ensure(), request);
        if (res !== undefined) return res;
      }
      return await servePerRequest(this.#config, request);
    } catch (err) {
      return toProblem(err).getResponse(problemInstance(new URL(request.url).pathname));
    }
  }

  /** The open caches by bucket, opening them first if no request did yet. */
  async caches(): Promise<Record<string, Cache<unknown>>> {
    return { ...(await this.#ensure()).caches };
  }

  /** Ends the shared opening's SSE streams, closes its caches and connection. */
  async close(): Promise<void> {
    const o = this.#opened ?? await this.#opening?.catch(() => undefined);
    this.#opened = undefined;
    this.#opening = undefined;
    if (o === undefined) return;
    await shut(o);
  }

  /** The shared opening, opened first if it is not yet; concurrent callers share one attempt. */
  #ensure(): Promise<Opened> {
    if (this.#opened !== undefined) return Promise.resolve(this.#opened);
    this.#opening ??= open(this.#config).then(
      (o) => {
        this.#opened = o;
        this.#opening = undefined;
        this.#lastOpenError = undefined;
        return o;
      },
      (err) => {
        // The next request tries again: an isolate must not stay broken after a blip.
        this.#opening = undefined;
        this.#lastOpenError = err;
        try {
          this.#config.onOpenError?.(err);
        } catch {
          // A failing logger must not turn the 503 into a crash.
        }
        throw err;
      },
    );
    return this.#opening;
  }

  /** Answers on the shared opening, `undefined` when this request may not use it. */
  async #serveShared(o: Opened, request: Request): Promise<Response | undefined> {
    if (!o.socket.usable()) {
      this.#abandon(o);
      return undefined;
    }
    o.inFlight++;
    try {
      return await o.app.fetch(request);
    } finally {
      o.inFlight--;
    }
  }

  /**
   * The shared opening belongs to another request: no request but its owner may
   * close it, so it is closed from the owner's context, on its socket's next
   * message once none of the owner's requests is being answered.
   */
  #abandon(o: Opened): void {
    this.#perRequest = true;
    if (this.#opened === o) this.#opened = undefined;
    const closeWhenIdle = () => {
      if (o.inFlight > 0) o.socket.onNextActivity(closeWhenIdle);
      else void shut(o);
    };
    o.socket.onNextActivity(closeWhenIdle);
  }
}

/** Opens the connection, the caches and the app over them; nothing stays open if one fails. */
async function open(config: OpeningConfig): Promise<Opened> {
  const socket = new RequestBoundSocket();
  const { connectOptions } = config;
  const nc = await connectNats(
    {
      ...RECONNECT_POLICY,
      name: "kvedge-isolate",
      ...connectOptions,
      servers: config.servers,
      wsFactory: socket.factory(connectOptions?.wsFactory),
    } as Parameters<typeof connectNats>[0],
  );
  const caches = await openCaches(config, nc);
  const shutdown = new AbortController();
  const app = createApp({
    ...config.app,
    buckets: servedBuckets(config.buckets, caches),
    signal: shutdown.signal,
  });
  return { nc, socket, inFlight: 0, caches, app, shutdown };
}

/** Every bucket's cache on `nc`; on a failure, closes those opened and the connection. */
async function openCaches(
  config: OpeningConfig,
  nc: NatsConnection,
): Promise<Record<string, Cache<unknown>>> {
  const caches: Record<string, Cache<unknown>> = {};
  try {
    await Promise.all(
      Object.entries(config.buckets).map(async ([bucket, b]) => {
        const { readOnly: _r, maxAgeMs: _m, ...cacheOptions } = b;
        caches[bucket] = await openCache<unknown>({
          ...cacheOptions,
          local: b.local ?? config.local,
          bucket,
          connection: nc,
        });
      }),
    );
    if (config.waitForSync) await Promise.all(Object.values(caches).map((c) => c.ready()));
  } catch (err) {
    await Promise.all(Object.values(caches).map((c) => c.close().catch(() => {})));
    await nc.close().catch(() => {});
    throw err;
  }
  return caches;
}

/** The app's view of each bucket: its cache and the HTTP options set for it. */
function servedBuckets(
  buckets: Record<string, FetchHandlerBucketOptions>,
  caches: Record<string, Cache<unknown>>,
): Record<string, AppBucketOptions> {
  const served: Record<string, AppBucketOptions> = {};
  for (const [bucket, b] of Object.entries(buckets)) {
    served[bucket] = {
      cache: caches[bucket]!,
      ...(b.readOnly === undefined ? {} : { readOnly: b.readOnly }),
      ...(b.codec === undefined ? {} : { codec: b.codec }),
      ...(b.maxAgeMs === undefined ? {} : { maxAgeMs: b.maxAgeMs }),
    };
  }
  return served;
}

async function shut(o: Opened): Promise<void> {
  o.shutdown.abort();
  await Promise.all(Object.values(o.caches).map((c) => c.close().catch(() => {})));
  await o.nc.close().catch(() => {});
}

/** One connection for this request alone, closed once the answer is complete. */
async function servePerRequest(config: OpeningConfig, request: Request): Promise<Response> {
  const o = await open(config);
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
}
