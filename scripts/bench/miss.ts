/**
 * Miss path: `get()` of a key absent locally but present in KV, against a raw
 * `kv.get` of the same key. Sequential awaited reads; every key is read once
 * per variant (a kvedge miss makes the key resident), variants interleaved.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import type { Cache } from "../../mod.ts";
import { infoRow, percentile, ratioRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket } from "./_helpers.ts";
import { benchServer } from "./_processes.ts";

const enc = new TextEncoder();

const VARIANTS = ["raw", "kvedge", "raw_direct", "kvedge_direct"] as const;
type Variant = typeof VARIANTS[number];

/** The miss-path scenario. */
export const scenario: Scenario = {
  name: "miss",
  title: "get() of a key absent locally, present in KV, vs raw kv.get",
  async run(ctx) {
    const perRep = ctx.quick ? 100 : 1_000;
    const warm = 100;
    const server = await benchServer();
    const caches: Cache<unknown>[] = [];
    try {
      const nc = await connectRaw(server.url);
      const bucket = benchBucket("bench_miss");
      const total = warm + perRep * ctx.reps;
      await fillBucket(
        nc,
        bucket,
        total,
        (i) => `item.${i}`,
        (i) => enc.encode(JSON.stringify({ id: i, name: `item ${i}`, pad: "x".repeat(100) })),
        { history: 5 },
      );
      // The raw side gets its own connection, as each cache has its own.
      const rawNc = await connectRaw(server.url);
      const kvm = new Kvm(rawNc);
      const raw = await kvm.open(bucket); // leader-answered get, kvedge's default
      const rawDirect = await kvm.open(bucket, { allow_direct: true });
      const kvedge = await openCache({ servers: server.url, bucket, local: { maxItems: total } });
      const kvedgeDirect = await openCache({
        servers: server.url,
        bucket,
        local: { maxItems: total },
        allowDirect: true,
      });
      caches.push(kvedge, kvedgeDirect);
      await kvedge.ready();
      await kvedgeDirect.ready();

      const readOne: Record<Variant, (key: string) => Promise<unknown>> = {
        raw: (k) => raw.get(k),
        raw_direct: (k) => rawDirect.get(k),
        kvedge: (k) => kvedge.get(k),
        kvedge_direct: (k) => kvedgeDirect.get(k),
      };
      const measure = async (v: Variant, from: number, count: number): Promise<number[]> => {
        const lat: number[] = [];
        for (let i = from; i < from + count; i++) {
          const t0 = performance.now();
          const got = await readOne[v](`item.${i}`);
          lat.push((performance.now() - t0) * 1000);
          if (got === null || got === undefined) throw new Error(`${v}: item.${i} missing`);
        }
        return lat;
      };
      for (const v of VARIANTS) await measure(v, 0, warm);
      const p50 = Object.fromEntries(VARIANTS.map((v) => [v, [] as number[]])) as Record<
        Variant,
        number[]
      >;
      const p99 = structuredClone(p50);
      for (let r = 0; r < ctx.reps; r++) {
        const from = warm + r * perRep;
        for (let j = 0; j < VARIANTS.length; j++) {
          const v = VARIANTS[(j + r) % VARIANTS.length]!;
          const lat = await measure(v, from, perRep);
          p50[v].push(percentile(lat, 0.5));
          p99[v].push(percentile(lat, 0.99));
        }
      }
      const missesOk = kvedge.stats().misses >= warm + perRep * ctx.reps;
      await rawNc.close();
      await nc.close();
      return {
        name: "miss",
        title: this.title,
        params: {
          keysPerRep: perRep,
          reps: ctx.reps,
          valueBytes: 130,
          raw: "kvm.open(bucket).get() (leader-answered, as kvedge by default)",
        },
        rows: [
          ratioRow(
            "miss get() p50",
            "µs",
            stat(p50.kvedge),
            "raw kv.get",
            stat(p50.raw),
            "le",
            1.2,
          ),
          ratioRow(
            "miss get() p99",
            "µs",
            stat(p99.kvedge),
            "raw kv.get",
            stat(p99.raw),
            undefined,
            undefined,
            "info",
          ),
          ratioRow(
            "miss get() p50, allowDirect",
            "µs",
            stat(p50.kvedge_direct),
            "raw kv.get (direct)",
            stat(p50.raw_direct),
            undefined,
            undefined,
            "info",
          ),
          ...(missesOk ? [] : [infoRow("misses counted", "", stat([kvedge.stats().misses]), {
            note: "fewer misses than reads: some keys were resident",
          })]),
        ],
        raw: { p50Us: p50, p99Us: p99 },
      };
    } finally {
      for (const c of caches) await c.close().catch(() => {});
      await server.stop();
    }
  },
};
