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
import type { ConnectionOptions } from "@nats-io/nats-core";
import { BucketNotFoundError, type CacheEvent, openCache } from "../mod.ts";
import { connectNats, RECONNECT_POLICY, transportOf } from "../src/connect.ts";
import { startEmbedded } from "../host/embedded.ts";
import {
  describeEdgeConfig,
  type EdgeConfig,
  natsConnectOptions,
  parseEdgeConfig,
} from "../host/edge_config.ts";
import { describe, jsonLogger, type Level } from "./_log.ts";
import { nativeServeOnConnection } from "../host/edge_handoff.ts";
import {
  type GatedServeOptions,
  type GatedServer,
  serveDirect,
  serveGated,
} from "../host/edge_listener.ts";
import { connectionBudget, raiseOpenFileLimit } from "../host/open_files.ts";
import { edgeApp } from "./_edge_app.ts";
import { closeResources, type EdgeResources, waitForStopSignal } from "./_edge_shutdown.ts";
import { settleWithin } from "../src/async.ts";

const USAGE = `usage: deno task serve   (deno run -A --unstable-no-legacy-abort workers/edge.ts)

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
SIGINT (or another signal) exits at once, a repeated SIGTERM or SIGHUP does not
(a service manager's signal reaches the worker twice under deno task). Exit codes: 0 after a graceful shutdown, 1 when NATS or
the listener cannot be set up, 2 for bad configuration or arguments.`;

const logger = jsonLogger({ batch: true });
const { log, flush: flushLog } = logger;

/** The open-file limit after raising it, as `raiseOpenFileLimit()` reports it. */
type FileLimit = Awaited<ReturnType<typeof raiseOpenFileLimit>>;

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

/** Handles `--help` and stray arguments: the exit code, or undefined to go on. */
function checkArgs(): number | undefined {
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
  return undefined;
}

/** Reads the configuration from the environment; exit code 2 if it is bad. */
async function readConfig(): Promise<
  { config: EdgeConfig; connectOptions: Partial<ConnectionOptions> } | number
> {
  try {
    const config = parseEdgeConfig(Deno.env.toObject());
    const connectOptions = await natsConnectOptions(config);
    if (config.natsServers !== undefined) transportOf(config.natsServers);
    return { config, connectOptions };
  } catch (err) {
    if (err instanceof TypeError) {
      log("error", "bad configuration", { error: err.message });
      return 2;
    }
    throw err;
  }
}

/** Logs the `starting` line and one line per deprecated variable set. */
function logStarting(config: EdgeConfig): void {
  log("info", "starting", { config: describeEdgeConfig(config) });
  for (const name of config.natsDeprecated) {
    log("warn", "deprecated variable", {
      variable: name,
      use: name === "NATS_PASS" ? "NATS_PASSWORD" : "NATS_NKEY",
    });
  }
}

/** Raises the open-file limit and caps the connections to what it allows. */
async function connectionLimit(
  config: EdgeConfig,
): Promise<{ fileLimit: FileLimit; maxConnections: number }> {
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
  return { fileLimit, maxConnections };
}

/**
 * Starts the embedded nats-server (without `NATS_URL`), connects, opens one
 * cache per bucket, recording each in `opened`. Throws on failure.
 */
async function openServed(
  config: EdgeConfig,
  connectOptions: Partial<ConnectionOptions>,
  opened: EdgeResources,
): Promise<void> {
  if (config.natsServers === undefined) {
    const embedded = opened.embedded = await startEmbedded({ dataDir: config.dataDir });
    log("info", "embedded nats-server started", {
      nats: embedded.url,
      natsWs: embedded.wsUrl,
      pid: embedded.pid,
      storeDir: embedded.storeDir,
    });
  }
  const servers = config.natsServers ?? [opened.embedded!.url];
  const nc = opened.nc = await connectNats({
    ...RECONNECT_POLICY,
    ...connectOptions,
    servers,
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
      onEvent: (event) => logCacheEvent(b.name, event),
    });
    opened.caches.push(cache);
  }
}

/** Logs why {@linkcode openServed} failed; exit code 2 for a missing bucket, else 1. */
function startFailed(err: unknown): number {
  const badConfig = err instanceof BucketNotFoundError;
  log("error", badConfig ? "bad configuration" : "cannot start", {
    error: describe(err),
    ...(badConfig ? { hint: "create the bucket, or set KVEDGE_CREATE_BUCKETS=1" } : {}),
  });
  return badConfig ? 2 : 1;
}

/** The problem+json 500 for an error a handler threw past the app. */
function internalError(err: unknown): Response {
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
}

/** Listens on `config.hostname:config.port`, through the connection gate unless it is off. */
function listen(
  config: EdgeConfig,
  options: { maxConnections: number; handler: GatedServeOptions["handler"] },
): Promise<GatedServer> {
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

/** Logs the `listening` line: where, which NATS, which buckets, and the warnings. */
function logListening(
  config: EdgeConfig,
  server: GatedServer,
  state: { opened: EdgeResources; fileLimit: FileLimit; maxConnections: number },
): void {
  const { embedded } = state.opened;
  const { fileLimit, maxConnections } = state;
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

/** Stops serving (waiting up to `shutdownTimeoutMs` for in-flight requests), then closes everything. */
async function stop(
  config: EdgeConfig,
  server: GatedServer,
  state: { opened: EdgeResources; shutdown: AbortController },
): Promise<void> {
  state.shutdown.abort(); // ends SSE streams, which would otherwise hold shutdown() forever
  if (!await settleWithin(server.shutdown(), config.shutdownTimeoutMs)) {
    log("warn", "in-flight requests did not finish in time", {
      timeoutMs: config.shutdownTimeoutMs,
    });
  }
  await closeResources(state.opened, log);
}

async function main(): Promise<number> {
  const usage = checkArgs();
  if (usage !== undefined) return usage;
  const read = await readConfig();
  if (typeof read === "number") return read;
  const { config, connectOptions } = read;
  logStarting(config);

  // Everything opened so far, closed in reverse on any exit path.
  const opened: EdgeResources = { caches: [] };
  // Before the embedded nats-server starts: it inherits the raised limit.
  const { fileLimit, maxConnections } = await connectionLimit(config);
  try {
    await openServed(config, connectOptions, opened);
  } catch (err) {
    const code = startFailed(err);
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
  const handler: GatedServeOptions["handler"] = (request, info) => app.fetch(request, info);
  let server: GatedServer;
  try {
    server = await listen(config, { maxConnections, handler });
  } catch (err) {
    log("error", "cannot listen", {
      error: describe(err),
      listen: `${config.hostname}:${config.port}`,
    });
    await closeResources(opened, log);
    return 1;
  }
  logListening(config, server, { opened, fileLimit, maxConnections });

  const signal = await waitForStopSignal(logger);
  log("info", "shutting down", { signal });
  await stop(config, server, { opened, shutdown });
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
