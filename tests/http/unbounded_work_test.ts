/**
 * Work a hostile client could make unbounded through the HTTP facade (issue
 * #18, item 6): each step names the bound it covers and asserts on counts,
 * status codes and residency, never on time.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { type Cache, type CacheOptions, openCache } from "../../mod.ts";
import { createApp, type CreateAppOptions, type RequestInfo } from "../../http.ts";
import { fill } from "../_seed.ts";
import { startServer, uniqueBucket, waitFor } from "../_setup.ts";

const put = (value: unknown): RequestInit => ({
  method: "PUT",
  body: JSON.stringify(value),
  headers: { "content-type": "application/json" },
});

/** The statuses of `responses`, counted, e.g. `{ 200: 2, 503: 3 }`; bodies are drained. */
async function statuses(responses: Response[]): Promise<Record<number, number>> {
  const out: Record<number, number> = {};
  for (const r of responses) {
    out[r.status] = (out[r.status] ?? 0) + 1;
    if (!r.bodyUsed) await r.body?.cancel();
  }
  return out;
}

/** A metric's value in `/metrics` text, or NaN. */
function metric(text: string, series: string): number {
  const esc = series.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return Number(new RegExp(`^${esc} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
}

Deno.test("HTTP facade: work a hostile client can cause is bounded", async (t) => {
  await using srv = await startServer();
  const nc = await connect({ servers: srv.url });
  const caches: Cache<unknown>[] = [];
  const open = async (extra: Partial<CacheOptions<unknown>> = {}): Promise<Cache<unknown>> => {
    const c = await openCache<unknown>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: { history: 10 },
      local: { maxItems: 10_000 },
      ...extra,
    } as CacheOptions<unknown>);
    await c.ready({ timeoutMs: 30_000 });
    caches.push(c);
    return c;
  };
  const app = (cache: Cache<unknown>, options: Partial<CreateAppOptions> = {}) =>
    createApp({ buckets: { b: { cache } }, auth: { anonymousWrites: true }, ...options });

  try {
    await t.step("a replica that holds the bucket lists it from memory, uncapped", async () => {
      const cache = await open({ mode: "replica" });
      await fill(nc, cache.bucket, 300, (i) => ({ i }));
      await (await app(cache).request("/v1/buckets/b/keys/k.7", { method: "DELETE" })).text();
      await waitFor(() => cache.stats().lastRevision >= 301);
      assert.equal(cache.status().listing, "local");
      const a = app(cache, { limits: { maxConcurrentScans: 1 } });
      // Ten pages at once against a cap of one: none needs a consumer.
      const pages = await Promise.all(
        Array.from({ length: 10 }, () => a.request("/v1/buckets/b/keys?prefix=k.1&limit=5")),
      );
      const bodies = await Promise.all(pages.map((r) => r.json()));
      assert.deepEqual(pages.map((r) => r.status), Array(10).fill(200));
      assert.deepEqual(bodies[0].keys, ["k.1", "k.10", "k.100", "k.101", "k.102"]);
      // Paging through the local listing gives what KV holds: every key once, the deleted one not.
      const seen: string[] = [];
      let cursor: string | null = "";
      while (cursor !== null) {
        const r = await a.request(`/v1/buckets/b/keys?limit=64&cursor=${cursor}`);
        const body: { keys: string[]; cursor: string | null } = await r.json();
        seen.push(...body.keys);
        cursor = body.cursor;
      }
      const expected = Array.from({ length: 300 }, (_, i) => `k.${i}`).filter((k) => k !== "k.7");
      assert.deepEqual(seen, expected.sort());
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_http_refused_total{bound="scans"}'), NaN, m);
    });

    await t.step("listings that scan KV are capped: past the cap 503 at once", async () => {
      const cache = await open();
      await fill(nc, cache.bucket, 50, (i) => i);
      assert.equal(cache.status().listing, "kv");
      const a = app(cache, { limits: { maxConcurrentScans: 2 } });
      // All five reach the cap before any consumer answers.
      const got = await statuses(
        await Promise.all(
          Array.from({ length: 5 }, () => a.request("/v1/buckets/b/keys?limit=10")),
        ),
      );
      assert.deepEqual(got, { 200: 2, 503: 3 });
      const refused = await a.request("/v1/buckets/b/keys");
      assert.equal(refused.status, 200, "the places are given back");
      await refused.body?.cancel();
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_http_refused_total{bound="scans"}'), 3);
      assert.equal(metric(m, 'kvedge_http_inflight{kind="scan"}'), 0);
      const one = await Promise.all([
        a.request("/v1/buckets/b/keys"),
        a.request("/v1/buckets/b/keys"),
        a.request("/v1/buckets/b/keys"),
      ]);
      const problem = one.find((r) => r.status === 503)!;
      assert.equal(problem.headers.get("retry-after"), "1");
      assert.equal((await problem.json()).code, "overloaded");
      await statuses(one);
    });

    await t.step("a KV listing stops when its client goes away", async () => {
      const cache = await open();
      await fill(nc, cache.bucket, 2_000, (i) => i);
      const events: string[] = [];
      const a = app(cache, {
        limits: { maxConcurrentScans: 1 },
        onRefused: ({ bound }) => events.push(bound),
      });
      const ac = new AbortController();
      const pending = a.request(
        new Request("http://edge/v1/buckets/b/keys?limit=10", { signal: ac.signal }),
      );
      ac.abort(); // before the consumer delivered anything
      const res = await pending;
      assert.notEqual(res.status, 200, "an abandoned listing is not read to its end");
      await res.body?.cancel();
      assert.deepEqual(events, ["listing_client_gone"]);
      const next = await a.request("/v1/buckets/b/keys?limit=10");
      assert.equal(next.status, 200, "its place is free");
      assert.equal((await next.json()).keys.length, 10);
    });

    await t.step("history: bounded in bytes (422 result_too_large) and capped", async () => {
      const cache = await open();
      const a = app(cache, {
        limits: { maxHistoryBytes: 8_192, maxConcurrentScans: 1 },
      });
      for (let i = 0; i < 5; i++) {
        await (await a.request("/v1/buckets/b/keys/big", put("x".repeat(3_000)))).text();
      }
      await (await a.request("/v1/buckets/b/keys/small", put(1))).text();
      const big = await a.request("/v1/buckets/b/keys/big/history");
      assert.equal(big.status, 422);
      const p = await big.json();
      assert.equal(p.code, "result_too_large");
      assert.equal(p.maxBytes, 8_192);
      const small = await a.request("/v1/buckets/b/keys/small/history");
      assert.equal(small.status, 200);
      assert.equal((await small.json()).history.length, 1);
      const got = await statuses(
        await Promise.all(
          Array.from({ length: 3 }, () => a.request("/v1/buckets/b/keys/small/history")),
        ),
      );
      assert.deepEqual(got, { 200: 1, 503: 2 });
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_http_refused_total{bound="history_bytes"}'), 1);
    });

    await t.step("never-written keys cannot evict the values being read", async () => {
      // The measure: 100 hot keys read twice, then a flood of misses.
      const cache = await open({ local: { maxItems: 400 } });
      await fill(nc, cache.bucket, 100, (i) => ({ hot: i }), { prefix: "hot." });
      const a = app(cache);
      for (let round = 0; round < 2; round++) {
        for (let i = 0; i < 100; i++) {
          const r = await a.request(`/v1/buckets/b/keys/hot.${i}`);
          assert.equal(r.status, 200);
          await r.body?.cancel();
        }
      }
      for (let batch = 0; batch < 60; batch++) {
        const got = await statuses(
          await Promise.all(
            Array.from(
              { length: 20 },
              (_, i) => a.request(`/v1/buckets/b/keys/never.${batch}.${i}`),
            ),
          ),
        );
        assert.deepEqual(got, { 404: 20 });
      }
      const resident = Array.from({ length: 100 }, (_, i) => cache.peek(`hot.${i}`))
        .filter((v) => v !== undefined).length;
      assert.equal(resident, 100, "every hot key is still resident");
      const s = cache.stats();
      assert.equal(s.evictions, 0, "no value was evicted");
      assert.equal(s.negativeEvictions, 1_200 - 100, "the negatives displaced each other");
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_cache_negative_evictions_total{bucket="b"}'), 1_100);
    });

    await t.step("misses in flight are capped: past the cap 503 overloaded at once", async () => {
      const cache = await open({ maxConcurrentMisses: 4 });
      const logged: RequestInfo[] = [];
      const refusals: string[] = [];
      const a = app(cache, {
        onRequest: (info) => logged.push(info),
        onRefused: ({ bound }) => refusals.push(bound),
      });
      const got = await statuses(
        await Promise.all(
          Array.from({ length: 20 }, (_, i) => a.request(`/v1/buckets/b/keys/absent.${i}`)),
        ),
      );
      assert.deepEqual(got, { 404: 4, 503: 16 });
      assert.equal(cache.stats().shedMisses, 16);
      assert.equal(cache.stats().fetches, 4, "a refused miss costs no KV read");
      assert.equal(refusals.filter((b) => b === "misses").length, 16);
      const shedLines = logged.filter((i) => i.status === 503);
      assert.equal(shedLines.length, 16);
      assert.ok(
        shedLines.every((i) => i.error === undefined),
        "a refusal is counted, not logged as a server error",
      );
      // Misses of one key share one fetch and are never refused.
      const same = await statuses(
        await Promise.all(
          Array.from({ length: 20 }, () => a.request("/v1/buckets/b/keys/again")),
        ),
      );
      assert.deepEqual(same, { 404: 20 });
      const shed = await Promise.all(
        Array.from({ length: 6 }, (_, i) => a.request(`/v1/buckets/b/keys/other.${i}`)),
      );
      const problem = shed.find((r) => r.status === 503)!;
      assert.equal(problem.headers.get("retry-after"), "1");
      assert.equal((await problem.json()).code, "overloaded");
      await statuses(shed);
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_cache_misses_shed_total{bucket="b"}'), 18);
    });

    await t.step(
      "replays are capped per client and in total, and end with their client",
      async () => {
        const cache = await open();
        await fill(nc, cache.bucket, 20, (i) => i);
        const a = app(cache, {
          limits: { maxReplays: 3, maxReplaysPerClient: 2 },
          clientOf: (r) => r.headers.get("x-test-client") ?? undefined,
        });
        const replay = (client: string) =>
          a.request("/v1/buckets/b/watch", {
            headers: { "last-event-id": "0", "x-test-client": client },
          });
        const a1 = await replay("a");
        const a2 = await replay("a");
        const a3 = await replay("a");
        assert.deepEqual([a1.status, a2.status, a3.status], [200, 200, 503]);
        assert.equal((await a3.json()).code, "overloaded");
        const b1 = await replay("b");
        const b2 = await replay("b");
        assert.deepEqual([b1.status, b2.status], [200, 503], "three replays in total");
        await b2.body?.cancel();
        // A live watch (no Last-Event-ID) is no replay.
        const live = await a.request("/v1/buckets/b/watch", { headers: { "x-test-client": "a" } });
        assert.equal(live.status, 200);
        const jsm = await jetstreamManager(nc);
        const consumers = async () => {
          let n = 0;
          for await (const _ of jsm.consumers.list(`KV_${cache.bucket}`)) n++;
          return n;
        };
        const before = await consumers();
        await a1.body!.cancel();
        await waitFor(async () => (await consumers()) === before - 1, {
          message: "the replay's consumer is gone with its client",
        });
        const again = await replay("a");
        assert.equal(again.status, 200, "its place is free");
        const m = await (await a.request("/metrics")).text();
        assert.equal(metric(m, 'kvedge_http_refused_total{bound="replays_per_client"}'), 1);
        assert.equal(metric(m, 'kvedge_http_refused_total{bound="replays"}'), 1);
        assert.equal(metric(m, 'kvedge_http_inflight{kind="replay"}'), 3);
        for (const r of [a2, b1, live, again]) await r.body?.cancel();
        assert.equal(
          metric(await (await a.request("/metrics")).text(), 'kvedge_http_inflight{kind="replay"}'),
          0,
        );
      },
    );

    await t.step("request headers are bounded in count and bytes: 431", async () => {
      const cache = await open();
      const a = app(cache, { limits: { maxHeaderCount: 20, maxHeaderBytes: 4_096 } });
      const many: Record<string, string> = {};
      for (let i = 0; i < 21; i++) many[`x-h${i}`] = "v";
      const r1 = await a.request("/healthz", { headers: many });
      assert.equal(r1.status, 431);
      assert.equal((await r1.json()).code, "headers_too_large");
      const r2 = await a.request("/v1/buckets/b/keys/k", {
        headers: { "x-big": "a".repeat(4_096) },
      });
      assert.equal(r2.status, 431);
      await r2.body?.cancel();
      const ok = await a.request("/healthz", { headers: { "x-small": "a".repeat(1_000) } });
      assert.equal(ok.status, 200);
      await ok.body?.cancel();
      const m = await (await a.request("/metrics")).text();
      assert.equal(metric(m, 'kvedge_http_refused_total{bound="headers"}'), 2);
    });

    await t.step("the request log carries at most 256 characters of a path", async () => {
      const cache = await open();
      const logged: RequestInfo[] = [];
      const a = app(cache, { onRequest: (info) => logged.push(info) });
      for (const path of ["/" + "x".repeat(20_000), "/v1/buckets/b/keys/" + "k".repeat(5_000)]) {
        const r = await a.request(path);
        assert.ok(r.status === 404 || r.status === 400, String(r.status));
        await r.body?.cancel();
      }
      assert.equal(logged.length, 2);
      for (const info of logged) {
        assert.ok(info.path.length <= 257, `logged ${info.path.length} characters`);
        assert.ok(info.path.endsWith("…"));
      }
    });
  } finally {
    for (const c of caches) await c.close().catch(() => {});
    await nc.close();
  }
});
