/**
 * The edge worker (`deno task serve`): reads its configuration from the
 * environment, opens one cache per configured bucket over a shared NATS
 * connection (or an embedded nats-server when `NATS_URL` is unset), and
 * serves the HTTP facade. One JSON log line per request and per cache event.
 *
 * `--help` prints the usage. SIGINT, SIGTERM and SIGHUP shut down gracefully.
 * Exit codes: 0 after a graceful shutdown, 1 when NATS or the listener
 * cannot be set up, 2 for bad configuration or arguments (before listening).
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type AppBucketOptions,
  BucketNotFoundError,
  type Cache,
  type CacheEvent,
  createApp,
  openCache,
} from "../mod.ts";
import { connectNats, transportOf } from "../src/connect.ts";
import { type EmbeddedServer, startEmbedded } from "../host/embedded.ts";
import {
  describeEdgeConfig,
  type EdgeConfig,
  natsConnectOptions,
  parseEdgeConfig,
} from "../host/edge_config.ts";
import { describe, jsonLogger, type Level } from "./_log.ts";
import { nativeServeOnConnection } from "../host/edge_handoff.ts";
import { type GatedServer, serveDirect, serveGated } from "../host/edge_listener.ts";
import { connectionBudget, raiseOpenFileLimit } from "../host/open_files.ts";

const USAGE = `usage: deno task serve          (deno run -A workers/edge.ts)

Runs a kvedge edge worker: one cache per bucket, served over HTTP. It takes no
arguments; the environment configures it. Without NATS_URL it starts an
embedded nats-server under KVEDGE_DATA_DIR (default .data), creates a "demo"
bucket and accepts writes without a token (development).

  NATS_URL               NATS server URL(s), comma-separated (unset: embedded server);
                         nats://user:password@host or nats://token@host authenticate
  NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN, NATS_NKEY
                         how to authenticate to NATS (one of them)
  KVEDGE_BUCKETS         buckets served: name[:lazy|:replica][:ro],... (default demo,
                         embedded only)
  PORT, HOSTNAME         where the HTTP facade listens (default 127.0.0.1:8080)
  KVEDGE_WRITE_TOKEN     bearer token(s) for writes; KVEDGE_READ_TOKEN for reads
  KVEDGE_MAX_ITEMS, KVEDGE_MAX_BYTES
                         local bounds per bucket (default 100000 entries, 64 MiB)

  KVEDGE_MAX_CONNECTIONS, KVEDGE_HEADER_TIMEOUT_MS, KVEDGE_IDLE_TIMEOUT_MS
                         connection cap and timeouts (docs/http.md, Limits)

Every variable: docs/http.md (Configuration). Booleans take true/false, 1/0,
yes/no or on/off. SIGINT, SIGTERM or SIGHUP shut down gracefully; a second
signal exits at once. Exit codes: 0 after a graceful shutdown, 1 when NATS or
the listener cannot be set up, 2 for bad configuration or arguments.`;

const { log, flush: flushLog } = jsonLogger({ batch: true });
/** Successful key reads seen, for sampling their log lines. */
let readsSeen = 0;
/** The route of key reads, as `RequestInfo.route` names it. */
const KEY_ROUTE = "/v1/buckets/:bucket/keys/:key";

/** Resolves after `ms`, or at once if `promise` settles first; true if it settled. */
async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}

function logCacheEvent(bucket: string, event: CacheEvent): void {
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

async function main(): Promise<number> {
  if (Deno.args.some((a) => a === "--help" || a === "-h" || a === "help")) {
    console.log(USAGE);
    return 0;
  }
  if (Deno.args.length > 0) {
    log("error", "bad usage", { error: `unexpected argument ${JSON.stringify(Deno.args[0])}` });
    flushLog();
    console.error(USAGE);
    return 2;
  }
  let config: EdgeConfig;
  let connectOptions: Awaited<ReturnType<typeof natsConnectOptions>>;
  try {
    config = parseEdgeConfig(Deno.env.toObject());
    connectOptions = await natsConnectOptions(config);
    if (config.natsServers !== undefined) transportOf(config.natsServers);
  } catch (err) {
    if (err instanceof TypeError) {
      log("error", "bad configuration", { error: err.message });
      return 2;
    }
    throw err;
  }
  log("info", "starting", { config: describeEdgeConfig(config) });
  for (const name of config.natsDeprecated) {
    log("warn", "deprecated variable", {
      variable: name,
      use: name === "NATS_PASS" ? "NATS_PASSWORD" : "NATS_NKEY",
    });
  }

  // Everything opened so far, closed in reverse on any exit path.
  let embedded: EmbeddedServer | undefined;
  let nc: NatsConnection | undefined;
  const caches: Cache<unknown>[] = [];
  const cleanup = async () => {
    for (const c of caches) {
      await c.close().catch((err) =>
        log("warn", "cache close failed", { bucket: c.bucket, error: describe(err) })
      );
    }
    if (nc !== undefined && !nc.isClosed()) {
      if (!await within(nc.drain(), 5_000)) await nc.close().catch(() => {});
    }
    if (embedded !== undefined) {
      await embedded.close().catch((err) =>
        log("warn", "embedded nats-server stop failed", { error: describe(err) })
      );
    }
  };

  // Before the embedded nats-server starts: it inherits the raised limit.
  const fileLimit = await raiseOpenFileLimit();
  let maxConnections = config.maxConnections ?? 10_000;
  if (fileLimit !== undefined) {
    const budget = connectionBudget(fileLimit.soft);
    if (maxConnections > budget) {
      if (config.maxConnections !== undefined) {
        log("warn", "KVEDGE_MAX_CONNECTIONS exceeds the open-file limit", {
          maxConnections,
          openFiles: fileLimit.soft,
          using: budget,
        });
      }
      maxConnections = budget;
    }
    if (fileLimit.error !== undefined) {
      log("warn", "cannot raise the open-file limit", {
        openFiles: fileLimit.soft,
        hard: fileLimit.hard,
        error: fileLimit.error,
      });
    }
  }

  try {
    if (config.natsServers === undefined) {
      embedded = await startEmbedded({ dataDir: config.dataDir });
      log("info", "embedded nats-server started", {
        nats: embedded.url,
        natsWs: embedded.wsUrl,
        pid: embedded.pid,
        storeDir: embedded.storeDir,
      });
    }
    const servers = config.natsServers ?? [embedded!.url];
    nc = await connectNats({
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      pingInterval: 10_000,
      ...connectOptions,
      servers,
    });
    for (const b of config.buckets) {
      const cache = await openCache<unknown>({
        connection: nc,
        bucket: b.name,
        mode: b.mode,
        local: config.local,
        ...(config.createBuckets ? { create: true } : {}),
        ...(config.missTimeoutMs === undefined ? {} : { missTimeoutMs: config.missTimeoutMs }),
        ...(config.staleIfErrorMs === undefined ? {} : { staleIfErrorMs: config.staleIfErrorMs }),
        ...(config.hubDomain === undefined ? {} : { region: { hubDomain: config.hubDomain } }),
        onEvent: (event) => logCacheEvent(b.name, event),
      });
      caches.push(cache);
    }
  } catch (err) {
    const badConfig = err instanceof BucketNotFoundError;
    log("error", badConfig ? "bad configuration" : "cannot start", {
      error: describe(err),
      ...(badConfig ? { hint: "create the bucket, or set KVEDGE_CREATE_BUCKETS=1" } : {}),
    });
    await cleanup();
    return badConfig ? 2 : 1;
  }

  const shutdown = new AbortController();
  const buckets: Record<string, AppBucketOptions> = {};
  config.buckets.forEach((b, i) => {
    buckets[b.name] = { cache: caches[i]!, readOnly: b.readOnly };
  });
  const app = createApp({
    buckets,
    auth: {
      readTokens: config.readTokens,
      writeTokens: config.writeTokens,
      anonymousWrites: config.anonymousWrites,
    },
    ...(config.corsOrigins.length > 0 ? { cors: { origins: config.corsOrigins } } : {}),
    limits: {
      maxBodyBytes: config.maxBodyBytes,
      maxSseStreams: config.maxSseStreams,
      sseBufferBytes: config.sseBufferBytes,
      maxJsonDepth: config.maxJsonDepth,
    },
    ...(config.readyMaxStaleMs === undefined
      ? {}
      : { readiness: { maxStaleMs: config.readyMaxStaleMs } }),
    onRequest: (info) => {
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
    },
    onStreamEnd: (info) => {
      if (info.reason === "slow_client") {
        log("warn", "watch client dropped: it stopped reading", {
          bucket: info.bucket,
          bufferBytes: config.sseBufferBytes,
        });
      }
    },
    signal: shutdown.signal,
  });

  let server: GatedServer;
  try {
    // By default not Deno.serve on the port: it has no connection cap or idle
    // timeout, and one EMFILE on accept ends its accept loop. The gate accepts
    // and hands each connection to Deno.serve's native per-connection server
    // (host/edge_listener.ts). KVEDGE_CONNECTION_GATE=0: Deno.serve on the port.
    server = await (config.connectionGate ? serveGated : serveDirect)({
      hostname: config.hostname,
      port: config.port,
      maxConnections,
      headerTimeoutMs: config.headerTimeoutMs,
      idleTimeoutMs: config.idleTimeoutMs,
      handler: app.fetch,
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
      onError(err) {
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
      },
    });
  } catch (err) {
    log("error", "cannot listen", {
      error: describe(err),
      listen: `${config.hostname}:${config.port}`,
    });
    await cleanup();
    return 1;
  }
  {
    const { hostname, port } = server.addr;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    log("info", "listening", {
      url: `http://${host}:${port}`,
      nats: config.natsServers ?? embedded!.url,
      // Where WebSocket clients (browsers, isolates) reach the embedded server.
      ...(embedded === undefined ? {} : { natsWs: embedded.wsUrl }),
      embedded: embedded !== undefined,
      buckets: config.buckets.map((b) => b.name),
      ...(config.connectionGate
        ? { maxConnections, gate: nativeServeOnConnection() === undefined ? "pipe" : "handoff" }
        : { connectionGate: false }),
      ...(fileLimit === undefined ? {} : { openFiles: fileLimit.soft }),
      ...(config.anonymousWrites ? { warning: "writes need no token (development)" } : {}),
      ...(config.writeTokens.length === 0 && !config.anonymousWrites
        ? { warning: "writes are disabled: set KVEDGE_WRITE_TOKEN" }
        : {}),
    });
  }

  const stopped = Promise.withResolvers<string>();
  const onSignal = (signal: Deno.Signal) => () => stopped.resolve(signal);
  // SIGHUP too: a closed terminal must not leave the embedded nats-server behind.
  const handlers = (["SIGINT", "SIGTERM", "SIGHUP"] as const).map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  const signal = await stopped.promise;

  // A second signal while draining means "now".
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  const force = () => {
    log("warn", "forced exit");
    flushLog();
    Deno.exit(1);
  };
  for (const s of ["SIGINT", "SIGTERM", "SIGHUP"] as const) Deno.addSignalListener(s, force);

  log("info", "shutting down", { signal });
  shutdown.abort(); // ends SSE streams, which would otherwise hold shutdown() forever
  if (!await within(server.shutdown(), config.shutdownTimeoutMs)) {
    log("warn", "in-flight requests did not finish in time", {
      timeoutMs: config.shutdownTimeoutMs,
    });
  }
  await cleanup();
  log("info", "stopped");
  return 0;
}

if (import.meta.main) {
  // A stray rejection must not take the edge (and an embedded nats-server)
  // down with it: log it loudly and keep serving.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log("error", "unhandled rejection", { error: describe(e.reason) });
  });
  const code = await main();
  flushLog();
  Deno.exit(code);
}
