/**
 * Spawning and controlling real `nats-server` processes: the embedded server
 * of `deno task serve` and the servers the tests start on free loopback ports.
 * Which executable runs is decided in `nats_binary.ts`, the free ports come
 * from `free_port.ts`, the config file from `nats_config.ts`, and the log is
 * read with `log_file.ts`.
 *
 * @module
 */

import { UnavailableError } from "../src/errors.ts";
import { Backoff, delay } from "../src/async.ts";
import { freePort } from "./free_port.ts";
import { natsServerBinary } from "./nats_binary.ts";
import { natsServerConfig } from "./nats_config.ts";
import { fileSize, readFrom, tail } from "./log_file.ts";
import {
  type NatsServerOptions,
  type NatsServerProcess,
  validateNatsServerOptions,
} from "./nats_server_options.ts";

export type { NatsServerOptions, NatsServerProcess } from "./nats_server_options.ts";

/**
 * Starts `nats-server` with a generated config in `storeDir` and waits until
 * its client port accepts connections and its `/healthz` reports ok (JetStream
 * enabled, when on). Ports given as `0` are picked free, and picked again if
 * the server loses the race to bind them.
 *
 * Output goes to the log file only (no pipes that could fill and block the
 * server). On failure the error is an `UnavailableError` whose message ends
 * with the tail of the log.
 *
 * @example
 * ```ts ignore
 * import { startNatsServer } from "./nats_server.ts";
 * const storeDir = await Deno.makeTempDir();
 * await using server = await startNatsServer({ storeDir });
 * console.log(server.url); // nats://127.0.0.1:<port>
 * ```
 */
export async function startNatsServer(options: NatsServerOptions): Promise<NatsServerProcess> {
  validateNatsServerOptions(options);
  const server = new Server(options);
  await server.start(true);
  return server;
}

/** Attempts at binding freshly picked ports before giving up. */
const PORT_ATTEMPTS = 5;

const BIND_FAILURE = /address already in use/i;

class Server implements NatsServerProcess {
  readonly #options: NatsServerOptions;
  readonly #host: string;
  readonly #binary: string;
  readonly #storeDir: string;
  readonly #logFile: string;
  readonly #configFile: string;
  #port: number;
  #monitorPort: number;
  #clusterPort: number | undefined;
  #websocketPort: number | undefined;
  #serverName: string;
  #child: Deno.ChildProcess | undefined;
  #exited: Promise<Deno.CommandStatus> = Promise.resolve({
    success: true,
    code: 0,
    signal: null,
  });
  #running = false;
  #paused = false;

  constructor(options: NatsServerOptions) {
    this.#options = options;
    this.#host = options.host ?? "127.0.0.1";
    this.#binary = options.binary ?? natsServerBinary();
    this.#storeDir = options.storeDir;
    this.#logFile = options.logFile ?? `${options.storeDir}/nats-server.log`;
    this.#configFile = `${options.storeDir}/nats-server.conf`;
    this.#port = options.port ?? 0;
    this.#monitorPort = options.monitorPort ?? 0;
    this.#clusterPort = options.clusterName === undefined ? undefined : options.clusterPort ?? 0;
    this.#websocketPort = options.websocketPort;
    this.#serverName = options.serverName ?? "";
  }

  get pid(): number {
    return this.#child?.pid ?? 0;
  }
  get port(): number {
    return this.#port;
  }
  get url(): string {
    return `nats://${this.#host}:${this.#port}`;
  }
  get monitorPort(): number {
    return this.#monitorPort;
  }
  get monitorUrl(): string {
    return `http://${this.#host}:${this.#monitorPort}`;
  }
  get clusterPort(): number | undefined {
    return this.#clusterPort;
  }
  get websocketPort(): number | undefined {
    return this.#websocketPort;
  }
  get websocketUrl(): string | undefined {
    return this.#websocketPort === undefined
      ? undefined
      : `ws://${this.#host}:${this.#websocketPort}`;
  }
  get routeUrl(): string | undefined {
    return this.#clusterPort === undefined
      ? undefined
      : `nats-route://${this.#host}:${this.#clusterPort}`;
  }
  get serverName(): string {
    return this.#serverName;
  }
  get storeDir(): string {
    return this.#storeDir;
  }
  get configFile(): string {
    return this.#configFile;
  }
  get logFile(): string {
    return this.#logFile;
  }
  get running(): boolean {
    return this.#running;
  }
  get paused(): boolean {
    return this.#paused;
  }
  get exited(): Promise<Deno.CommandStatus> {
    return this.#exited;
  }

  /**
   * Spawns and waits for readiness. On the first start, ports requested as 0
   * are (re)picked when the bind races; on restarts the ports are fixed.
   */
  async start(first: boolean): Promise<void> {
    await Deno.mkdir(this.#storeDir, { recursive: true });
    const pickPort = this.#options.port === undefined || this.#options.port === 0;
    const pickMonitor = this.#options.monitorPort === undefined ||
      this.#options.monitorPort === 0;
    const pickCluster = this.#clusterPort !== undefined &&
      (this.#options.clusterPort === undefined || this.#options.clusterPort === 0);
    const pickWebsocket = this.#options.websocketPort === 0;
    for (let attempt = 1;; attempt++) {
      if (first) {
        if (pickPort) this.#port = freePort(this.#host);
        if (pickMonitor) this.#monitorPort = freePort(this.#host);
        if (pickCluster) this.#clusterPort = freePort(this.#host);
        if (pickWebsocket) this.#websocketPort = freePort(this.#host);
        if (!this.#serverName) this.#serverName = `kvedge_${this.#port}`;
      }
      await Deno.writeTextFile(this.#configFile, this.#config());
      const logStart = await fileSize(this.#logFile);
      this.#spawn();
      try {
        await this.#waitReady(logStart, first ? this.#options.signal : undefined);
        return;
      } catch (err) {
        await this.kill();
        const log = await readFrom(this.#logFile, logStart);
        const retriable = first && (pickPort || pickMonitor || pickCluster || pickWebsocket) &&
          BIND_FAILURE.test(log) && attempt < PORT_ATTEMPTS;
        if (!retriable) throw err;
      }
    }
  }

  #config(): string {
    return natsServerConfig(this.#options, {
      serverName: this.#serverName,
      host: this.#host,
      port: this.#port,
      monitorPort: this.#monitorPort,
      clusterPort: this.#clusterPort,
      websocketPort: this.#websocketPort,
      logFile: this.#logFile,
      storeDir: this.#storeDir,
    });
  }

  #spawn(): void {
    const child = new Deno.Command(this.#binary, {
      args: ["-c", this.#configFile, ...(this.#options.args ?? [])],
      stdin: "null",
      // Everything useful goes to log_file; a pipe nobody reads would block the server.
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#child = child;
    this.#running = true;
    this.#paused = false;
    this.#exited = child.status.finally(() => {
      if (this.#child === child) this.#running = false;
    });
  }

  async #waitReady(logStart: number, signal: AbortSignal | undefined): Promise<void> {
    const timeoutMs = this.#options.readyTimeoutMs ?? 15_000;
    const deadline = Date.now() + timeoutMs;
    let exitStatus: Deno.CommandStatus | undefined;
    this.#exited.then((status) => exitStatus = status, () => {});
    const poll = new Backoff({ firstMs: 10, maxMs: 100 });
    for (;;) {
      if (signal?.aborted) {
        throw new UnavailableError("Cannot start nats-server: aborted", { cause: signal.reason });
      }
      if (exitStatus) {
        throw await this.#failure(
          `the process exited with code ${exitStatus.code} before it was ready`,
          logStart,
          true,
        );
      }
      if (await this.#isReady()) return;
      if (Date.now() >= deadline) {
        throw await this.#failure(`not ready after ${timeoutMs} ms`, logStart, false);
      }
      await delay(poll.next(), { until: this.#exited });
    }
  }

  async #isReady(): Promise<boolean> {
    for (const port of [this.#port, this.#websocketPort]) {
      if (port === undefined) continue;
      try {
        const conn = await Deno.connect({ hostname: this.#host, port });
        conn.close();
      } catch {
        return false;
      }
    }
    // js-enabled-only: a clustered node is healthy before the cluster has a
    // meta leader; waiting for quorum is the cluster's business, not a node's.
    const query = (this.#options.jetstream ?? true) ? "?js-enabled-only=true" : "";
    try {
      const res = await fetch(`${this.monitorUrl}/healthz${query}`, {
        signal: AbortSignal.timeout(2_000),
      });
      const body = await res.text();
      return res.ok && body.includes('"ok"');
    } catch {
      return false;
    }
  }

  async #failure(reason: string, logStart: number, exited: boolean): Promise<UnavailableError> {
    let detail = tail(await readFrom(this.#logFile, logStart), 4096);
    if (!detail.trim() && exited) detail = await this.#configCheck();
    return new UnavailableError(
      `Cannot start nats-server (${this.#binary}, ${this.#configFile}): ${reason}` +
        (detail.trim() ? `\n--- log tail ---\n${detail}` : ""),
    );
  }

  /** A server that dies before opening its log (e.g. a config error) only tells stderr; ask again with `-t`. */
  async #configCheck(): Promise<string> {
    try {
      const out = await new Deno.Command(this.#binary, {
        args: ["-t", "-c", this.#configFile, ...(this.#options.args ?? [])],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      const decoder = new TextDecoder();
      return tail(decoder.decode(out.stdout) + decoder.decode(out.stderr), 4096);
    } catch (err) {
      return String(err);
    }
  }

  #signal(signal: Deno.Signal): void {
    if (!this.#running || !this.#child) return;
    try {
      this.#child.kill(signal);
    } catch {
      // Already exited: the exit promise settles on its own.
    }
  }

  async stop(): Promise<void> {
    if (!this.#running) return void await this.#exited;
    this.#signal("SIGTERM");
    // A stopped process does not handle SIGTERM until continued.
    if (this.#paused) this.#signal("SIGCONT");
    this.#paused = false;
    const timeoutMs = this.#options.stopTimeoutMs ?? 5_000;
    await delay(timeoutMs, { until: this.#exited });
    if (this.#running) await this.kill();
    await this.#exited;
  }

  async kill(): Promise<void> {
    this.#signal("SIGKILL");
    this.#paused = false;
    await this.#exited;
  }

  pause(): void {
    if (!this.#running) {
      throw new TypeError("Cannot pause nats-server: the process is not running");
    }
    this.#signal("SIGSTOP");
    this.#paused = true;
    // Signals land asynchronously; callers expect a stopped process on return.
    this.#awaitState((state) => state === "T" || state === "t");
  }

  resume(): void {
    if (!this.#running) {
      throw new TypeError("Cannot resume nats-server: the process is not running");
    }
    this.#signal("SIGCONT");
    this.#paused = false;
    this.#awaitState((state) => state !== "T" && state !== "t");
  }

  /** Spins (bounded to 1 s) until /proc shows the state wanted; a no-op where /proc is missing. */
  #awaitState(wanted: (state: string) => boolean): void {
    const deadline = Date.now() + 1_000;
    while (Date.now() < deadline) {
      const state = procState(this.pid);
      if (state === undefined || wanted(state)) return;
    }
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start(false);
  }

  async logTail(maxBytes = 4096): Promise<string> {
    return tail(await readFrom(this.#logFile, 0), maxBytes);
  }

  close(): Promise<void> {
    return this.stop();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** The process state letter from `/proc/<pid>/stat` (R, S, T...), or `undefined`. */
function procState(pid: number): string | undefined {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    // The command name is parenthesised and may contain spaces; the state follows it.
    const end = stat.lastIndexOf(")");
    return stat.slice(end + 2, end + 3) || undefined;
  } catch {
    return undefined;
  }
}
