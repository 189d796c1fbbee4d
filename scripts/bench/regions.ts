/**
 * Regions over leaf nodes: a `put` at the hub (R3, domain "hub") → visible at
 * a regional edge (replica mode, `changes()` receipt) on the leaf node of
 * region "us", which reads its local mirror; side by side with a raw
 * `kv.watch()` on the same mirror, at 1 000 writes/s. Also: a regional
 * edge's own `set()` in region "eu" (through the hub) → visible in "us".
 *
 * The WAN links are loopback proxies (testing/proxy.ts) with no added delay:
 * the figures are the cost of the mirror hop, not of a real WAN. Writer and
 * receivers share this process's clock; variants alternate per repetition.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Cache, openCache } from "../../mod.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
import {
  HUB_DOMAIN,
  LEAF_PASSWORDS,
  type RegionHandle,
  startRegions,
} from "../../testing/regions.ts";
import { connectTo } from "../../testing/server.ts";
import { infoRow, type Row, type Scenario, stat } from "./_harness.ts";
import { benchBucket } from "./_helpers.ts";
import { waitFor } from "../../testing/wait_for.ts";
import {
  changesReceiver,
  figures,
  idKey,
  KEYS,
  measureRep,
  putId,
  type Receiver,
  record,
  seedIds,
  turn,
  visibleRows,
  watchReceiver,
} from "./_propagation.ts";

const RATE_PER_S = 1_000;

function regionalEdge<T>(region: RegionHandle, bucket: string): Promise<Cache<T>> {
  return openCache<T>({
    servers: region.url,
    connectOptions: { user: "admin", pass: LEAF_PASSWORDS.admin },
    bucket,
    mode: "replica",
    region: { hubDomain: HUB_DOMAIN },
    local: { maxItems: 10_000 },
  });
}

/** A raw `kv.watch()` on the region's mirror (it keeps the bucket's name). */
async function rawReceiver(region: RegionHandle, bucket: string, total: number): Promise<Receiver> {
  return watchReceiver(await region.connect(), bucket, total);
}

async function kvedgeReceiver(
  region: RegionHandle,
  bucket: string,
  total: number,
): Promise<Receiver> {
  const cache = await regionalEdge<number>(region, bucket);
  await cache.ready({ timeoutMs: 60_000 });
  return changesReceiver(cache, total);
}

async function newBucket(hubNc: NatsConnection, regions: RegionHandle[]): Promise<string> {
  const bucket = benchBucket("bench_region");
  const kv = await new Kvm(hubNc).create(bucket, { replicas: 3, history: 64 });
  await seedIds(kv);
  for (const r of regions) {
    const nc = await r.connect();
    try {
      await createRegionalMirror(nc, bucket, { hubDomain: HUB_DOMAIN });
    } finally {
      await nc.close();
    }
  }
  return bucket;
}

const CUT_WRITES = 100;

/**
 * One WAN cut of `region`: how long until a replica edge there reports the
 * hub unreachable, and, after `CUT_WRITES` hub writes and a heal, how long
 * until it is synced at the hub's last revision again.
 */
async function wanCut(
  region: RegionHandle,
  bucket: string,
  hubPut: (i: number) => Promise<number>,
): Promise<{ detectMs: number; convergeMs: number }> {
  await using edge = await regionalEdge<number>(region, bucket);
  await edge.ready({ timeoutMs: 60_000 });
  await waitFor(() => edge.status().state === "synced", {
    timeoutMs: 60_000,
    intervalMs: 10,
    message: "edge synced",
  });
  const cutAt = performance.now();
  region.cut();
  try {
    await waitFor(() => edge.status().region?.hubReachable === false, {
      timeoutMs: 60_000,
      intervalMs: 10,
      message: "cut detected",
    });
  } catch (err) {
    region.heal();
    throw err;
  }
  const detectMs = performance.now() - cutAt;
  let last = 0;
  for (let i = 0; i < CUT_WRITES; i++) last = await hubPut(1_000_000 + i);
  const healAt = performance.now();
  region.heal();
  await waitFor(() => edge.status().state === "synced" && edge.stats().lastRevision >= last, {
    timeoutMs: 120_000,
    intervalMs: 10,
    message: "converged after heal",
  });
  return { detectMs, convergeMs: performance.now() - healAt };
}

/** The regions scenario. */
export const scenario: Scenario = {
  name: "regions",
  title: "hub put → visible at an edge in another region (leaf mirror), vs raw kv.watch() on it",
  async run(ctx) {
    const n = ctx.quick ? 200 : 2_000;
    const warm = Math.min(200, n);
    ctx.log(`regions: hub R3 + 2 leaf regions, ${n} writes × ${ctx.reps} reps per variant`);
    const topo = await startRegions({ regions: ["eu", "us"] });
    const [eu, us] = topo.regions as [RegionHandle, RegionHandle];
    const hubNc = await connectTo(topo.hub.url);
    try {
      const bucket = await newBucket(hubNc, topo.regions);
      const hubKv = await new Kvm(hubNc).open(bucket);
      const hubPut = putId(hubKv);
      const rep = { warm, n, ratePerS: RATE_PER_S, timeoutMs: 20_000 };
      const figure = () => figures("p50", "p99", "lost");
      const fig = {
        raw: figure(),
        kvedge: figure(),
        edgeWrite: figure(),
        cut: { detectMs: [] as number[], convergeMs: [] as number[] },
      };
      for (let r = 0; r < ctx.reps; r++) {
        for (const v of turn(r)) {
          const total = warm + n;
          const rx = v === "raw"
            ? await rawReceiver(us, bucket, total)
            : await kvedgeReceiver(us, bucket, total);
          record(fig[v], await measureRep(rx, hubPut, rep));
        }
        // A regional edge's own write in "eu" (published to the hub's domain) → "us".
        await using writer = await regionalEdge<number>(eu, bucket);
        await writer.ready({ timeoutMs: 60_000 });
        const rx = await kvedgeReceiver(us, bucket, warm + n);
        record(fig.edgeWrite, await measureRep(rx, (i) => writer.set(idKey(i), i), rep));
        const fault = await wanCut(eu, bucket, hubPut);
        fig.cut.detectMs.push(fault.detectMs);
        fig.cut.convergeMs.push(fault.convergeMs);
      }
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const lost = sum(fig.raw.lost) + sum(fig.kvedge.lost) + sum(fig.edgeWrite.lost);
      const rows: Row[] = [
        ...visibleRows(
          "hub put→visible in another region",
          fig.kvedge,
          "raw kv.watch() on the mirror",
          fig.raw,
        ),
        infoRow("eu edge set()→visible in us p50", "ms", stat(fig.edgeWrite.p50)),
        infoRow("eu edge set()→visible in us p99", "ms", stat(fig.edgeWrite.p99)),
        infoRow("WAN cut → edge says hub unreachable (stale)", "ms", stat(fig.cut.detectMs), {
          note: "maxSilenceMs 3000, checkMs 1000 (defaults)",
        }),
        infoRow("heal → edge synced at the hub's last revision", "ms", stat(fig.cut.convergeMs), {
          note: `${CUT_WRITES} hub writes made during the cut`,
        }),
      ];
      if (lost > 0) {
        rows.push(infoRow("writes never seen", "writes", stat([lost]), {
          note: `over every rep and variant (${n} measured writes each)`,
        }));
      }
      return {
        name: "regions",
        title: this.title,
        params: {
          writesPerRep: n,
          warmupWrites: warm,
          ratePerSecond: RATE_PER_S,
          keys: KEYS,
          reps: ctx.reps,
          topology: "hub R3 (domain hub) + leaf regions eu, us; loopback proxies, no delay",
          kvedge: "regional replica edge on the us leaf, cache.changes() receipt",
          raw: "kv.watch({ include: UpdatesOnly }) on the us leaf's mirror",
          server: Deno.env.get("NATS_SERVER_BIN") ?? "default nats-server",
        },
        rows,
        raw: fig,
      };
    } finally {
      await hubNc.close();
      await topo.stop();
    }
  },
};
