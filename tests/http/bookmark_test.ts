/**
 * Rule 8 over HTTP: `KV-Bookmark` on writes and reads, chained across two
 * edges (the second behind a proxy that delays its traffic), on the fast
 * path and Hono's alike; the opt-in cookie; bounded input; a watch that
 * starts at a bookmark.
 */
import assert from "node:assert/strict";
import { type Cache, type CacheOptions, openCache } from "../../mod.ts";
import { createApp } from "../../http.ts";
import { buildApp } from "../../src/http/app.ts";
import { startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { startProxy } from "../_proxy.ts";

const fast = {
  missTimeoutMs: 1_000,
  heartbeatMs: 500,
  connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
} satisfies Partial<CacheOptions<unknown>>;

const PAIRS = 200;
const KEYS = 20;

Deno.test("KV-Bookmark over HTTP (rule 8)", async (t) => {
  await using srv = await startServer();
  const bucket = uniqueBucket();
  await using proxy = startProxy(srv.port);
  const caches: Cache<unknown>[] = [];
  const open = async (servers: string, extra: Partial<CacheOptions<unknown>> = {}) => {
    const c = await openCache<unknown>({
      ...fast,
      servers,
      bucket,
      create: true,
      local: { maxItems: 1_000 },
      ...extra,
    });
    caches.push(c);
    await c.ready();
    return c;
  };
  try {
    const a = await open(srv.url);
    const writer = createApp({
      buckets: { [bucket]: { cache: a } },
      auth: { anonymousWrites: true },
    });
    const lagging = await open(proxy.url, { mode: "replica" });
    const readers = {
      fast: buildApp({ buckets: { [bucket]: { cache: lagging } } }, { fastPath: true }),
      hono: buildApp({ buckets: { [bucket]: { cache: lagging } } }, { fastPath: false }),
    };
    const put = async (key: string, value: number) => {
      const res = await writer.request(`/v1/buckets/${bucket}/keys/${key}`, {
        method: "PUT",
        body: JSON.stringify(value),
      });
      assert.ok(res.ok, `PUT ${key}: ${res.status}`);
      const { revision } = await res.json();
      const bm = res.headers.get("kv-bookmark");
      // The write's revision, or what the writing edge has applied if that is later.
      const m = /^([^:]+):(\d+)$/.exec(bm ?? "");
      assert.ok(m?.[1] === bucket && Number(m[2]) >= revision, `write bookmark ${bm} @${revision}`);
      return { revision: revision as number, bookmark: bm! };
    };
    for (let k = 0; k < KEYS; k++) await put(`k.${k}`, -1);
    await waitFor(() => lagging.peek(`k.${KEYS - 1}`) === -1);
    proxy.delay(40);

    for (const [path, app] of Object.entries(readers)) {
      await t.step(
        `${path} path: ${PAIRS} pairs, none older with the header, some without`,
        async () => {
          const run = async (withBookmark: boolean) => {
            let older = 0;
            for (let done = 0; done < PAIRS; done += KEYS) {
              await Promise.all(Array.from({ length: KEYS }, async (_, k) => {
                const key = `k.${k}`;
                const w = await put(key, done + k);
                const res = await app.request(`/v1/buckets/${bucket}/keys/${key}`, {
                  headers: withBookmark ? { "kv-bookmark": w.bookmark } : {},
                });
                assert.equal(res.status, 200);
                const rev = Number(res.headers.get("etag")!.replaceAll('"', ""));
                if (rev < w.revision) older++;
                else assert.equal(await res.json(), done + k);
                // Every answer carries a bookmark at least the one sent.
                const out = res.headers.get("kv-bookmark")!;
                const outRev = Number(out.split(":")[1]);
                assert.ok(!withBookmark || outRev >= w.revision, `answer bookmark ${out}`);
                if (!res.bodyUsed) await res.body?.cancel();
              }));
            }
            return older;
          };
          assert.ok(
            (await run(false)) > 0,
            "without the header the lagging edge answered old values",
          );
          assert.equal(await run(true), 0, "answers older than the bookmark");
        },
      );
    }

    await t.step("bookmarks are bounded input: 400 with a stable code", async () => {
      const get = (bm: string) =>
        readers.fast.request(`/v1/buckets/${bucket}/keys/k.0`, { headers: { "kv-bookmark": bm } });
      for (
        const [bm, code] of [
          ["nope", "bad_bookmark"],
          [`${bucket}:0`, "bad_bookmark"],
          [`${bucket}:1.5`, "bad_bookmark"],
          [`${bucket}:99999999999999999`, "bad_bookmark"],
          [`${bucket}:1,${bucket}:2`, "bad_bookmark"],
          [Array.from({ length: 17 }, (_, i) => `b${i}:1`).join(","), "bad_bookmark"],
          [`${bucket}:1,` + "x".repeat(2000) + ":1", "bad_bookmark"],
          [`${bucket}:900000000000`, "bookmark_ahead"],
        ] as [string, string][]
      ) {
        const res = await get(bm);
        assert.equal(res.status, 400, bm.slice(0, 40));
        assert.equal((await res.json()).code, code, bm.slice(0, 40));
      }
      // A write with a malformed bookmark is refused before anything is written.
      const before = (await a.getEntry("k.0"))!.revision;
      const res = await writer.request(`/v1/buckets/${bucket}/keys/k.0`, {
        method: "PUT",
        body: "1",
        headers: { "kv-bookmark": "nope" },
      });
      assert.equal(res.status, 400);
      await res.body?.cancel();
      // The writing edge holds its own writes at once: still the same revision.
      assert.equal((await a.getEntry("k.0"))!.revision, before, "nothing written");
    });

    await t.step("the cookie, when on, is honoured and moved forward", async () => {
      const withCookie = createApp({
        buckets: { [bucket]: { cache: lagging } },
        bookmarkCookie: "kvb",
      });
      const w = await put("c.1", 7);
      const res = await withCookie.request(`/v1/buckets/${bucket}/keys/c.1`, {
        headers: { cookie: `other=1; kvb=${encodeURIComponent(w.bookmark)}` },
      });
      assert.equal(res.status, 200);
      assert.equal(await res.json(), 7, "the cookie's bookmark was honoured");
      // Reaching it again with the same cookie does not set it again.
      assert.equal(res.headers.get("set-cookie"), null);
      const fresh = await withCookie.request(`/v1/buckets/${bucket}/keys/c.1`);
      const cookie = fresh.headers.get("set-cookie") ?? "";
      await fresh.body?.cancel();
      assert.match(cookie, /^kvb=[^;]+; Path=\/; SameSite=Lax; HttpOnly$/);
      const value = decodeURIComponent(cookie.slice(4, cookie.indexOf(";")));
      assert.ok(Number(value.split(":")[1]) >= w.revision, `cookie ${value}`);
      // Off (the default): the cookie is ignored and never set.
      const off = await readers.fast.request(`/v1/buckets/${bucket}/keys/c.1`, {
        headers: { cookie: "kvb=nope" },
      });
      assert.equal(off.status, 200);
      assert.equal(off.headers.get("set-cookie"), null);
      await off.body?.cancel();
    });

    await t.step("a watch starts after the bookmark's revision", async () => {
      const first = await put("w.1", 1);
      const second = await put("w.2", 2);
      const res = await readers.hono.request(`/v1/buckets/${bucket}/watch?prefix=w.`, {
        headers: { "kv-bookmark": first.bookmark },
      });
      assert.equal(res.status, 200);
      const reader = res.body!.getReader();
      // A stream that never sends the event ends the loop after 10 s.
      const timer = setTimeout(() => reader.cancel().catch(() => {}), 10_000);
      let text = "";
      const dec = new TextDecoder();
      while (!/\nid: \d+/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += dec.decode(value);
      }
      clearTimeout(timer);
      await reader.cancel();
      assert.equal(/\nid: (\d+)/.exec(text)?.[1], String(second.revision));
      const ahead = await readers.hono.request(`/v1/buckets/${bucket}/watch`, {
        headers: { "kv-bookmark": `${bucket}:900000000000` },
      });
      assert.equal(ahead.status, 400);
      assert.equal((await ahead.json()).code, "bookmark_ahead");
    });
  } finally {
    for (const c of caches) await c.close();
  }
});
