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
import { startProxy } from "../_proxy.ts";
import {
  connectTo,
  HUB_DOMAIN,
  LEAF_PASSWORDS,
  type RegionsHandle,
  type ServerHandle,
  startRegions,
  startServer,
  waitFor,
} from "../_setup.ts";
import type { Proxy } from "../_proxy.ts";
import type { FaultKind } from "./schedule.ts";

/** Where one schedule's cache and writers connect. */
export interface Site {
  /** URL the cache connects to (a proxy). */
  readonly cacheUrl: string;
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
  /** Starts a fault. */
  fault(kind: FaultKind): Promise<void>;
  /** Heals every active fault; resolves once the servers answer again. */
  heal(): Promise<void>;
  /** The faults active now. */
  readonly active: ReadonlySet<FaultKind>;
}

class SingleSite implements Site {
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

/** The shared servers of a run; each site starts on first use. */
export class World {
  #single: Promise<SingleSite> | undefined;
  #regional: Promise<RegionalSite> | undefined;

  /** The single-server site. */
  single(): Promise<Site> {
    return this.#single ??= (async () => {
      const server = await startServer();
      const proxy = startProxy(tcpPort(server), "tcp");
      const writer = await connectTo(server.tcpUrl, { timeout: 5_000 });
      return new SingleSite(server, proxy, writer);
    })();
  }

  /** The regional site (a three-node hub, leaf "eu"). */
  regional(): Promise<Site> {
    return this.#regional ??= (async () => {
      const topo = await startRegions({ regions: ["eu"] });
      const leaf = topo.regions[0]!;
      const proxy = startProxy(tcpPort(leaf.leaf), "tcp");
      const writer = await connectTo(topo.hub.servers.map((s) => s.tcpUrl).join(","));
      const reader = await connectTo(leaf.leaf.tcpUrl, {
        user: "admin",
        pass: LEAF_PASSWORDS.admin,
      });
      return new RegionalSite(topo, proxy, writer, reader);
    })();
  }

  /** Stops every server started. */
  async close(): Promise<void> {
    const sites = [this.#single, this.#regional].filter((s) => s !== undefined);
    for (const s of sites) await (await s.catch(() => undefined))?.close();
  }
}
