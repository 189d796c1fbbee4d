/**
 * What one isolate of the edge worker serves: its NATS connection, one
 * cache per bucket, the app, and the listener (the connection gate, or
 * `Deno.serve` on the port). The main isolate runs it once, or each isolate
 * of `KVEDGE_WORKERS` runs it for itself (`_edge_isolate.ts`).
 *
 * @module
 */
import type { ConnectionOptions } from "@nats-io/nats-core";
import { BucketNotFoundError, type CacheEvent, openCache } from "../mod.ts";
import { connectNats, RECONNECT_POLICY } from "../src/connect.ts";
import type { EdgeConfig } from "../host/edge_config.ts";
import {
  type GatedServeOptions,
  type GatedServer,
  serveDirect,
  serveGated,
} from "../host/edge_listener.ts";
import { describe, type JsonLogger, type Level } from "./_log.ts";
import { edgeApp } from "./_edge_app.ts";
import { closeResources, type EdgeResources } from "./_edge_shutdown.ts";
import { settleWithin } from "../src/async.ts";

/** The response header naming the isolate that answered, when there are several. */
export const ISOLATE_HEADER = "kvedge-isolate";

/** Options of {@linkcode serveEdge}. */
export interface ServeEdgeOptions {
  /** The NATS servers to connect to (`NATS_URL`'s, or the embedded server's). */
  servers: string[];
  /** Most open client connections of this isolate's gate. */
  maxConnections: number;
  /** Where this isolate's lines go. */
  log: JsonLogger["log"];
  /** What this isolate has opened (filled in; closed on failure and by `stop`). */
  opened: EdgeResources;
  /**
   * This isolate's number (1-based) when the worker runs several: it shares
   * the port with the others (`shared` listener) and names itself in the
   * {@linkcode ISOLATE_HEADER} of every response. Undefined: the only one.
   */
  isolate?: number;
}

/** A serving isolate. */
export interface EdgeServing {
  /** Its listener. */
  server: GatedServer;
  /** Stops serving (in-flight requests get `shutdownTimeoutMs`), then closes what it opened. */
  stop(): Promise<void>;
}

/**
 * Connects, opens the caches, and listens. Resolves with the serving isolate,
 * or with the exit code after logging why it could not start (2: a missing
 * bucket, 1: NATS or the listener), everything it opened closed again.
 *
 * @example
 * ```ts ignore
 * const serving = await serveEdge(config, connectOptions, { servers, maxConnections: 1000, log, opened: { caches: [] } });
 * if (typeof serving !== "number") await serving.stop();
 * ```
 */
export async function serveEdge(
  config: EdgeConfig,
  connectOptions: Partial<ConnectionOptions>,
  options: ServeEdgeOptions,
): Promise<EdgeServing | number> {
  const { log, opened } = options;
  try {
    await openCaches(config, connectOptions, options);
  } catch (err) {
    const code = startFailed(log, err);
    await closeResources(opened, log);
    return code;
  }
  const shutdown = new AbortController();
  const app = edgeApp(config, {
    caches: opened.caches,
    signal: shutdown.signal,
    log,
    // The client's address, for the per-client bounds (replays): read from
    // the connection only when a bound asks, not on every request.
    clientOf: (_request, info) => {
      const addr = (info as Deno.ServeHandlerInfo | undefined)?.remoteAddr;
      return addr !== undefined && addr.transport === "tcp" ? addr.hostname : undefined;
    },
  });
  let handler: GatedServeOptions["handler"] = (request, info) => app.fetch(request, info);
  if (options.isolate !== undefined) {
    const name = String(options.isolate);
    const tag = (res: Response): Response => {
      try {
        res.headers.set(ISOLATE_HEADER, name);
      } catch {
        // Immutable headers (Response.error()): sent untagged.
      }
      return res;
    };
    handler = (request, info) => {
      const res = app.fetch(request, info);
      return res instanceof Response ? tag(res) : res.then(tag);
    };
  }
  let server: GatedServer;
  try {
    server = await listen(config, {
      maxConnections: options.maxConnections,
      handler,
      shared: options.isolate !== undefined,
      log,
    });
  } catch (err) {
    log("error", "cannot listen", {
      error: describe(err),
      listen: `${config.hostname}:${config.port}`,
    });
    await closeResources(opened, log);
    return 1;
  }
  return {
    server,
    async stop() {
      shutdown.abort(); // ends SSE streams, which would otherwise hold shutdown() forever
      if (!await settleWithin(server.shutdown(), config.shutdownTimeoutMs)) {
        log("warn", "in-flight requests did not finish in time", {
          timeoutMs: config.shutdownTimeoutMs,
        });
      }
      await closeResources(opened, log);
    },
  };
}

function logCacheEvent(log: JsonLogger["log"], bucket: string, event: CacheEvent): void {
  // Evictions are routine in a bounded LRU (one per insert when full): they
  // are counted in /metrics, and a line each would drown the log.
  if (event.type === "evicted") return;
  const level: Level = event.type === "error"
    ? "error"
    : event.type === "stale" || event.type === "resync" || event.type === "rejected" ||
        event.type === "overflow" || event.type === "disconnected"
    ? "warn"
    : "info";
  const { type, at, ...fields } = event;
  log(level, `cache ${type}`, { bucket, at: new Date(at).toISOString(), ...fields });
}

/** Connects and opens one cache per bucket, recording each in `opened`. Throws on failure. */
async function openCaches(
  config: EdgeConfig,
  connectOptions: Partial<ConnectionOptions>,
  options: ServeEdgeOptions,
): Promise<void> {
  const { opened, log } = options;
  const nc = opened.nc = await connectNats({
    ...RECONNECT_POLICY,
    ...connectOptions,
    servers: options.servers,
  });
  for (const b of config.buckets) {
    const cache = await openCache<unknown>({
      connection: nc,
      bucket: b.name,
      mode: b.mode,
      local: {
        ...config.local,
        ...(config.maxNegativeShare === undefined
          ? {}
          : { maxNegativeShare: config.maxNegativeShare }),
      },
      ...(config.maxConcurrentMisses === undefined
        ? {}
        : { maxConcurrentMisses: config.maxConcurrentMisses }),
      ...(config.createBuckets ? { create: true } : {}),
      ...(config.missTimeoutMs === undefined ? {} : { missTimeoutMs: config.missTimeoutMs }),
      ...(config.bookmarkWaitMs === undefined ? {} : { bookmarkWaitMs: config.bookmarkWaitMs }),
      ...(config.staleIfErrorMs === undefined ? {} : { staleIfErrorMs: config.staleIfErrorMs }),
      ...(config.hubDomain === undefined ? {} : { region: { hubDomain: config.hubDomain } }),
      onEvent: (event) => logCacheEvent(log, b.name, event),
    });
    opened.caches.push(cache);
  }
}

/**
 * Logs why starting failed; exit code 2 for a missing bucket, else 1.
 *
 * @example
 * ```ts ignore
 * const code = startFailed(log, new Error("connection refused")); // 1
 * ```
 */
export function startFailed(log: JsonLogger["log"], err: unknown): number {
  const badConfig = err instanceof BucketNotFoundError;
  log("error", badConfig ? "bad configuration" : "cannot start", {
    error: describe(err),
    ...(badConfig ? { hint: "create the bucket, or set KVEDGE_CREATE_BUCKETS=1" } : {}),
  });
  return badConfig ? 2 : 1;
}

/** Listens on `config.hostname:config.port`, through the connection gate unless it is off. */
function listen(
  config: EdgeConfig,
  options: {
    maxConnections: number;
    handler: GatedServeOptions["handler"];
    shared: boolean;
    log: JsonLogger["log"];
  },
): Promise<GatedServer> {
  const { log } = options;
  /** The problem+json 500 for an error a handler threw past the app. */
  const internalError = (err: unknown): Response => {
    log("error", "request failed", { error: describe(err) });
    return new Response(
      JSON.stringify({
        type: "urn:kvedge:problem:internal",
        title: "Internal error",
        status: 500,
        detail: "internal error",
        code: "internal",
      }),
      { status: 500, headers: { "content-type": "application/problem+json" } },
    );
  };
  // By default not Deno.serve on the port: it has no connection cap or idle
  // timeout, and one EMFILE on accept ends its accept loop. The gate accepts
  // and hands each connection to Deno.serve's native per-connection server
  // (host/edge_listener.ts). KVEDGE_CONNECTION_GATE=0: Deno.serve on the port.
  return (config.connectionGate ? serveGated : serveDirect)({
    hostname: config.hostname,
    port: config.port,
    maxConnections: options.maxConnections,
    headerTimeoutMs: config.headerTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    handler: options.handler,
    ...(options.shared ? { shared: true } : {}),
    onEvent(event) {
      if (event.type === "accept_error") {
        log("warn", "accept failed", {
          error: describe(event.error),
          retryInMs: event.retryInMs,
        });
      } else if (event.type === "refused") {
        log("warn", "connection refused: too many connections", { open: event.open });
      }
      // Sheds are counted (GateStats), not logged: an idle flood would drown the log.
    },
    onError: internalError,
  });
}
