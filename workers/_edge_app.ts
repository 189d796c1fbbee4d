/**
 * The edge worker's HTTP app: `createApp()` over the served caches, with the
 * worker's configuration (auth, CORS, limits, readiness) and its request log
 * (errors always, successful key reads sampled).
 *
 * @module
 */
import type { Cache } from "../mod.ts";
import { type AppBucketOptions, createApp, type HttpApp, type RequestInfo } from "../http.ts";
import { type EdgeConfig, edgeLimits } from "../host/edge_config.ts";
import { describe, type JsonLogger } from "./_log.ts";

/** The route of key reads, as `RequestInfo.route` names it. */
const KEY_ROUTE = "/v1/buckets/:bucket/keys/:key";

/** What {@linkcode edgeApp} needs besides the configuration. */
export interface EdgeAppOptions {
  /** One cache per `config.buckets` entry, in the same order. */
  caches: Cache<unknown>[];
  /** Aborted at shutdown: ends SSE streams. */
  signal: AbortSignal;
  /** Where request lines go. */
  log: JsonLogger["log"];
  /** The client of a request (its address), for the per-client bounds; `env`: what `app.fetch` was given. */
  clientOf?: (request: Request, env: unknown) => string | undefined;
}

/** The Hono app the edge worker serves. */
export function edgeApp(config: EdgeConfig, options: EdgeAppOptions): HttpApp {
  const { caches, signal, log, clientOf } = options;
  const buckets: Record<string, AppBucketOptions> = {};
  config.buckets.forEach((b, i) => {
    buckets[b.name] = { cache: caches[i]!, readOnly: b.readOnly };
  });
  return createApp({
    buckets,
    auth: {
      readTokens: config.readTokens,
      writeTokens: config.writeTokens,
      anonymousWrites: config.anonymousWrites,
    },
    ...(config.corsOrigins.length > 0 ? { cors: { origins: config.corsOrigins } } : {}),
    limits: edgeLimits(config),
    ...(clientOf === undefined ? {} : { clientOf }),
    ...(config.readyMaxStaleMs === undefined
      ? {}
      : { readiness: { maxStaleMs: config.readyMaxStaleMs } }),
    ...(config.bookmarkCookie === undefined ? {} : { bookmarkCookie: config.bookmarkCookie }),
    onRequest: requestLogger(config, log),
    onRefused: refusalLogger(log),
    onStreamEnd: (info) => {
      if (info.reason === "slow_client") {
        log("warn", "watch client dropped: it stopped reading", {
          bucket: info.bucket,
          bufferBytes: config.sseBufferBytes,
        });
      }
    },
    signal,
  });
}

/** Logs failed requests always, others when `config.logRequests`, successful key reads one in `logHitsEvery`. */
function requestLogger(config: EdgeConfig, log: JsonLogger["log"]): (info: RequestInfo) => void {
  /** Successful key reads seen, for sampling their log lines. */
  let readsSeen = 0;
  return (info) => {
    if (info.error !== undefined) {
      log("error", "request failed", {
        method: info.method,
        path: info.path,
        status: info.status,
        error: describe(info.error),
      });
      return;
    }
    if (!config.logRequests) return;
    // Successful key reads come at tens of thousands a second: one line in
    // `logHitsEvery` is written (marked `sampled`), so the log costs the hit
    // path little. Errors, writes, slow requests and other routes are
    // always written.
    const sampled = info.route === KEY_ROUTE &&
      (info.method === "GET" || info.method === "HEAD") &&
      info.status < 400 && info.durationMs < config.logSlowMs;
    if (sampled && ++readsSeen % config.logHitsEvery !== 0) return;
    log("info", "request", {
      method: info.method,
      route: info.route,
      path: info.path,
      status: info.status,
      ms: Math.round(info.durationMs * 1000) / 1000,
      ...(sampled && config.logHitsEvery > 1 ? { sampled: config.logHitsEvery } : {}),
    });
  };
}

/**
 * One warning line per bound when it first refuses, then at most one a
 * second with how many were refused since (a flood must not flood the log).
 */
function refusalLogger(log: JsonLogger["log"]): (info: { bound: string }) => void {
  const last = new Map<string, { at: number; since: number }>();
  return ({ bound }) => {
    const now = Date.now();
    const seen = last.get(bound);
    if (seen !== undefined && now - seen.at < 1000) {
      seen.since++;
      return;
    }
    log("warn", "request refused: a bound was reached", {
      bound,
      ...(seen === undefined ? {} : { refusedSinceLastLine: seen.since + 1 }),
    });
    last.set(bound, { at: now, since: 0 });
  };
}
