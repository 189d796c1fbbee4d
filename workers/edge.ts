/**
 * The edge worker (`deno task serve`): reads its configuration from the
 * environment, opens one cache per configured bucket over a shared NATS
 * connection (or an embedded nats-server when `NATS_URL` is unset), and
 * serves the HTTP facade. One JSON log line per request and per cache event.
 * With `KVEDGE_WORKERS` above 1, that many isolates (Web Workers) serve the
 * port, each with its own connection and caches (`_edge_isolates.ts`).
 *
 * `--help` prints the usage. SIGINT, SIGTERM and SIGHUP shut down gracefully.
 * Exit codes: 0 after a graceful shutdown, 1 when NATS or the listener
 * cannot be set up, 2 for bad configuration or arguments (before listening).
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { ConnectionOptions } from "@nats-io/nats-core";
import { transportOf } from "../src/connect.ts";
import { startEmbedded } from "../host/embedded.ts";
import {
  describeEdgeConfig,
  type EdgeConfig,
  natsConnectOptions,
  parseEdgeConfig,
} from "../host/edge_config.ts";
import { describe, jsonLogger } from "./_log.ts";
import { nativeServeOnConnection } from "../host/edge_handoff.ts";
import { connectionBudget, raiseOpenFileLimit } from "../host/open_files.ts";
import { closeResources, type EdgeResources, waitForStopSignal } from "./_edge_shutdown.ts";
import { serveEdge, startFailed } from "./_edge_serve.ts";
import { startIsolates } from "./_edge_isolates.ts";

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
  KVEDGE_WORKERS         isolates serving the port, each with its own caches:
                         a number or auto (one per core); default 1

Every variable: docs/http.md (Configuration). Booleans take true/false, 1/0,
yes/no or on/off. SIGINT, SIGTERM or SIGHUP shut down gracefully; a second
SIGINT (or another signal) exits at once, a repeated SIGTERM or SIGHUP does not
(a service manager's signal reaches the worker twice under deno task). Exit codes: 0 after a graceful shutdown, 1 when NATS or
the listener cannot be set up, 2 for bad configuration or arguments.`;

const logger = jsonLogger({ batch: true });
const { log, flush: flushLog } = logger;

/** The open-file limit after raising it, as `raiseOpenFileLimit()` reports it. */
type FileLimit = Awaited<ReturnType<typeof raiseOpenFileLimit>>;

/**
 * Handles `--help` and stray arguments (the worker takes none: it reads its
 * environment): the exit code, or undefined to go on.
 */
function checkArgs(argv: string[]): number | undefined {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    options: { help: { type: "boolean", short: "h" } },
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  if (values.help === true || positionals.includes("help")) {
    console.log(USAGE);
    return 0;
  }
  const first = tokens[0];
  if (first !== undefined) {
    log("error", "bad usage", {
      error: `unexpected argument ${JSON.stringify(argv[first.index])}`,
    });
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

/** Starts the embedded nats-server (without `NATS_URL`) into `opened`; throws on failure. */
async function startEmbeddedServer(config: EdgeConfig, opened: EdgeResources): Promise<void> {
  const embedded = opened.embedded = await startEmbedded({ dataDir: config.dataDir });
  log("info", "embedded nats-server started", {
    nats: embedded.url,
    natsWs: embedded.wsUrl,
    pid: embedded.pid,
    storeDir: embedded.storeDir,
  });
}

/** Logs the `listening` line: where, which NATS, which buckets, and the warnings. */
function logListening(
  config: EdgeConfig,
  addr: { hostname: string; port: number },
  state: {
    opened: EdgeResources;
    fileLimit: FileLimit;
    maxConnections: number;
    gate: string | undefined;
  },
): void {
  const { embedded } = state.opened;
  const { fileLimit, maxConnections } = state;
  const { hostname, port } = addr;
  const host = hostname.includes(":") ? `[${hostname}]` : hostname;
  log("info", "listening", {
    url: `http://${host}:${port}`,
    nats: config.natsServers ?? embedded!.url,
    // Where WebSocket clients (browsers, isolates) reach the embedded server.
    ...(embedded === undefined ? {} : { natsWs: embedded.wsUrl }),
    embedded: embedded !== undefined,
    buckets: config.buckets.map((b) => b.name),
    workers: config.workers,
    ...(config.connectionGate ? { maxConnections, gate: state.gate } : { connectionGate: false }),
    ...(fileLimit === undefined ? {} : { openFiles: fileLimit.soft }),
    ...(config.anonymousWrites ? { warning: "writes need no token (development)" } : {}),
    ...(config.writeTokens.length === 0 && !config.anonymousWrites
      ? { warning: "writes are disabled: set KVEDGE_WRITE_TOKEN" }
      : {}),
  });
}

/** The gate's kind in this runtime, for the `listening` line. */
function gateKind(config: EdgeConfig): string | undefined {
  if (!config.connectionGate) return undefined;
  return nativeServeOnConnection() === undefined ? "pipe" : "handoff";
}

/**
 * Serves until a stop signal, then drains: from this isolate
 * (`KVEDGE_WORKERS=1`, `_edge_serve.ts`) or from `config.workers` isolates
 * (`_edge_isolates.ts`), which an isolate failing stops too (exit 1).
 */
async function serveUntilStopped(
  config: EdgeConfig,
  connectOptions: Partial<ConnectionOptions>,
  state: { opened: EdgeResources; fileLimit: FileLimit; maxConnections: number },
): Promise<number> {
  const { opened, fileLimit, maxConnections } = state;
  const servers = config.natsServers ?? [opened.embedded!.url];
  if (config.workers === 1) {
    const serving = await serveEdge(config, connectOptions, {
      servers,
      maxConnections,
      log,
      opened,
    });
    if (typeof serving === "number") return serving;
    logListening(config, serving.server.addr, { ...state, gate: gateKind(config) });
    const signal = await waitForStopSignal(logger);
    log("info", "shutting down", { signal });
    await serving.stop();
    return 0;
  }
  const pool = await startIsolates(config, { servers, maxConnections, log });
  if (typeof pool === "number") {
    await closeResources(opened, log);
    return pool;
  }
  logListening(config, pool.addr, { opened, fileLimit, maxConnections, gate: pool.gate });
  const ended = await Promise.race([
    waitForStopSignal(logger).then((signal) => ({ signal })),
    pool.failed.then((isolate) => ({ isolate })),
  ]);
  if ("isolate" in ended) {
    log("error", "an isolate failed: stopping the others", { isolate: ended.isolate });
  } else log("info", "shutting down", ended);
  await pool.stop();
  await closeResources(opened, log);
  return "isolate" in ended ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const usage = checkArgs(argv);
  if (usage !== undefined) return usage;
  const read = await readConfig();
  if (typeof read === "number") return read;
  const { config, connectOptions } = read;
  logStarting(config);

  // Everything opened so far, closed in reverse on any exit path.
  const opened: EdgeResources = { caches: [] };
  // Before the embedded nats-server starts: it inherits the raised limit.
  const { fileLimit, maxConnections } = await connectionLimit(config);
  if (config.natsServers === undefined) {
    try {
      await startEmbeddedServer(config, opened);
    } catch (err) {
      const code = startFailed(log, err);
      await closeResources(opened, log);
      return code;
    }
  }
  const code = await serveUntilStopped(config, connectOptions, {
    opened,
    fileLimit,
    maxConnections,
  });
  if (code === 0) log("info", "stopped");
  return code;
}

if (import.meta.main) {
  // A stray rejection must not take the edge (and an embedded nats-server)
  // down with it: log it loudly and keep serving.
  globalThis.addEventListener("unhandledrejection", (e) => {
    e.preventDefault();
    log("error", "unhandled rejection", { error: describe(e.reason) });
  });
  const code = await main(Deno.args);
  flushLog();
  Deno.exit(code);
}
