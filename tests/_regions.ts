/**
 * Shared pieces of the regional tests: a hub bucket mirrored into every
 * region, regional edges, and the convergence check against the hub.
 *
 * @module
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Cache, type CacheOptions, openCache } from "../mod.ts";
import { createRegionalMirror } from "../src/region_mirror.ts";
import { createReplicatedBucket } from "./_chaos.ts";
import {
  connectTo,
  HUB_DOMAIN,
  LEAF_PASSWORDS,
  type RegionHandle,
  type RegionsHandle,
  uniqueBucket,
  waitFor,
} from "./_setup.ts";

/** A bucket on the hub with a mirror in every region. */
export interface RegionalBucket {
  readonly name: string;
  /** The hub's bucket, through a raw connection to the hub. */
  readonly hubKv: KV;
}

/** Creates an R3 bucket on the hub and its mirror in every region; waits until each mirror hears the hub. */
export async function regionalBucket(
  topo: RegionsHandle,
  hubNc: NatsConnection,
  name = uniqueBucket("r"),
  opts: { ttlMs?: number; history?: number } = {},
): Promise<RegionalBucket> {
  await createReplicatedBucket(hubNc, name, {
    replicas: 3,
    history: opts.history ?? 5,
    ...(opts.ttlMs ? { ttl: opts.ttlMs } : {}),
  });
  // The truth the tests judge edges by is what the stream leader holds. A
  // direct get may be answered by any replica, and on 2.9.10 a stream leader
  // killed under load came back holding a message past the new leader's last
  // sequence (unacknowledged, never replicated): a direct get answered 429
  // while the leader, the mirror and the edges were all at 428.
  const hubKv = await new Kvm(jetstream(hubNc, { timeout: 10_000 })).open(name, {
    allow_direct: false,
  });
  for (const region of topo.regions) {
    const nc = await region.connect();
    try {
      // Right after a WAN heal the hub's domain may not answer yet: retry.
      await waitFor(() => createRegionalMirror(nc, name, { hubDomain: HUB_DOMAIN }), {
        timeoutMs: 30_000,
        message: `mirror of ${name} created in ${region.name}`,
      });
      const jsm = await jetstreamManager(nc);
      await waitFor(async () => {
        const m = (await jsm.streams.info(`KV_${name}`)).mirror;
        return m !== undefined && m.active >= 0 && m.active < 3e9;
      }, { timeoutMs: 30_000, message: `mirror of ${name} in ${region.name} hears the hub` });
    } finally {
      await nc.close();
    }
  }
  return { name, hubKv };
}

/** Opens a regional edge on `region`'s leaf as admin. */
export function regionalEdge<T = unknown>(
  region: RegionHandle,
  bucket: string,
  extra: Partial<CacheOptions<T>> = {},
): Promise<Cache<T>> {
  return openCache<T>({
    servers: region.url,
    connectOptions: { user: "admin", pass: LEAF_PASSWORDS.admin, reconnectTimeWait: 100 },
    bucket,
    region: { hubDomain: HUB_DOMAIN, checkMs: 200 },
    local: { maxItems: 10_000 },
    ...extra,
  } as CacheOptions<T>);
}

/** A raw connection to every hub node. */
export function connectHub(topo: RegionsHandle): Promise<NatsConnection> {
  return connectTo(topo.hub.url);
}

/** Latest revision per key at the hub (0: absent, deleted or purged). */
export async function hubRevisions(kv: KV, keys: Iterable<string>): Promise<Map<string, number>> {
  const out = new Map<string, number>();
  for (const k of keys) {
    const e = await kv.get(k);
    out.set(k, e === null || e.operation !== "PUT" ? 0 : e.revision);
  }
  return out;
}

/** The last acknowledged hub write per key: its revision, and whether it was a delete. */
export type Acked = Map<string, { rev: number; deleted: boolean }>;

/**
 * Waits until `edge` serves, for every key, the hub's latest revision (or
 * absent), not stale; then checks that no acknowledged hub write is missing
 * (each key at or past its last acknowledged revision).
 */
export async function waitConverged(
  edge: Cache<unknown>,
  kv: KV,
  acked: Acked,
  what: string,
  timeoutMs = 60_000,
  place?: EdgePlace,
): Promise<void> {
  let diff = "";
  let diffKey: string | undefined;
  const converged = waitFor(async () => {
    if (edge.status().state !== "synced") {
      diff = `state ${edge.status().state}`;
      return false;
    }
    const want = await hubRevisions(kv, acked.keys());
    for (const [k, rev] of want) {
      const e = await edge.getEntry(k);
      const got = e === undefined ? 0 : e.revision;
      if (got !== rev || e?.stale) {
        diff = `${k}: edge ${got}${e?.stale ? " (stale)" : ""}, hub ${rev}`;
        diffKey = k;
        return false;
      }
    }
    return true;
  }, { timeoutMs, intervalMs: 100, message: `${what} converges` });
  await converged.catch(async (err) => {
    // Say where it stalled: the edge, its region's mirror, or the hub.
    assert.fail(`${err.message}: ${diff}\n${await regionDiagnosis(edge, place, diffKey)}`);
  });
  // The edge equals the hub; and the hub's latest operation on each key (a
  // delete included: a write whose ack was lost may still have landed) is at
  // or past the last acknowledged one, so no acknowledged write is missing.
  const missing: string[] = [];
  for (const [k, a] of acked) {
    const latest = (await kv.get(k))?.revision ?? 0;
    if (latest < a.rev) missing.push(`${k}@${a.rev}${a.deleted ? " (delete)" : ""}`);
  }
  assert.deepEqual(missing, [], `${what}: acknowledged hub writes missing at the edge`);
}

/** Where an edge lives, for {@link regionDiagnosis}. */
export interface EdgePlace {
  region: RegionHandle;
  hubNc: NatsConnection;
}

/**
 * What an edge, its regional mirror and the hub's stream say, one line each:
 * the edge's `status()`, the mirror on the region's leaf (last sequence, and
 * its mirror state: lag, ms since it heard the hub, error), and the hub's
 * stream (state, leader, replicas and their lag).
 */
export async function regionDiagnosis(
  edge: Cache<unknown>,
  place?: EdgePlace,
  key?: string,
): Promise<string> {
  const lines = [`edge status: ${JSON.stringify(edge.status())}`];
  if (place === undefined) return lines[0]!;
  const stream = `KV_${edge.bucket}`;
  const info = async (nc: NatsConnection, where: string) => {
    try {
      const jsm = await jetstreamManager(nc, { timeout: 2_000 });
      const i = await jsm.streams.info(stream);
      return `${where}: ${
        JSON.stringify({
          first: i.state.first_seq,
          last: i.state.last_seq,
          mirror: i.mirror,
          cluster: i.cluster,
        })
      }`;
    } catch (err) {
      return `${where}: stream info failed: ${(err as Error).message}`;
    }
  };
  const leafNc = await place.region.connect().catch(() => undefined);
  lines.push(leafNc ? await info(leafNc, `${place.region.name} mirror`) : "leaf: cannot connect");
  await leafNc?.close();
  lines.push(await info(place.hubNc, "hub"));
  if (key !== undefined) {
    // The same key read through the leader and directly (any replica answers).
    const q = { last_by_subj: `$KV.${edge.bucket}.${key}` };
    const jsm = await jetstreamManager(place.hubNc, { timeout: 2_000 });
    const seq = (p: Promise<{ seq: number } | null>) =>
      p.then((m) => m?.seq ?? 0, (err) => (err as Error).message);
    lines.push(
      `hub ${key}: leader ${await seq(jsm.streams.getMessage(stream, q))}, direct ${await seq(
        jsm.direct.getMessage(stream, q),
      )}`,
    );
  }
  return lines.join("\n");
}
