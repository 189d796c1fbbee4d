/**
 * The "regions over leaf nodes" topology for tests and benchmarks: a hub
 * cluster and one leaf node per region from the committed configs in
 * `docs/topologies/`, each WAN link through a cuttable proxy.
 *
 * @module
 */
import type { NatsConnection, NodeConnectionOptions } from "@nats-io/transport-node";
import { freePort } from "../host/free_port.ts";
import { type Proxy, startProxy } from "./proxy.ts";
import { connectTo, type ServerHandle, startServer } from "./server.ts";
import { type ClusterHandle, startCluster } from "./cluster.ts";
import { waitFor } from "./wait_for.ts";

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
