/**
 * Real `nats-server` processes for tests and benchmarks: single servers and
 * JetStream clusters on free loopback ports in temporary directories, a hub
 * with regional leaf nodes behind cuttable proxies, `connectTo()`, and
 * `waitFor()` (wait for a condition, without sleeps). Scripts (the bench
 * harness) import this; `tests/_setup.ts` re-exports it.
 *
 * Transport: with `KVEDGE_TEST_TRANSPORT=websocket` every server also opens a
 * WebSocket port and its `url` (and `port`) are the WebSocket ones, so an
 * unchanged test runs over WebSocket; `tests/cache/websocket_suite_test.ts` runs
 * chosen test files that way. `wsUrl` and `tcpUrl` name one transport
 * explicitly.
 *
 * Every process started here is tracked; if the caller fails before stopping
 * its servers, an `unload` handler kills them by PID and removes their
 * temporary directories when the module's runtime ends.
 *
 * @module
 */

import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { connectNats, type NatsTransport } from "../src/connect.ts";
import { freePort, type NatsServerProcess, startNatsServer } from "../host/nats_server.ts";
import { guardSocketResets } from "../src/socket_guard.ts";
import { type Proxy, startProxy } from "./_proxy.ts";
import { suiteTransport } from "./_transport.ts";

export { suiteTransport };

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

/** A JetStream cluster started for a test. */
export interface ClusterHandle extends AsyncDisposable {
  /** The nodes, named `n1`..`n<size>`. */
  readonly servers: ServerHandle[];
  /** Comma-separated client URLs of all nodes. */
  readonly url: string;
  /** Client URLs of all nodes. */
  readonly urls: string[];
  /** The node currently leading `stream` according to `/jsz`, if any node knows one. */
  leaderOf(stream: string): Promise<ServerHandle | undefined>;
  /** Stops every node and removes the cluster's temporary directory. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startCluster}. */
export interface StartClusterOptions {
  /** Number of nodes. Default `3`. */
  size?: number;
  /** Extra config appended to every node's config. */
  config?: string;
  /** Open a WebSocket port on every node. Default: only when the suite runs over WebSocket. */
  websocket?: boolean;
  /** Extra config for one node, from its name and store directory (after `config`). */
  nodeConfig?: (node: { name: string; storeDir: string }) => string;
}

/** Options of {@linkcode waitFor}. */
export interface WaitForOptions {
  /** Deadline in milliseconds. Default `10000`. */
  timeoutMs?: number;
  /** Pause between attempts in milliseconds. Default `25`. */
  intervalMs?: number;
  /** What was awaited; starts the error message on timeout. */
  message?: string;
}

const live = new Set<NatsServerProcess>();
const tempDirs = new Set<string>();

// Safety net for tests that fail before cleaning up: the module's runtime
// ends, and no nats-server or temp dir may outlive it.
globalThis.addEventListener("unload", () => {
  for (const server of live) {
    if (!server.running) continue;
    try {
      Deno.kill(server.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const dir of tempDirs) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch {
      // Already removed.
    }
  }
});

// Tests and benchmarks kill servers on purpose: the same guard the library installs.
guardSocketResets();

class TestServer implements ServerHandle {
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
 * Starts a JetStream cluster of `size` nodes (`n1`..) on free loopback ports
 * and waits until it has a meta leader that sees every peer, so R3 buckets can
 * be created at once.
 *
 * @example
 * ```ts ignore
 * await using cluster = await startCluster();
 * const nc = await connectTo(cluster.url);
 * await nc.close();
 * ```
 */
export async function startCluster(opts: StartClusterOptions = {}): Promise<ClusterHandle> {
  const size = opts.size ?? 3;
  if (!Number.isInteger(size) || size < 1) {
    throw new RangeError(`Cannot start cluster: "size" must be a positive integer, got ${size}`);
  }
  const root = await Deno.makeTempDir({ prefix: "kvedge_cluster_" });
  tempDirs.add(root);
  try {
    for (let attempt = 1;; attempt++) {
      try {
        const websocket = opts.websocket ?? suiteTransport() === "websocket";
        return await launchCluster(root, size, opts, attempt, websocket);
      } catch (err) {
        // A route port picked free may be taken before its node binds it;
        // the other nodes already know it, so the whole cluster starts over.
        if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;
      }
    }
  } catch (err) {
    await removeDir(root);
    throw err;
  }
}

async function launchCluster(
  root: string,
  size: number,
  opts: StartClusterOptions,
  attempt: number,
  websocket: boolean,
): Promise<ClusterHandle> {
  const names = Array.from({ length: size }, (_, i) => `n${i + 1}`);
  const clusterPorts = names.map(() => freePort());
  const routes = clusterPorts.map((port) => `nats-route://127.0.0.1:${port}`);
  // All nodes start together: none is ready for clients before it can reach the others.
  const started = await Promise.allSettled(names.map((name, i) => {
    const storeDir = `${root}/a${attempt}/${name}`;
    const own = opts.nodeConfig?.({ name, storeDir });
    return startNatsServer({
      storeDir,
      serverName: name,
      clusterName: "kvedge",
      clusterPort: clusterPorts[i],
      routes,
      configText: [opts.config, own].filter(Boolean).join("\n") || undefined,
      ...(websocket ? { websocketPort: 0 } : {}),
    });
  }));
  const processes = started.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    await Promise.all(processes.map((p) => p.kill()));
    throw (failed as PromiseRejectedResult).reason;
  }
  const cluster = new TestCluster(root, processes.map((p) => new TestServer(p, undefined)));
  try {
    await waitFor(() => cluster.metaReady(), {
      timeoutMs: 30_000,
      message: "cluster has a JetStream meta leader that sees every peer",
    });
  } catch (err) {
    await Promise.all(cluster.servers.map((s) => s.kill()));
    for (const p of processes) live.delete(p);
    throw err;
  }
  return cluster;
}

interface JszAccount {
  stream_detail?: { name: string; cluster?: { leader?: string } }[];
}
interface Jsz {
  meta_cluster?: {
    leader?: string;
    cluster_size?: number;
    replicas?: { name: string; current: boolean }[];
  };
  account_details?: JszAccount[];
}

class TestCluster implements ClusterHandle {
  readonly servers: TestServer[];
  readonly #root: string;
  #stopped = false;

  constructor(root: string, servers: TestServer[]) {
    this.#root = root;
    this.servers = servers;
  }

  get urls(): string[] {
    return this.servers.map((s) => s.url);
  }

  get url(): string {
    return this.urls.join(",");
  }

  async metaReady(): Promise<boolean> {
    const reports = await Promise.all(this.servers.map((s) => jsz(s, "")));
    const leaders = new Set(reports.map((r) => r?.meta_cluster?.leader));
    if (leaders.size !== 1) return false;
    const [leaderName] = leaders;
    const leader = reports[this.servers.findIndex((s) => s.name === leaderName)];
    if (!leader?.meta_cluster) return false;
    const replicas = leader.meta_cluster.replicas ?? [];
    return replicas.length === this.servers.length - 1 && replicas.every((r) => r.current);
  }

  async leaderOf(stream: string): Promise<ServerHandle | undefined> {
    const reachable = this.servers.filter((s) => s.running && !s.paused);
    const reports = await Promise.all(reachable.map((s) => jsz(s, "?accounts=true&streams=true")));
    const votes = new Map<string, number>();
    reachable.forEach((server, i) => {
      for (const account of reports[i]?.account_details ?? []) {
        for (const detail of account.stream_detail ?? []) {
          const leader = detail.name === stream ? detail.cluster?.leader : undefined;
          if (!leader) continue;
          // A node's claim about itself is the one that counts when views differ.
          votes.set(leader, (votes.get(leader) ?? 0) + (leader === server.name ? 1.5 : 1));
        }
      }
    });
    let best: string | undefined;
    for (const [name, count] of votes) {
      if (best === undefined || count > votes.get(best)!) best = name;
    }
    return reachable.find((s) => s.name === best);
  }

  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    await Promise.all(this.servers.map((s) => s.stop()));
    await removeDir(this.#root);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

async function jsz(server: ServerHandle, query: string): Promise<Jsz | undefined> {
  try {
    const res = await fetch(`http://127.0.0.1:${server.monitorPort}/jsz${query}`, {
      signal: AbortSignal.timeout(2_000),
    });
    if (!res.ok) {
      await res.body?.cancel();
      return undefined;
    }
    return await res.json() as Jsz;
  } catch {
    return undefined;
  }
}

async function removeDir(dir: string): Promise<void> {
  tempDirs.delete(dir);
  try {
    await Deno.remove(dir, { recursive: true });
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}

/**
 * A bucket name no other test uses: `<prefix>_<8 hex digits>`.
 *
 * @example
 * ```ts ignore
 * const bucket = uniqueBucket(); // "t_ab12cd34"
 * ```

/** `T` without its falsy members: what {@linkcode waitFor} can resolve with. */
export type Truthy<T> = Exclude<T, false | 0 | 0n | "" | null | undefined>;

/**
 * Calls `fn` until it returns a truthy value and resolves with that value.
 * Throws from `fn` count as "not yet". Rejects once `timeoutMs` has passed
 * (even if a call hangs), with `message` and the last error in the message.
 *
 * @example
 * ```ts ignore
 * const entry = await waitFor(() => kv.get("a"), { timeoutMs: 5_000, message: "key a appears" });
 * ```
 */
export async function waitFor<T>(
  fn: () => T | Promise<T>,
  opts: WaitForOptions = {},
): Promise<Truthy<T>> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const intervalMs = opts.intervalMs ?? 25;
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    const remaining = deadline - Date.now();
    if (remaining <= 0) break;
    try {
      const result = await withDeadline(Promise.resolve().then(fn), remaining);
      if (!result.done) break;
      if (result.value) return result.value as Truthy<T>;
      lastError = undefined;
    } catch (err) {
      lastError = err;
    }
    const pause = Math.min(intervalMs, deadline - Date.now());
    if (pause > 0) await new Promise((resolve) => setTimeout(resolve, pause));
  }
  const what = opts.message ?? "condition";
  const last = lastError === undefined
    ? ""
    : `; last error: ${lastError instanceof Error ? lastError.message : String(lastError)}`;
  throw new Error(`waitFor timed out after ${timeoutMs} ms: ${what}${last}`, {
    cause: lastError,
  });
}

/** Settles with the promise's value, or `{ done: false }` once `ms` passed. */
function withDeadline<T>(
  promise: Promise<T>,
  ms: number,
): Promise<{ done: true; value: T } | { done: false }> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<{ done: false }>((resolve) => {
    timer = setTimeout(() => resolve({ done: false }), ms);
  });
  return Promise.race([
    promise.then((value) => ({ done: true as const, value })),
    timeout,
  ]).finally(() => clearTimeout(timer));
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

/** The test-only passwords whose bcrypt hashes are in docs/topologies/leaf.conf. */
export const LEAF_PASSWORDS = {
  admin: "kvedge-admin-test-only",
  edge: "kvedge-edge-test-only",
} as const;

/** The hub's JetStream domain in docs/topologies/hub.conf. */
export const HUB_DOMAIN = "hub";

/**
 * A committed topology config (`docs/topologies/<file>`) verbatim, minus its
 * host-specific section, which is replaced by `vars` (nats-server variables
 * the rest of the file uses).
 */
export function topologyConfig(
  file: "hub.conf" | "leaf.conf",
  vars: Record<string, string | number | string[]>,
): string {
  const text = Deno.readTextFileSync(new URL(`../docs/topologies/${file}`, import.meta.url));
  const host = /# >>> host-specific[\s\S]*?# <<< host-specific\n/;
  if (!host.test(text)) throw new Error(`docs/topologies/${file} lost its host-specific markers`);
  const defs = Object.entries(vars).map(([k, v]) =>
    `${k}: ${
      Array.isArray(v) ? `[${v.map((u) => JSON.stringify(u)).join(", ")}]` : JSON.stringify(v)
    }`
  );
  return text.replace(host, defs.join("\n") + "\n");
}

/** One region: a leaf node linked to every hub node through a cuttable proxy. */
export interface RegionHandle {
  /** The region's name, also its leaf node's JetStream domain. */
  readonly name: string;
  /** The leaf node (edges connect here). */
  readonly leaf: ServerHandle;
  /** The leaf's client URL. */
  readonly url: string;
  /** Cuts the WAN: every leaf–hub connection is reset and new ones are refused. */
  cut(): void;
  /** Heals the WAN: the leaf may connect to the hub again. */
  heal(): void;
  /** Slows the WAN: every leaf–hub chunk is delayed by `ms` each way (0: none). */
  delay(ms: number): void;
  /** A raw connection to the leaf as `admin` (full rights), or as `user`. */
  connect(
    user?: keyof typeof LEAF_PASSWORDS,
    opts?: NodeConnectionOptions,
  ): Promise<NatsConnection>;
}

/** A hub cluster and its regions. */
export interface RegionsHandle extends AsyncDisposable {
  /** The hub cluster (domain `hub`). */
  readonly hub: ClusterHandle;
  /** The regions, in the order asked for. */
  readonly regions: RegionHandle[];
  /** Stops every leaf, proxy and hub node. Idempotent. */
  stop(): Promise<void>;
}

/** Options of {@linkcode startRegions}. */
export interface StartRegionsOptions {
  /** Region names (leaf JetStream domains). Default `["eu", "us"]`. */
  regions?: string[];
  /** Hub nodes. Default `3`. */
  hubSize?: number;
}

/**
 * Starts the "regions over leaf nodes" topology from the committed configs:
 * an R3 hub cluster in domain `hub` (docs/topologies/hub.conf) and one leaf
 * node per region (docs/topologies/leaf.conf), each leaf linked to every hub
 * node through a {@linkcode startProxy} proxy (the WAN link a test can cut).
 * Resolves once every leaf is connected to the hub.
 *
 * @example
 * ```ts ignore
 * await using topo = await startRegions();
 * const [eu] = topo.regions;
 * eu.cut();
 * ```
 */
export async function startRegions(opts: StartRegionsOptions = {}): Promise<RegionsHandle> {
  const names = opts.regions ?? ["eu", "us"];
  const leafPorts = new Map<string, number>();
  const hub = await startCluster({
    size: opts.hubSize ?? 3,
    nodeConfig: ({ name, storeDir }) => {
      const port = freePort();
      leafPorts.set(name, port);
      // What the node tells leaf nodes to dial: nothing listens there, so
      // every region reaches the hub through its own proxy only.
      const advertise = `127.0.0.1:${freePort()}`;
      return topologyConfig("hub.conf", {
        NODE_STORE: storeDir,
        NODE_LEAF_PORT: port,
        NODE_LEAF_ADVERTISE: advertise,
      });
    },
  });
  const proxies: Proxy[] = [];
  const regions: RegionHandle[] = [];
  const stop = async () => {
    await Promise.all(regions.map((r) => r.leaf.stop()));
    await Promise.all(proxies.map((p) => p.close()));
    await hub.stop();
  };
  try {
    for (const name of names) {
      const links = hub.servers.map((s) => startProxy(leafPorts.get(s.name)!));
      proxies.push(...links);
      const leaf = await startServer({
        config: (storeDir) =>
          topologyConfig("leaf.conf", {
            NODE_STORE: storeDir,
            REGION_NAME: name,
            HUB_LEAF_URLS: links.map((l) => `nats-leaf://127.0.0.1:${l.port}`),
          }),
      });
      const region: RegionHandle = {
        name,
        leaf,
        url: leaf.url,
        cut: () => links.forEach((l) => l.cut()),
        heal: () => links.forEach((l) => l.restore()),
        delay: (ms) => links.forEach((l) => l.delay(ms)),
        connect: (user = "admin", o = {}) =>
          connectTo(leaf, {
            user,
            pass: LEAF_PASSWORDS[user],
            ...(user === "admin" ? {} : { inboxPrefix: `_INBOX_${user}` }),
            ...o,
          }),
      };
      regions.push(region);
      await waitFor(() => leafConnected(leaf), {
        timeoutMs: 30_000,
        message: `leaf ${name} connects to the hub`,
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  let stopped: Promise<void> | undefined;
  return {
    hub,
    regions,
    stop: () => stopped ??= stop(),
    [Symbol.asyncDispose]: () => stopped ??= stop(),
  };
}

/** Whether a leaf node has a live leafnode connection (its `/leafz`). */
export async function leafConnected(leaf: ServerHandle): Promise<boolean> {
  try {
    const res = await fetch(`http://127.0.0.1:${leaf.monitorPort}/leafz`, {
      signal: AbortSignal.timeout(2_000),
    });
    const body = await res.json() as { leafnodes?: number };
    return (body.leafnodes ?? 0) > 0;
  } catch {
    return false;
  }
}
