/**
 * A single real `nats-server` for tests and benchmarks, on free loopback
 * ports in a temporary directory ({@link startServer}), and raw connections
 * to it ({@link connectTo}). Scripts (the bench harness) import this;
 * `tests/_setup.ts` re-exports it.
 *
 * Transport: with `KVEDGE_TEST_TRANSPORT=websocket` every server also opens a
 * WebSocket port and its `url` (and `port`) are the WebSocket ones, so an
 * unchanged test runs over WebSocket; `tests/cache/websocket_suite_test.ts` runs
 * chosen test files that way. `wsUrl` and `tcpUrl` name one transport
 * explicitly.
 *
 * @module
 */
import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { connectNats, type NatsTransport } from "../src/connect.ts";
import { type NatsServerProcess, startNatsServer } from "../host/nats_server.ts";
import { suiteTransport } from "./transport.ts";
import { live, removeDir, tempDirs } from "./server_cleanup.ts";

/** A single `nats-server` started for a test. */
export interface ServerHandle extends AsyncDisposable {
  /**
   * Client URL of the suite's transport: `"nats://127.0.0.1:<port>"`, or
   * `"ws://127.0.0.1:<port>"` when the run is over WebSocket.
   */
  readonly url: string;
  /** Client port of the suite's transport (kept across restarts). */
  readonly port: number;
  /** TCP client URL, `"nats://127.0.0.1:<port>"`, whatever the suite's transport. */
  readonly tcpUrl: string;
  /** WebSocket URL, `"ws://127.0.0.1:<port>"`, when the server has a WebSocket port. */
  readonly wsUrl: string | undefined;
  /** WebSocket port, when the server has one (kept across restarts). */
  readonly wsPort: number | undefined;
  /** PID of the current process (changes on `restart()`). */
  readonly pid: number;
  /** Temporary directory holding config, log and JetStream store. */
  readonly storeDir: string;
  /** HTTP monitoring port (`/varz`, `/jsz`, `/healthz`). */
  readonly monitorPort: number;
  /** The server's `server_name` (`n1`.. in a cluster). */
  readonly name: string;
  /** Path of the server's log file (useful in failure messages). */
  readonly logFile: string;
  /** Whether the server's process is still running (paused counts as running). */
  readonly running: boolean;
  /** SIGTERM, wait for exit, remove the temporary directory. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL and wait for exit; the store is kept for `restart()`. */
  kill(): Promise<void>;
  /** SIGSTOP; returns once the process is stopped. */
  pause(): void;
  /** SIGCONT; returns once the process runs again. */
  resume(): void;
  /** Start again on the same port and store dir (stopping first if running), wait until ready. */
  restart(): Promise<void>;
}

/** Options of {@linkcode startServer}. */
export interface StartServerOptions {
  /** Enable JetStream. Default `true`. */
  jetstream?: boolean;
  /**
   * Extra nats-server config appended to the generated one (accounts, authorization...), or a
   * function of the server's store directory that returns it.
   */
  config?: string | ((storeDir: string) => string);
  /** Extra command-line arguments. */
  args?: string[];
  /** Open a WebSocket port (`wsUrl`). Default: only when the suite runs over WebSocket. */
  websocket?: boolean;
}

/**
 * The URL of `server` for `transport`; throws if the server has no WebSocket port.
 *
 * @example
 * ```ts ignore
 * await using server = await startServer({ websocket: true });
 * for (const t of ["tcp", "websocket"] as const) console.log(urlFor(server, t));
 * ```
 */
export function urlFor(server: ServerHandle, transport: NatsTransport): string {
  if (transport === "tcp") return server.tcpUrl;
  if (server.wsUrl === undefined) {
    throw new TypeError(
      `Cannot use WebSocket: ${server.name} was started without a WebSocket port`,
    );
  }
  return server.wsUrl;
}

/** A started `nats-server` as a {@link ServerHandle}; stopping it removes its own directory. */
export class TestServer implements ServerHandle {
  readonly #process: NatsServerProcess;
  readonly #ownDir: string | undefined;
  #stopped = false;

  constructor(process: NatsServerProcess, ownDir: string | undefined) {
    this.#process = process;
    this.#ownDir = ownDir;
    live.add(process);
  }

  get url(): string {
    return suiteTransport() === "websocket" ? urlFor(this, "websocket") : this.#process.url;
  }
  get port(): number {
    return suiteTransport() === "websocket" ? this.wsPort! : this.#process.port;
  }
  get tcpUrl(): string {
    return this.#process.url;
  }
  get wsUrl(): string | undefined {
    return this.#process.websocketUrl;
  }
  get wsPort(): number | undefined {
    return this.#process.websocketPort;
  }
  get pid(): number {
    return this.#process.pid;
  }
  get storeDir(): string {
    return this.#process.storeDir;
  }
  get monitorPort(): number {
    return this.#process.monitorPort;
  }
  get name(): string {
    return this.#process.serverName;
  }
  get logFile(): string {
    return this.#process.logFile;
  }
  get paused(): boolean {
    return this.#process.paused;
  }
  get running(): boolean {
    return this.#process.running;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#process.stop();
    live.delete(this.#process);
    if (this.#ownDir) await removeDir(this.#ownDir);
  }

  kill(): Promise<void> {
    return this.#process.kill();
  }

  pause(): void {
    this.#process.pause();
  }

  resume(): void {
    this.#process.resume();
  }

  async restart(): Promise<void> {
    if (this.#stopped) {
      throw new Error(
        `Cannot restart ${this.name}: stop() removed its store; use kill() then restart()`,
      );
    }
    await this.#process.restart();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/**
 * Starts a `nats-server` (JetStream on by default) on free loopback ports in
 * a fresh temporary directory.
 *
 * @example
 * ```ts ignore
 * await using server = await startServer();
 * const nc = await connectTo(server);
 * await nc.close();
 * ```
 */
export async function startServer(opts: StartServerOptions = {}): Promise<ServerHandle> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_test_" });
  tempDirs.add(dir);
  try {
    const process = await startNatsServer({
      storeDir: dir,
      jetstream: opts.jetstream ?? true,
      configText: typeof opts.config === "function" ? opts.config(dir) : opts.config,
      args: opts.args,
      ...(opts.websocket ?? suiteTransport() === "websocket" ? { websocketPort: 0 } : {}),
    });
    return new TestServer(process, dir);
  } catch (err) {
    await removeDir(dir);
    throw err;
  }
}

/**
 * A raw nats.js connection to a server, a cluster (comma-separated URLs) or
 * anything with a `url`, over the transport the URLs select (`ws://`:
 * WebSocket). Reconnects quickly and forever, so it survives the restarts
 * tests make; `opts` overrides any default.
 *
 * @example
 * ```ts ignore
 * await using server = await startServer();
 * const nc = await connectTo(server);
 * await nc.close();
 * ```
 */
export function connectTo(
  urlOrServer: string | { url: string },
  opts: NodeConnectionOptions = {},
): Promise<NatsConnection> {
  const url = typeof urlOrServer === "string" ? urlOrServer : urlOrServer.url;
  return connectNats({
    servers: url.split(",").map((u) => u.trim()).filter(Boolean),
    name: "kvedge-test",
    reconnectTimeWait: 100,
    maxReconnectAttempts: -1,
    ...opts,
  });
}
