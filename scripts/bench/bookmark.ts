/**
 * Reads with a bookmark (rule 8). On a caught-up edge: `get(key, { atLeast })`
 * of a resident key against the plain `get(key)` hit (it must cost what a hit
 * costs). On a lagging edge (behind a proxy that delays every chunk by
 * `DELAY_MS` each way): a write at a second edge, then at once the bookmarked
 * read of the same key, with the default wait for the watcher (250 ms) and
 * with no wait (a leader get at once), p50/p99 of the read, next to a raw
 * `kv.get` (a direct get, nats.js's default for a KV bucket) and a raw leader
 * get (`STREAM.MSG.GET`, what kvedge's fallback sends) over the same delayed
 * link, and a raw `kv.get` over a direct one.
 *
 * @module
 */
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { Bookmark, openCache } from "../../mod.ts";
import type { Cache } from "../../mod.ts";
import { startProxy } from "../../testing/proxy.ts";
import { infoRow, percentile, ratioRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw } from "./_helpers.ts";
import { waitFor } from "../../testing/wait_for.ts";
import { benchServer } from "./_processes.ts";

/** One-way delay of the lagging edge's link, ms. */
const DELAY_MS = 20;
const KEYS = 1_000;

/** The bookmark scenario. */
export const scenario: Scenario = {
  name: "bookmark",
  title: "get() with a bookmark: on a caught-up edge vs a hit, on a lagging edge (wait vs fetch)",
  async run(ctx) {
    const iters = ctx.quick ? 20_000 : 1_000_000;
    const pairs = ctx.quick ? 20 : 100;
    const server = await benchServer();
    const proxy = startProxy(server.port, "tcp");
    const caches: Cache<unknown>[] = [];
    try {
      const bucket = benchBucket("bench_bookmark");
      const open = async (servers: string, extra: Record<string, unknown> = {}) => {
        const c = await openCache<unknown>({
          servers,
          bucket,
          create: true,
          mode: "replica",
          local: { maxItems: 10 * KEYS },
          missTimeoutMs: 5_000,
          ...extra,
        });
        caches.push(c);
        await c.ready();
        return c;
      };
      const writer = await open(server.url);
      let rev = 0;
      for (let i = 0; i < KEYS; i++) rev = await writer.set(`k.${i}`, { i });
      const waiting = await open(proxy.url);
      const fetching = await open(proxy.url, { bookmarkWaitMs: 0 });
      await waitFor(
        () => waiting.stats().lastRevision >= rev && fetching.stats().lastRevision >= rev,
        { timeoutMs: 30_000, intervalMs: 10, message: "both lagging edges caught up" },
      );

      // ---- caught up: ns per awaited get, interleaved per repetition -----------
      ctx.log(`bookmark: ${iters} hits × ${ctx.reps} reps per variant`);
      const keys = Array.from({ length: KEYS }, (_, i) => `k.${i}`);
      const bm = Bookmark.of(bucket, rev);
      const hitVariants = {
        plain: (k: string) => waiting.get(k),
        atLeast_rev: (k: string) => waiting.get(k, { atLeast: rev }),
        atLeast_bookmark: (k: string) => waiting.get(k, { atLeast: bm }),
      };
      type HitVariant = keyof typeof hitVariants;
      const hitNs: Record<HitVariant, number[]> = {
        plain: [],
        atLeast_rev: [],
        atLeast_bookmark: [],
      };
      const names = Object.keys(hitVariants) as HitVariant[];
      // Load on a shared machine drifts: each repetition alternates the
      // variants in ten slices, so that a slow spell hits all of them alike.
      const SLICES = 10;
      const slice = Math.ceil(iters / SLICES);
      for (let r = 0; r < ctx.reps; r++) {
        const ms: Record<HitVariant, number> = { plain: 0, atLeast_rev: 0, atLeast_bookmark: 0 };
        for (let sl = 0; sl < SLICES; sl++) {
          for (let j = 0; j < names.length; j++) {
            const v = names[(j + sl + r) % names.length]!;
            const read = hitVariants[v];
            const t0 = performance.now();
            for (let i = 0; i < slice; i++) await read(keys[i % KEYS]!);
            ms[v] += performance.now() - t0;
          }
        }
        for (const v of names) hitNs[v].push((ms[v] * 1e6) / (slice * SLICES));
      }
      const hitsOk = waiting.stats().misses === 0;

      // ---- lagging: a write at the writer, then the read at once ---------------
      proxy.delay(DELAY_MS);
      ctx.log(`bookmark: ${pairs} write-then-read pairs × ${ctx.reps} reps per variant`);
      const rawNc = await connectRaw(server.url);
      const rawKv = await new Kvm(rawNc).open(bucket);
      const slowNc = await connectRaw(proxy.url);
      const slowKv = await new Kvm(slowNc).open(bucket);
      const slowJsm = await jetstreamManager(slowNc, { checkAPI: false });
      const lagVariants = {
        wait: (k: string, r: number) => waiting.getEntry(k, { atLeast: r }),
        fetch: (k: string, r: number) => fetching.getEntry(k, { atLeast: r }),
        raw_delayed: (k: string) => slowKv.get(k),
        raw_leader_delayed: async (k: string) => {
          const m = await slowJsm.streams.getMessage(`KV_${bucket}`, {
            last_by_subj: `$KV.${bucket}.${k}`,
          });
          return m === null ? null : { revision: m.seq };
        },
        raw_direct: (k: string) => rawKv.get(k),
      };
      type LagVariant = keyof typeof lagVariants;
      const lagNames = Object.keys(lagVariants) as LagVariant[];
      const p50 = Object.fromEntries(lagNames.map((v) => [v, [] as number[]])) as Record<
        LagVariant,
        number[]
      >;
      const p99 = structuredClone(p50);
      let older = 0;
      let n = 0;
      for (let r = 0; r < ctx.reps; r++) {
        for (let j = 0; j < lagNames.length; j++) {
          const v = lagNames[(j + r) % lagNames.length]!;
          const lat: number[] = [];
          for (let i = 0; i < pairs; i++) {
            const key = `k.${n++ % KEYS}`;
            const written = await writer.set(key, { n });
            const t0 = performance.now();
            const got = await lagVariants[v](key, written);
            lat.push((performance.now() - t0) * 1000);
            const bookmarked = v === "wait" || v === "fetch";
            if (bookmarked && (got === null || got === undefined || got.revision < written)) {
              older++;
            }
          }
          p50[v].push(percentile(lat, 0.5));
          p99[v].push(percentile(lat, 0.99));
        }
      }
      await rawNc.close();
      await slowNc.close();
      const s = (xs: number[]) => stat(xs);
      return {
        name: "bookmark",
        title: this.title,
        params: {
          keys: KEYS,
          hitItersPerRep: iters,
          pairsPerRep: pairs,
          reps: ctx.reps,
          delayMsEachWay: DELAY_MS,
          bookmarkWaitMs: { wait: 250, fetch: 0 },
          mode: "replica edges; the writer writes through its own connection, not delayed",
        },
        rows: [
          ratioRow(
            "get({ atLeast: rev }) hit, caught up",
            "ns/op",
            s(hitNs.atLeast_rev),
            "get() hit",
            s(hitNs.plain),
            "le",
            1.2,
          ),
          ratioRow(
            "get({ atLeast: Bookmark }) hit, caught up",
            "ns/op",
            s(hitNs.atLeast_bookmark),
            "get() hit",
            s(hitNs.plain),
            "le",
            1.3,
          ),
          infoRow("lagging edge, wait for the watcher, p50", "µs", s(p50.wait), {
            baselineName: "raw kv.get over the delayed link",
            baseline: s(p50.raw_delayed),
          }),
          infoRow("lagging edge, wait for the watcher, p99", "µs", s(p99.wait), {
            baselineName: "raw kv.get over the delayed link",
            baseline: s(p99.raw_delayed),
          }),
          infoRow("lagging edge, leader get at once, p50", "µs", s(p50.fetch), {
            baselineName: "raw leader get over the delayed link",
            baseline: s(p50.raw_leader_delayed),
          }),
          infoRow("lagging edge, leader get at once, p99", "µs", s(p99.fetch), {
            baselineName: "raw leader get over the delayed link",
            baseline: s(p99.raw_leader_delayed),
          }),
          infoRow("raw kv.get at the leader, direct link, p50", "µs", s(p50.raw_direct)),
          infoRow(
            "bookmarked answers older than the write",
            "count",
            stat([older]),
            { note: "must be 0; the raw reads carry no bookmark and are not counted" },
          ),
          ...(hitsOk ? [] : [infoRow(
            "misses during the hit loop",
            "",
            stat([
              waiting.stats().misses,
            ]),
          )]),
        ],
        raw: { hitNs, p50Us: p50, p99Us: p99 },
      };
    } finally {
      for (const c of caches) await c.close().catch(() => {});
      await proxy.close();
      await server.stop();
    }
  },
};
