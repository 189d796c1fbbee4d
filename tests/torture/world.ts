/**
 * The servers one checker run shares across its schedules: a single
 * nats-server with a cuttable proxy in front of it (the cache connects
 * through the proxy, raw writers straight to the server), and, started only
 * when a regional schedule needs it, a three-node hub with one leaf region
 * whose edges also connect through a proxy. Faults act on these; every
 * schedule heals what it broke before the next one starts.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import { connect } from "@nats-io/transport-node";
import { startProxy } from "../_proxy.ts";
import { jetstreamManager } from "@nats-io/jetstream";
import { kvStreamName } from "../../src/kv_layout.ts";
import {
  type ClusterHandle,
  connectTo,
  HUB_DOMAIN,
  LEAF_PASSWORDS,
  type RegionsHandle,
  type ServerHandle,
  startCluster,
  startRegions,
  startServer,
  waitFor,
} from "../_setup.ts";
import type { Proxy } from "../_proxy.ts";
import { replicaViews } from "../_chaos.ts";
import type { FaultKind } from "./schedule.ts";
import type { ReplicaHolds } from "./replica_defect.ts";
import type { NatsTransport } from "../../src/connect.ts";

/** Where one schedule's cache and writers connect. */
export interface Site {
  /** URLs the cache connects to (a proxy, or every node of a cluster). */
  readonly cacheUrl: string | string[];
  /** Replicas of the schedule's bucket. */
  readonly replicas: number;
  /** Connection options of the cache (auth on a leaf). */
  readonly cacheConnect: Record<string, unknown>;
  /** Raw connection that writes (the server, or the hub) and reads KV's history. */
  readonly writer: NatsConnection;
  /** Raw connection to where the cache reads (the server, or the leaf). */
  readonly reader: NatsConnection;
  /** The hub's domain on a regional site. */
  readonly hubDomain?: string;
  /** The server version of the writer's server. */
  readonly version: string;
  /** Starts a fault (`bucket`: the schedule's, for a fault on its stream leader). */
  fault(kind: FaultKind, bucket: string): Promise<void>;
  /** Heals every active fault; resolves once the servers answer again. */
  heal(): Promise<void>;
  /** The faults active now. */
  readonly active: ReadonlySet<FaultKind>;
  /**
   * A clustered site: what each node's replica of `bucket`'s stream holds
   * (`name: first … last … msgs … deleted …`, from the node's own `/jsz`).
   */
  replicaStates?(bucket: string): Promise<string[]>;
  /**
   * A clustered site: what each node's own replica of `bucket`'s stream holds
   * at `seqs` (direct gets over a connection to that node alone: 2.9
   * followers answer them from their own replica).
   */
  replicaHolds?(bucket: string, seqs: number[]): Promise<ReplicaHolds[]>;
}

class SingleSite implements Site {
  readonly replicas = 1;
  readonly #server: ServerHandle;
  readonly #proxy: Proxy;
  readonly writer: NatsConnection;
  readonly cacheConnect = {};
  readonly active = new Set<FaultKind>();
  constructor(server: ServerHandle, proxy: Proxy, writer: NatsConnection) {
    this.#server = server;
    this.#proxy = proxy;
    this.writer = writer;
  }
  get reader(): NatsConnection {
    return this.writer;
  }
  get cacheUrl(): string {
    return this.#proxy.url;
  }
  get version(): string {
    return this.writer.info?.version ?? "0.0.0";
  }
  async fault(kind: FaultKind): Promise<void> {
    if (this.active.has(kind)) return;
    switch (kind) {
      case "kill":
        if (this.active.has("pause")) return; // a stopped process is killed by heal's resume
        await this.#server.kill();
        break;
      case "pause":
        if (this.active.has("kill")) return;
        this.#server.pause();
        break;
      case "cut":
        this.#proxy.cut();
        break;
      case "delay":
        this.#proxy.delay(200);
        break;
      default:
        return; // purge, recreate: done by the runner; wan: not here
    }
    this.active.add(kind);
  }
  async heal(): Promise<void> {
    // A paused server that is no longer running (it ended while stopped: seen
    // once in CI on a loaded machine) is started again, as after a kill.
    if (this.active.has("pause") && !this.#server.running) this.active.add("kill");
    else if (this.active.has("pause")) this.#server.resume();
    if (this.active.has("kill")) await this.#server.restart();
    this.#proxy.restore();
    this.#proxy.delay(0);
    const hadServerFault = this.active.has("kill") || this.active.has("pause");
    this.active.clear();
    if (hadServerFault) await jetStreamAnswers(this.writer);
  }
  async close(): Promise<void> {
    // A stopped process ignores SIGTERM.
    if (this.active.has("pause") && this.#server.running) this.#server.resume();
    this.active.clear();
    await this.writer.close().catch(() => {});
    await this.#proxy.close();
    await this.#server.stop();
  }
}

class RegionalSite implements Site {
  readonly replicas = 1;
  readonly #topo: RegionsHandle;
  readonly #proxy: Proxy;
  readonly writer: NatsConnection;
  readonly reader: NatsConnection;
  readonly hubDomain = HUB_DOMAIN;
  readonly cacheConnect = { user: "admin", pass: LEAF_PASSWORDS.admin };
  readonly active = new Set<FaultKind>();
  constructor(topo: RegionsHandle, proxy: Proxy, writer: NatsConnection, reader: NatsConnection) {
    this.#topo = topo;
    this.#proxy = proxy;
    this.writer = writer;
    this.reader = reader;
  }
  get cacheUrl(): string {
    return this.#proxy.url;
  }
  get version(): string {
    return this.writer.info?.version ?? "0.0.0";
  }
  fault(kind: FaultKind): Promise<void> {
    if (this.active.has(kind)) return Promise.resolve();
    switch (kind) {
      case "wan":
        this.#topo.regions[0]!.cut();
        break;
      case "cut":
        this.#proxy.cut();
        break;
      case "delay":
        this.#proxy.delay(200);
        break;
      default:
        return Promise.resolve();
    }
    this.active.add(kind);
    return Promise.resolve();
  }
  async heal(): Promise<void> {
    const wan = this.active.has("wan");
    this.#topo.regions[0]!.heal();
    this.#proxy.restore();
    this.#proxy.delay(0);
    this.active.clear();
    if (wan) {
      await waitFor(async () => {
        const res = await fetch(
          `http://127.0.0.1:${this.#topo.regions[0]!.leaf.monitorPort}/leafz`,
          { signal: AbortSignal.timeout(2_000) },
        ).then((r) => r.json()).catch(() => ({}));
        return (res.leafnodes ?? 0) > 0;
      }, { timeoutMs: 60_000, message: "the leaf reconnects to the hub after a WAN heal" });
    }
  }
  async close(): Promise<void> {
    await this.writer.close().catch(() => {});
    await this.reader.close().catch(() => {});
    await this.#proxy.close();
    await this.#topo.stop();
  }
}

/**
 * A three-node cluster: the schedule's bucket is R3, the cache connects to
 * every node (no proxy), and the faults hit the bucket's stream leader:
 * `leader` kills it with SIGKILL (restarted at heal), `pause` stops it with
 * SIGSTOP (continued at heal).
 */
/** Direct gets per sequence and node when asking what the replicas hold (see replicaHolds). */
const DIRECT_GET_ASKS = 4;

class ClusterSite implements Site {
  readonly replicas = 3;
  readonly #cluster: ClusterHandle;
  readonly writer: NatsConnection;
  readonly cacheConnect = {};
  readonly active = new Set<FaultKind>();
  /** The node a fault stopped, and the bucket whose leader it was. */
  #down: ServerHandle | undefined;
  #bucket = "";
  constructor(cluster: ClusterHandle, writer: NatsConnection) {
    this.#cluster = cluster;
    this.writer = writer;
  }
  get reader(): NatsConnection {
    return this.writer;
  }
  get cacheUrl(): string[] {
    return this.#cluster.urls;
  }
  get version(): string {
    return this.writer.info?.version ?? "0.0.0";
  }
  async fault(kind: FaultKind, bucket: string): Promise<void> {
    if (this.#down !== undefined || (kind !== "leader" && kind !== "pause")) return;
    const leader = await this.#cluster.leaderOf(kvStreamName(bucket)).catch(() => undefined);
    if (leader === undefined) return;
    if (kind === "leader") await leader.kill();
    else leader.pause();
    this.#down = leader;
    this.#bucket = bucket;
    this.active.add(kind);
  }
  async heal(): Promise<void> {
    const down = this.#down;
    this.#down = undefined;
    if (down !== undefined) {
      if (this.active.has("pause") && down.running) down.resume();
      else await down.restart();
    }
    this.active.clear();
    if (down === undefined) return;
    await jetStreamAnswers(this.writer);
    // The stream has a leader again and every replica (the one back too) is current.
    const jsm = await jetstreamManager(this.writer, { timeout: 2_000, checkAPI: false });
    await waitFor(async () => {
      const info = await jsm.streams.info(kvStreamName(this.#bucket)).catch(() => undefined);
      const c = info?.cluster;
      return c?.leader !== undefined && (c.replicas ?? []).length === 2 &&
        (c.replicas ?? []).every((r) => r.current && !r.offline);
    }, {
      timeoutMs: 60_000,
      message: `the stream of ${this.#bucket} has a leader and 3 current replicas`,
    })
      // A bucket the schedule deleted meanwhile (recreate) has a new stream: not waited for.
      .catch(() => {});
  }
  async replicaStates(bucket: string): Promise<string[]> {
    const views = await replicaViews(
      this.#cluster.servers.map((s) => ({
        name: s.name,
        tcpUrl: s.tcpUrl,
        monitorPort: s.monitorPort,
      })),
      kvStreamName(bucket),
      [],
    );
    return views.map((v) => v.replace(/; direct gets .*$/, ""));
  }
  async replicaHolds(bucket: string, seqs: number[]): Promise<ReplicaHolds[]> {
    const out: ReplicaHolds[] = [];
    for (const node of this.#cluster.servers) {
      const held: ReplicaHolds["held"] = new Map();
      let nc: NatsConnection | undefined;
      try {
        nc = await connect({ servers: node.tcpUrl, reconnect: false, timeout: 5_000 });
        const jsm = await jetstreamManager(nc, { timeout: 5_000, checkAPI: false });
        // A node may hand a direct get on to another replica (seen on 2.9.10):
        // asked a few times, the node's own answer is among them.
        for (const seq of seqs) {
          for (let attempt = 0; attempt < DIRECT_GET_ASKS; attempt++) {
            const m = await jsm.direct.getMessage(kvStreamName(bucket), { seq }).catch(() => null);
            if (!m) continue;
            const key = m.subject.split(".").slice(2).join(".");
            let id: string | undefined;
            try {
              const v = m.json<{ w?: unknown }>();
              if (typeof v?.w === "string") id = v.w;
            } catch { /* not one of the checker's values */ }
            const at = held.get(seq) ?? [];
            if (!at.some((h) => h.key === key && h.id === id)) at.push({ key, id });
            held.set(seq, at);
          }
        }
      } catch {
        /* a node that does not answer holds nothing we can show */
      } finally {
        await nc?.close().catch(() => {});
      }
      out.push({ name: node.name, held });
    }
    return out;
  }
  async close(): Promise<void> {
    if (this.#down?.running) this.#down.resume();
    this.active.clear();
    await this.writer.close().catch(() => {});
    await this.#cluster.stop();
  }
}

/** A server's TCP client port, whatever transport the suite runs over. */
function tcpPort(server: ServerHandle): number {
  return Number(new URL(server.tcpUrl).port);
}

/** Waits until JetStream on `nc`'s server answers an API request (after a restart). */
export async function jetStreamAnswers(nc: NatsConnection): Promise<void> {
  await waitFor(async () => {
    try {
      await nc.request("$JS.API.INFO", undefined, { timeout: 1_000 });
      return true;
    } catch {
      return false;
    }
  }, { timeoutMs: 60_000, message: "JetStream answers after a restart" });
}

/**
 * The shared servers of a run; each site starts on first use. nats.js has one
 * transport per process (src/connect.ts), so the sites of one transport are
 * stopped before a site of the other starts: a run that mixes WebSocket and
 * TCP schedules restarts its servers when it switches.
 */
export class World {
  #single: Promise<SingleSite> | undefined;
  #ws: Promise<SingleSite> | undefined;
  #regional: Promise<RegionalSite> | undefined;
  #cluster: Promise<ClusterSite> | undefined;

  /** The single-server site; over `transport`, every connection of the site. */
  async single(transport: NatsTransport = "tcp"): Promise<Site> {
    await this.#use(transport);
    if (transport === "websocket") {
      return await (this.#ws ??= (async () => {
        const server = await startServer({ websocket: true });
        const proxy = startProxy(server.wsPort!, "websocket");
        const writer = await connectTo(server.wsUrl!, { timeout: 5_000 });
        return new SingleSite(server, proxy, writer);
      })());
    }
    return await (this.#single ??= (async () => {
      const server = await startServer();
      const proxy = startProxy(tcpPort(server), "tcp");
      const writer = await connectTo(server.tcpUrl, { timeout: 5_000 });
      return new SingleSite(server, proxy, writer);
    })());
  }

  /** Stops the sites of the other transport than `transport`. */
  async #use(transport: NatsTransport): Promise<void> {
    const other = transport === "tcp" ? [this.#ws] : [this.#single, this.#regional, this.#cluster];
    if (transport === "tcp") this.#ws = undefined;
    else this.#single = this.#regional = this.#cluster = undefined;
    for (const s of other) if (s) await (await s.catch(() => undefined))?.close();
  }

  /** The cluster site (three nodes, R3 buckets). */
  async cluster(): Promise<Site> {
    await this.#use("tcp");
    return await (this.#cluster ??= (async () => {
      const cluster = await startCluster({ size: 3 });
      const writer = await connectTo(cluster.servers.map((s) => s.tcpUrl).join(","), {
        timeout: 5_000,
      });
      return new ClusterSite(cluster, writer);
    })());
  }

  /** The regional site (a three-node hub, leaf "eu"). */
  async regional(): Promise<Site> {
    await this.#use("tcp");
    return await (this.#regional ??= (async () => {
      const topo = await startRegions({ regions: ["eu"] });
      const leaf = topo.regions[0]!;
      const proxy = startProxy(tcpPort(leaf.leaf), "tcp");
      const writer = await connectTo(topo.hub.servers.map((s) => s.tcpUrl).join(","));
      const reader = await connectTo(leaf.leaf.tcpUrl, {
        user: "admin",
        pass: LEAF_PASSWORDS.admin,
      });
      return new RegionalSite(topo, proxy, writer, reader);
    })());
  }

  /** Stops every server started. */
  async close(): Promise<void> {
    const sites = [this.#single, this.#ws, this.#regional, this.#cluster].filter((s) =>
      s !== undefined
    );
    for (const s of sites) await (await s.catch(() => undefined))?.close();
  }
}
