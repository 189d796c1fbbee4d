/**
 * A real JetStream cluster for tests and benchmarks: `size` nodes on free
 * loopback ports, ready once a meta leader sees every peer, and which node
 * leads a stream according to `/jsz`.
 *
 * @module
 */
import { freePort } from "../host/free_port.ts";
import { startNatsServer } from "../host/nats_server.ts";
import { UnavailableError } from "../src/errors.ts";
import { suiteTransport } from "./transport.ts";
import { type ServerHandle, TestServer } from "./server.ts";
import { live, removeDir, tempDirs } from "./server_cleanup.ts";
import { waitFor } from "./wait_for.ts";

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
      const websocket = opts.websocket ?? suiteTransport() === "websocket";
      const launched = await launchCluster(root, size, opts, attempt, websocket);
      if ("cluster" in launched) return launched.cluster;
      // A route port picked free may be taken before its node binds it; the
      // other nodes already know it, so the whole cluster starts over on
      // fresh ports. nats-server tells that only in its log, so every node
      // that did not come up (an UnavailableError) gets the same retry.
      if (attempt >= 3 || !(launched.failed instanceof UnavailableError)) throw launched.failed;
    }
  } catch (err) {
    await removeDir(root);
    throw err;
  }
}

/** A started cluster, or why one of its nodes did not start (every node is stopped then). */
type Launch = { cluster: ClusterHandle } | { failed: unknown };

async function launchCluster(
  root: string,
  size: number,
  opts: StartClusterOptions,
  attempt: number,
  websocket: boolean,
): Promise<Launch> {
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
    return { failed: (failed as PromiseRejectedResult).reason };
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
  return { cluster };
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
