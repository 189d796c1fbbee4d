/**
 * Regions over leaf nodes: a `put` at the hub (R3, domain "hub") → visible at
 * a regional edge (replica mode, `changes()` receipt) on the leaf node of
 * region "us", which reads its local mirror; side by side with a raw
 * `kv.watch()` on the same mirror, at 1 000 writes/s. Also: a regional
 * edge's own `set()` in region "eu" (through the hub) → visible in "us".
 *
 * The WAN links are loopback proxies (scripts/_proxy.ts) with no added delay:
 * the figures are the cost of the mirror hop, not of a real WAN. Writer and
 * receivers share this process's clock; variants alternate per repetition.
 *
 * @module
 */
import { Kvm, KvWatchInclude } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { type Cache, openCache } from "../../mod.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
import { HUB_DOMAIN, LEAF_PASSWORDS, type RegionHandle, startRegions } from "../_regions.ts";
import { connectTo } from "../_server.ts";
import { infoRow, percentile, ratioRow, type Row, type Scenario, stat } from "./_harness.ts";
import { benchBucket, sleep, until } from "./_helpers.ts";

const RATE_PER_S = 1_000;
const KEYS = 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

type Variant = "raw" | "kvedge";

interface Receiver {
  recv: Float64Array;
  received: () => number;
  close(): Promise<void>;
}

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

async function rawReceiver(region: RegionHandle, bucket: string, total: number) {
  const nc = await region.connect();
  // The mirror keeps the bucket's name: binding by name reads its subjects.
  const kv = await new Kvm(nc).open(bucket);
  const w = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
  const recv = new Float64Array(total).fill(NaN);
  let n = 0;
  const loop = (async () => {
    for await (const e of w) {
      const t = performance.now();
      if (e.operation !== "PUT") continue;
      const id = JSON.parse(dec.decode(e.value)) as number;
      if (id < total && Number.isNaN(recv[id]!)) {
        recv[id] = t;
        n++;
      }
    }
  })();
  return {
    recv,
    received: () => n,
    async close() {
      w.stop();
      await loop.catch(() => {});
      await nc.close();
    },
  } satisfies Receiver;
}

async function kvedgeReceiver(region: RegionHandle, bucket: string, total: number) {
  const cache = await regionalEdge<number>(region, bucket);
  await cache.ready({ timeoutMs: 60_000 });
  const it = cache.changes();
  const recv = new Float64Array(total).fill(NaN);
  let n = 0;
  const loop = (async () => {
    for await (const c of it) {
      const t = performance.now();
      const id = c.value;
      if (typeof id === "number" && id < total && Number.isNaN(recv[id]!)) {
        recv[id] = t;
        n++;
      }
    }
  })();
  return {
    recv,
    received: () => n,
    async close() {
      await it.return?.();
      await loop.catch(() => {});
      await cache.close();
    },
  } satisfies Receiver;
}

/** Calls `put(i)` for ids 0..total-1 at `RATE_PER_S`; returns the call times. */
async function write(put: (i: number) => Promise<unknown>, total: number): Promise<Float64Array> {
  const sent = new Float64Array(total);
  const acks: Promise<unknown>[] = [];
  const start = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * RATE_PER_S) / 1000) + 1);
    while (i < due) {
      sent[i] = performance.now();
      acks.push(put(i));
      i++;
    }
    await sleep(1);
  }
  await Promise.all(acks);
  return sent;
}

async function oneRep(
  rx: Receiver,
  put: (i: number) => Promise<unknown>,
  warm: number,
  n: number,
): Promise<{ p50: number; p99: number; lost: number }> {
  const total = warm + n;
  try {
    const sent = await write(put, total);
    await until(() => rx.received() >= total, 20_000, "all writes").catch(() => {});
    const lat: number[] = [];
    let lost = 0;
    for (let i = warm; i < total; i++) {
      const t = rx.recv[i]!;
      if (Number.isNaN(t)) lost++;
      else lat.push(t - sent[i]!);
    }
    return { p50: percentile(lat, 0.5), p99: percentile(lat, 0.99), lost };
  } finally {
    await rx.close();
  }
}

async function newBucket(hubNc: NatsConnection, regions: RegionHandle[]): Promise<string> {
  const bucket = benchBucket("bench_region");
  const kv = await new Kvm(hubNc).create(bucket, { replicas: 3, history: 64 });
  for (let k = 0; k < KEYS; k++) await kv.put(`p.${k}`, enc.encode("-1"));
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
  await until(() => edge.status().state === "synced", 60_000, "edge synced");
  const cutAt = performance.now();
  region.cut();
  try {
    await until(() => edge.status().region?.hubReachable === false, 60_000, "cut detected");
  } catch (err) {
    region.heal();
    throw err;
  }
  const detectMs = performance.now() - cutAt;
  let last = 0;
  for (let i = 0; i < CUT_WRITES; i++) last = await hubPut(1_000_000 + i);
  const healAt = performance.now();
  region.heal();
  await until(
    () => edge.status().state === "synced" && edge.stats().lastRevision >= last,
    120_000,
    "converged after heal",
  );
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
      const hubPut = (i: number) => hubKv.put(`p.${i % KEYS}`, enc.encode(String(i)));
      const fig = {
        raw: { p50: [] as number[], p99: [] as number[], lost: [] as number[] },
        kvedge: { p50: [] as number[], p99: [] as number[], lost: [] as number[] },
        edgeWrite: { p50: [] as number[], p99: [] as number[], lost: [] as number[] },
        cut: { detectMs: [] as number[], convergeMs: [] as number[] },
      };
      for (let r = 0; r < ctx.reps; r++) {
        const order: Variant[] = r % 2 === 0 ? ["raw", "kvedge"] : ["kvedge", "raw"];
        for (const v of order) {
          const total = warm + n;
          const rx = v === "raw"
            ? await rawReceiver(us, bucket, total)
            : await kvedgeReceiver(us, bucket, total);
          const res = await oneRep(rx, hubPut, warm, n);
          fig[v].p50.push(res.p50);
          fig[v].p99.push(res.p99);
          fig[v].lost.push(res.lost);
        }
        // A regional edge's own write in "eu" (published to the hub's domain) → "us".
        await using writer = await regionalEdge<number>(eu, bucket);
        await writer.ready({ timeoutMs: 60_000 });
        const rx = await kvedgeReceiver(us, bucket, warm + n);
        const res = await oneRep(rx, (i) => writer.set(`p.${i % KEYS}`, i), warm, n);
        fig.edgeWrite.p50.push(res.p50);
        fig.edgeWrite.p99.push(res.p99);
        fig.edgeWrite.lost.push(res.lost);
        const fault = await wanCut(eu, bucket, hubPut);
        fig.cut.detectMs.push(fault.detectMs);
        fig.cut.convergeMs.push(fault.convergeMs);
      }
      const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
      const lost = sum(fig.raw.lost) + sum(fig.kvedge.lost) + sum(fig.edgeWrite.lost);
      const rows: Row[] = [
        ratioRow(
          "hub put→visible in another region p50",
          "ms",
          stat(fig.kvedge.p50),
          "raw kv.watch() on the mirror",
          stat(fig.raw.p50),
          "le",
          1.2,
        ),
        ratioRow(
          "hub put→visible in another region p99",
          "ms",
          stat(fig.kvedge.p99),
          "raw kv.watch() on the mirror",
          stat(fig.raw.p99),
          "le",
          1.2,
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
