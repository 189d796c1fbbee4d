/**
 * What `startNatsServer` (`nats_server.ts`) is asked for and what it hands
 * back: its options, checked before anything starts, and the handle of the
 * running process.
 *
 * @module
 */

/** Options of `startNatsServer`. */
export interface NatsServerOptions {
  /**
   * Directory that holds the config file, the log and the JetStream store
   * (`<storeDir>/jetstream`). Created if missing; never removed by this module.
   */
  storeDir: string;
  /**
   * Path of the `nats-server` executable. Default: `natsServerBinary` (`nats_binary.ts`)
   * (`KVEDGE_NATS_SERVER`, else the newest installed server).
   */
  binary?: string;
  /** Address the client, cluster and monitoring ports bind to. Default `"127.0.0.1"`. */
  host?: string;
  /**
   * Client port. Default `0`: a free port is picked, and picked again if
   * another process takes it before the server binds it.
   */
  port?: number;
  /** HTTP monitoring port (`/healthz`, `/varz`, `/jsz`). Default `0`: a free port. */
  monitorPort?: number;
  /** Whether JetStream is enabled, stored under `storeDir`. Default `true`. */
  jetstream?: boolean;
  /**
   * `server_name`; clustered JetStream needs it unique per node. Default:
   * `"kvedge_<client port>"` (fixed at the first start, kept across restarts).
   */
  serverName?: string;
  /**
   * WebSocket port for `ws://` clients (a `websocket { no_tls: true }` block: plain
   * WebSocket, for loopback and for TLS terminated in front of the server). `0`: a
   * free port. Default: no WebSocket listener.
   */
  websocketPort?: number;
  /** Cluster name; setting it turns the cluster block on. Default: no cluster. */
  clusterName?: string;
  /** Cluster (route) port, used only with `clusterName`. Default `0`: a free port. */
  clusterPort?: number;
  /**
   * Route URLs of the cluster's nodes, e.g. `"nats-route://127.0.0.1:6222"`
   * (listing the node's own route is harmless). Default: none.
   */
  routes?: string[];
  /**
   * Extra configuration appended verbatim after the generated config (e.g.
   * `accounts { ... }` or `authorization { ... }`). A top-level key repeated
   * here replaces the generated one, a `jetstream { }` block included.
   * Default: none.
   */
  configText?: string;
  /** Extra command-line arguments for `nats-server`. Default: none. */
  args?: string[];
  /** Path of the server's log file (appended to). Default `<storeDir>/nats-server.log`. */
  logFile?: string;
  /**
   * How long to wait for the client port to accept connections and
   * `/healthz` to report ok, in milliseconds. Default `15000`.
   */
  readyTimeoutMs?: number;
  /** How long `stop()` waits after SIGTERM before SIGKILL, in milliseconds. Default `5000`. */
  stopTimeoutMs?: number;
  /** Aborts the first start's wait for readiness (the half-started process is killed). */
  signal?: AbortSignal;
}

/** A running (or stopped) `nats-server` process started by `startNatsServer`. */
export interface NatsServerProcess extends AsyncDisposable {
  /** PID of the current process (changes on `restart()`). */
  readonly pid: number;
  /** Client port; kept across restarts. */
  readonly port: number;
  /** Client URL, `"nats://<host>:<port>"`. */
  readonly url: string;
  /** HTTP monitoring port; kept across restarts. */
  readonly monitorPort: number;
  /** HTTP monitoring base URL, `"http://<host>:<monitorPort>"`. */
  readonly monitorUrl: string;
  /** WebSocket port, or `undefined` without `websocketPort`; kept across restarts. */
  readonly websocketPort: number | undefined;
  /** WebSocket client URL, `"ws://<host>:<websocketPort>"`, or `undefined`. */
  readonly websocketUrl: string | undefined;
  /** Cluster (route) port, or `undefined` without a cluster. */
  readonly clusterPort: number | undefined;
  /** Route URL of this node, `"nats-route://<host>:<clusterPort>"`, or `undefined`. */
  readonly routeUrl: string | undefined;
  /** The `server_name`. */
  readonly serverName: string;
  /** The directory given as `storeDir`. */
  readonly storeDir: string;
  /** Path of the generated config file. */
  readonly configFile: string;
  /** Path of the server's log file. */
  readonly logFile: string;
  /** Whether the current process has not exited yet. */
  readonly running: boolean;
  /** Whether the process was paused with `pause()` and not resumed. */
  readonly paused: boolean;
  /** Settles with the exit status of the current process (a new promise after `restart()`). */
  readonly exited: Promise<Deno.CommandStatus>;
  /** SIGTERM, then SIGKILL after `stopTimeoutMs`; resolves once exited. Idempotent. */
  stop(): Promise<void>;
  /** SIGKILL; resolves once exited. Idempotent. */
  kill(): Promise<void>;
  /** SIGSTOP; returns once the process is stopped: it stays alive but answers nothing. */
  pause(): void;
  /** SIGCONT after `pause()`; returns once the process runs again. */
  resume(): void;
  /** Stops the process if it runs, then starts it again on the same ports, config and store. */
  restart(): Promise<void>;
  /** The last `maxBytes` of the log file (default 4096), for error reports. */
  logTail(maxBytes?: number): Promise<string>;
  /** Same as `stop()`. */
  close(): Promise<void>;
}

/**
 * Refuses options `startNatsServer` cannot start with: a `RangeError` or
 * `TypeError` of the form `Cannot start nats-server: …`.
 *
 * @example
 * ```ts
 * import { validateNatsServerOptions } from "./nats_server_options.ts";
 * validateNatsServerOptions({ storeDir: "/tmp/x", port: 4222 }); // ok
 * ```
 */
export function validateNatsServerOptions(options: NatsServerOptions): void {
  if (typeof options?.storeDir !== "string" || options.storeDir === "") {
    throw new TypeError('Cannot start nats-server: "storeDir" must be a non-empty path');
  }
  for (const name of ["port", "monitorPort", "clusterPort", "websocketPort"] as const) {
    const value = options[name];
    if (value === undefined) continue;
    if (!Number.isInteger(value) || value < 0 || value > 65535) {
      throw new RangeError(
        `Cannot start nats-server: "${name}" must be an integer in 0..65535, got ${value}`,
      );
    }
  }
  for (const name of ["readyTimeoutMs", "stopTimeoutMs"] as const) {
    const value = options[name];
    if (value === undefined) continue;
    if (!Number.isFinite(value) || value <= 0) {
      throw new RangeError(`Cannot start nats-server: "${name}" must be positive, got ${value}`);
    }
  }
}
