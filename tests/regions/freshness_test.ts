/**
 * The rules of freshness (docs/guarantees.md#freshness, rules 1–7) for a regional edge: the
 * core checks of cache_core_test.ts, run against an edge on a leaf node that
 * reads the bucket's regional mirror and writes to the hub.
 */
import assert from "node:assert/strict";
import { UnavailableError } from "../../mod.ts";
import { connectHub, regionalBucket, regionalEdge } from "../_regions.ts";
import { startProxy } from "../_proxy.ts";
import { startRegions, waitFor } from "../_setup.ts";

const enc = (v: unknown) => JSON.stringify(v);

/**
 * A hub write reaches a region when its mirror has copied it (milliseconds,
 * asynchronously): the first read after one waits for the mirror, as a user
 * in another region would.
 */
function readInRegion<T>(c: { get(k: string): Promise<T | undefined> }, key: string, want: T) {
  return waitFor(async () => (await c.get(key)) === want, {
    timeoutMs: 20_000,
    message: `${key} = ${String(want)} in the region`,
  });
}

Deno.test("rules of freshness on a regional edge", async (t) => {
  await using topo = await startRegions({ regions: ["eu"] });
  const eu = topo.regions[0]!;
  const hubNc = await connectHub(topo);
  try {
    await t.step("rule 1: a lower revision never replaces a higher one", async () => {
      const b = await regionalBucket(topo, hubNc);
      await using c = await regionalEdge<number>(eu, b.name);
      await c.ready();
      const r1 = await b.hubKv.put("x", enc(1));
      await readInRegion(c, "x", 1);
      const r2 = await c.set("x", 2); // own write, through the hub: read-your-writes at r2
      assert.ok(r2 > r1);
      assert.equal(c.peek("x"), 2);
      // The mirror later delivers r2 again: still 2, revision unchanged.
      await waitFor(() => c.stats().lastRevision >= r2, { timeoutMs: 20_000 });
      assert.equal((await c.getEntry("x"))?.revision, r2);
    });

    await t.step(
      "rule 2: a delete is served as absent without I/O, never resurrected",
      async () => {
        const b = await regionalBucket(topo, hubNc);
        await using c = await regionalEdge<number>(eu, b.name);
        await c.ready();
        await b.hubKv.put("d", enc(1));
        await readInRegion(c, "d", 1);
        await b.hubKv.delete("d");
        await waitFor(() => c.peek("d") === undefined, { timeoutMs: 20_000 });
        const fetches = c.stats().fetches;
        for (let i = 0; i < 10; i++) assert.equal(await c.get("d"), undefined);
        assert.equal(c.stats().fetches, fetches, "a tombstone read must not go to NATS");
        assert.equal(await c.get("never"), undefined);
        const after = c.stats().fetches;
        assert.equal(await c.get("never"), undefined);
        assert.equal(c.stats().fetches, after);
        await b.hubKv.put("p", enc(5));
        await readInRegion(c, "p", 5);
        await b.hubKv.purge("p");
        await waitFor(() => c.peek("p") === undefined, { timeoutMs: 20_000 });
        await b.hubKv.put("p", enc(6));
        await waitFor(() => c.peek("p") === 6, { timeoutMs: 20_000 });
      },
    );

    await t.step("rule 3: 100 concurrent misses of one key share one mirror read", async () => {
      const b = await regionalBucket(topo, hubNc);
      await b.hubKv.put("hot", enc(42));
      await using c = await regionalEdge<number>(eu, b.name);
      await c.ready();
      await waitFor(async () => (await c.history("hot")).length === 1, { timeoutMs: 20_000 });
      const before = c.stats().fetches;
      const values = await Promise.all(Array.from({ length: 100 }, () => c.get("hot")));
      assert.ok(values.every((v) => v === 42));
      assert.equal(c.stats().fetches - before, 1);
    });

    await t.step("allowDirect: misses are direct gets answered by the mirror", async () => {
      const b = await regionalBucket(topo, hubNc);
      await b.hubKv.put("d", enc(7));
      await using c = await regionalEdge<number>(eu, b.name, { allowDirect: true });
      await c.ready();
      const e = await waitFor(() => c.getEntry("d"), { timeoutMs: 20_000 });
      assert.equal(e.value, 7);
      assert.equal(e.source, "miss");
    });

    await t.step("rule 4: reads of one key never go back in revision", async () => {
      const b = await regionalBucket(topo, hubNc);
      await using c = await regionalEdge<number>(eu, b.name, { local: { maxItems: 3 } });
      await c.ready();
      let writing = true;
      const writer = (async () => {
        for (let i = 1; i <= 200; i++) await b.hubKv.put("m", enc(i));
        writing = false;
      })();
      let last = 0;
      let reads = 0;
      let i = 0;
      while (writing || reads < 50) {
        const e = await c.getEntry("m");
        if (e) {
          assert.ok(e.revision >= last, `revision went back: ${e.revision} < ${last}`);
          last = e.revision;
        }
        await c.get(`churn.${i++ % 10}`); // evicts "m" now and then
        reads++;
      }
      await writer;
    });

    await t.step(
      "rule 5: with writes stopped, every resident entry reaches the hub's latest",
      async () => {
        const b = await regionalBucket(topo, hubNc);
        await using c = await regionalEdge<number>(eu, b.name);
        await c.ready();
        const keys = Array.from({ length: 10 }, (_, i) => `c${i}`);
        for (const k of keys) await b.hubKv.put(k, enc(0));
        for (const k of keys) {
          await waitFor(async () => (await c.get(k)) !== undefined, { timeoutMs: 20_000 });
        }
        for (let i = 1; i <= 100; i++) await b.hubKv.put(keys[i % keys.length]!, enc(i));
        await waitFor(async () => {
          for (const k of keys) {
            if (
              c.peek(k) !== JSON.parse(new TextDecoder().decode((await b.hubKv.get(k))!.value))
            ) return false;
          }
          return true;
        }, { timeoutMs: 30_000, message: "resident entries converge" });
      },
    );

    await t.step("rule 6: an entry never outlives local.maxTtlMs nor the bucket TTL", async () => {
      const b = await regionalBucket(topo, hubNc, undefined, { ttlMs: 1_500 });
      await using c = await regionalEdge<number>(eu, b.name);
      await c.ready();
      assert.equal(c.status().bucketTtlMs, 1_500, "the mirror carries the hub bucket's TTL");
      await b.hubKv.put("bt", enc(1));
      const e = await waitFor(() => c.getEntry("bt"), { timeoutMs: 20_000 });
      await waitFor(() => c.peek("bt") === undefined, { timeoutMs: 10_000 });
      assert.ok(Date.now() >= e.createdMs + 1_500 - 50, "expired before created + ttl");
      const b2 = await regionalBucket(topo, hubNc);
      await using m = await regionalEdge<number>(eu, b2.name, {
        local: { maxItems: 100, maxTtlMs: 300 },
      });
      await m.set("t", 1);
      assert.equal(m.peek("t"), 1);
      await waitFor(() => m.peek("t") === undefined, { timeoutMs: 3_000 });
    });

    await t.step(
      "rule 7: cut off from its leaf, the edge serves stale and fails misses fast",
      async () => {
        const b = await regionalBucket(topo, hubNc);
        await b.hubKv.put("r", enc(1));
        await b.hubKv.put("other", enc(2));
        await using link = startProxy(eu.leaf.port);
        await using c = await regionalEdge<number>({ ...eu, url: link.url }, b.name);
        await c.ready();
        await waitFor(async () => (await c.get("r")) === 1, { timeoutMs: 20_000 });
        link.cut();
        await waitFor(() => !c.status().connected, { timeoutMs: 20_000 });
        const e = await c.getEntry("r");
        assert.equal(e?.value, 1);
        assert.equal(e?.stale, true);
        await assert.rejects(c.get("other"), UnavailableError);
        await assert.rejects(c.set("r", 3), UnavailableError);
        const rev = await b.hubKv.put("r", enc(4)); // while the edge is away
        link.restore();
        await waitFor(async () => {
          const x = await c.getEntry("r");
          return c.status().state === "synced" && x?.revision === rev && !x.stale;
        }, { timeoutMs: 30_000, message: "the edge resumes and converges" });
      },
    );
  } finally {
    await hubNc.close();
  }
});
