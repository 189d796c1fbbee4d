/**
 * A hit's response is built from parts kept per value and revision (body,
 * ETag, Last-Modified, a template response: `src/http/served_bucket.ts`,
 * `src/http/entry_response.ts`). Whatever is kept, a value that changed (a
 * new revision) must never be served with an older body, ETag,
 * Last-Modified or bookmark: written by another client, rewritten in place
 * through the app's own cache, written again unchanged, a primitive, a
 * codec's bytes, and after its template was dropped from the bounded set.
 */
import assert from "node:assert/strict";
import { type Cache, type Codec, type Entry, openCache } from "../../mod.ts";
import { createApp, type HttpApp } from "../../http.ts";
import { entryResponse } from "../../src/http/entry_response.ts";
import { ServedBucket, TEMPLATES_PER_BUCKET } from "../../src/http/served_bucket.ts";
import { startServer, uniqueBucket, waitFor } from "../_setup.ts";

interface Seen {
  status: number;
  etag: string | null;
  lastModified: string | null;
  bookmark: string | null;
  body: string;
}

async function get(app: HttpApp, path: string, headers: Record<string, string> = {}) {
  const res = await app.request(path, { headers });
  return {
    status: res.status,
    etag: res.headers.get("etag"),
    lastModified: res.headers.get("last-modified"),
    bookmark: res.headers.get("kv-bookmark"),
    body: await res.text(),
  } satisfies Seen;
}

const textCodec: Codec<string> = {
  encode: (s) => new TextEncoder().encode(s),
  decode: (b) => new TextDecoder().decode(b),
  contentType: "text/plain; charset=utf-8",
};

Deno.test("a hit never serves a changed value with the parts of an older revision", async (t) => {
  await using srv = await startServer();
  const caches: Cache<unknown>[] = [];
  const open = async <T = unknown>(bucket: string, codec?: Codec<T>): Promise<Cache<T>> => {
    const c = await openCache<T>({
      servers: srv.url,
      bucket,
      mode: "replica",
      create: { history: 1 },
      local: { maxItems: 10_000 },
      ...(codec === undefined ? {} : { codec }),
    });
    await c.ready({ timeoutMs: 10_000 });
    caches.push(c as Cache<unknown>);
    return c;
  };
  try {
    const bucket = uniqueBucket();
    const rawBucket = uniqueBucket();
    const served = await open(bucket);
    const writer = await open(bucket);
    const rawServed = await open<string>(rawBucket, textCodec);
    const rawWriter = await open<string>(rawBucket, textCodec);
    const app = createApp({
      buckets: { b: { cache: served }, raw: { cache: rawServed, codec: textCodec } },
    });

    /**
     * Reads `path` until it answers revision `rev`; every answer on the way
     * must pair its ETag with that revision's body (`bodies`).
     */
    const readUntil = async (path: string, rev: number, bodies: Map<string, string>) => {
      const want = `"${rev}"`;
      return await waitFor(async () => {
        const seen = await get(app, path);
        assert.equal(seen.status, 200);
        assert.ok(seen.etag !== null && bodies.has(seen.etag), `unknown ETag ${seen.etag}`);
        assert.equal(seen.body, bodies.get(seen.etag), `the body served with ETag ${seen.etag}`);
        return seen.etag === want && seen;
      }, { message: `GET ${path} answering revision ${rev}` });
    };

    await t.step("written by another client: each revision with its own body", async () => {
      const bodies = new Map<string, string>();
      for (let i = 0; i < 20; i++) {
        const value = { n: i, tags: ["a", String(i)] };
        const rev = await writer.set("k", value);
        bodies.set(`"${rev}"`, JSON.stringify(value));
        const seen = await readUntil("/v1/buckets/b/keys/k", rev, bodies);
        // Read again: the kept parts answer now.
        assert.deepEqual(await get(app, "/v1/buckets/b/keys/k"), seen);
        const created = (await served.getEntry("k"))!.createdMs;
        assert.equal(seen.lastModified, new Date(created).toUTCString());
      }
    });

    await t.step("the same value written again gets the new revision's ETag", async () => {
      const bodies = new Map<string, string>();
      const value = { same: true };
      for (let i = 0; i < 3; i++) {
        const rev = await writer.set("same", value);
        bodies.set(`"${rev}"`, JSON.stringify(value));
        await readUntil("/v1/buckets/b/keys/same", rev, bodies);
        await readUntil("/v1/buckets/b/keys/same", rev, bodies);
      }
    });

    await t.step("an object rewritten in place through the app's cache", async () => {
      // The store keeps the object given to set(): the same object at a new
      // revision must not meet the parts kept for the old one.
      const value = { n: 1 };
      const rev1 = await served.set("own", value);
      const first = await get(app, "/v1/buckets/b/keys/own");
      assert.equal(first.etag, `"${rev1}"`);
      assert.equal(first.body, '{"n":1}');
      value.n = 2;
      const rev2 = await served.set("own", value);
      const second = await get(app, "/v1/buckets/b/keys/own");
      assert.equal(second.etag, `"${rev2}"`);
      assert.equal(second.body, '{"n":2}');
    });

    await t.step("If-None-Match of an older revision: 200 with the new value", async () => {
      const rev1 = await writer.set("cond", { v: 1 });
      await readUntil("/v1/buckets/b/keys/cond", rev1, new Map([[`"${rev1}"`, '{"v":1}']]));
      const hit = await get(app, "/v1/buckets/b/keys/cond", { "if-none-match": `"${rev1}"` });
      assert.equal(hit.status, 304);
      assert.equal(hit.etag, `"${rev1}"`);
      const rev2 = await writer.set("cond", { v: 2 });
      const bodies = new Map([[`"${rev1}"`, '{"v":1}'], [`"${rev2}"`, '{"v":2}']]);
      await readUntil("/v1/buckets/b/keys/cond", rev2, bodies);
      const changed = await get(app, "/v1/buckets/b/keys/cond", { "if-none-match": `"${rev1}"` });
      assert.equal(changed.status, 200);
      assert.equal(changed.etag, `"${rev2}"`);
      assert.equal(changed.body, '{"v":2}');
      const same = await get(app, "/v1/buckets/b/keys/cond", { "if-none-match": `"${rev2}"` });
      assert.equal(same.status, 304);
    });

    await t.step("a primitive value and a codec's bytes change too", async () => {
      const bodies = new Map<string, string>();
      for (let i = 0; i < 3; i++) {
        const rev = await writer.set("num", i);
        bodies.set(`"${rev}"`, String(i));
        await readUntil("/v1/buckets/b/keys/num", rev, bodies);
      }
      for (let i = 0; i < 3; i++) {
        const rev = await rawWriter.set("text", `hello ${i}`);
        const want = `"${rev}"`;
        await waitFor(async () => {
          const seen = await get(app, "/v1/buckets/raw/keys/text");
          return seen.etag === want && seen.body === `hello ${i}`;
        }, { message: `raw text at revision ${rev}` });
        assert.equal((await get(app, "/v1/buckets/raw/keys/text")).body, `hello ${i}`);
      }
    });

    await t.step("a kept answer carries the bucket's current bookmark", async () => {
      const rev = await writer.set("mark", { m: 1 });
      const at = await readUntil(
        "/v1/buckets/b/keys/mark",
        rev,
        new Map([[`"${rev}"`, '{"m":1}']]),
      );
      assert.equal(at.bookmark, `b:${served.bookmark().revision(bucket)}`);
      // Another key moves the bucket on; the unchanged key's answer follows.
      const later = await writer.set("other", { o: 1 });
      await waitFor(async () => (await get(app, "/v1/buckets/b/keys/other")).status === 200);
      const again = await get(app, "/v1/buckets/b/keys/mark");
      assert.equal(again.etag, `"${rev}"`);
      assert.equal(again.bookmark, `b:${later}`);
    });

    await t.step("a value whose template was dropped from the bounded set", async () => {
      const n = TEMPLATES_PER_BUCKET + 16;
      let last = 0;
      let first = 0;
      for (let i = 0; i < n; i++) {
        last = await writer.set(`many.${i}`, { i });
        if (i === 0) first = last;
      }
      await waitFor(() => served.bookmark().revision(bucket) >= last);
      for (let i = 0; i < n; i++) {
        const seen = await get(app, `/v1/buckets/b/keys/many.${i}`);
        assert.equal(seen.body, JSON.stringify({ i }));
      }
      // many.0's template was dropped by the later ones: changed, it is served anew.
      const rev = await writer.set("many.0", { i: -1 });
      await readUntil(
        "/v1/buckets/b/keys/many.0",
        rev,
        new Map([[`"${rev}"`, '{"i":-1}'], [`"${first}"`, '{"i":0}']]),
      );
    });
  } finally {
    for (const c of caches) await c.close();
  }
});

Deno.test("a served bucket's kept parts and templates", async (t) => {
  await using srv = await startServer();
  const bucket = uniqueBucket();
  const cache = await openCache<unknown>({
    servers: srv.url,
    bucket,
    mode: "replica",
    create: { history: 1 },
    local: { maxItems: 10_000 },
  });
  try {
    await cache.ready({ timeoutMs: 10_000 });

    await t.step("the same object at a new revision gets new parts", async () => {
      // An own write may leave the caller's object in the store (when the
      // write's acknowledgement beats its echo from the watcher), so an
      // object set again after a change comes back at a new revision.
      const b = new ServedBucket("b", { cache });
      const value = { n: 1 };
      const at = (revision: number, createdMs: number): Entry<unknown> => ({
        key: "k",
        value,
        revision,
        createdMs,
        source: "hit",
        stale: false,
      });
      const first = entryResponse(b, at(7, 1_000), null, false, "b:7", undefined);
      assert.equal(first.headers.get("etag"), '"7"');
      assert.equal(await first.text(), '{"n":1}');
      assert.equal(
        await entryResponse(b, at(7, 1_000), null, false, "b:7", undefined).text(),
        '{"n":1}',
      );
      value.n = 2;
      const second = entryResponse(b, at(8, 2_000), null, false, "b:8", undefined);
      assert.equal(second.headers.get("etag"), '"8"');
      assert.equal(second.headers.get("last-modified"), new Date(2_000).toUTCString());
      assert.equal(second.headers.get("kv-bookmark"), "b:8");
      assert.equal(await second.text(), '{"n":2}');
      // Same revision, corrected creation time (a write's echo): Last-Modified follows.
      const echo = entryResponse(b, at(8, 5_000), null, false, "b:8", undefined);
      assert.equal(echo.headers.get("last-modified"), new Date(5_000).toUTCString());
      assert.equal(
        entryResponse(b, at(8, 5_000), '"7"', false, "b:8", undefined).status,
        200,
        "If-None-Match of the older revision",
      );
      assert.equal(entryResponse(b, at(8, 5_000), '"8"', false, "b:8", undefined).status, 304);
    });

    await t.step("at most TEMPLATES_PER_BUCKET templates, for the values read last", async () => {
      const n = TEMPLATES_PER_BUCKET + 100;
      for (let i = 0; i < n; i++) await cache.set(`k.${i}`, { i });
      const b = new ServedBucket("b", { cache });
      for (let i = 0; i < n; i++) {
        const e = (await cache.getEntry(`k.${i}`))!;
        const res = entryResponse(b, e, null, false, "", undefined);
        assert.equal(await res.text(), JSON.stringify({ i }));
      }
      let kept = 0;
      for (let i = 0; i < n; i++) {
        const parts = b.parts((await cache.getEntry(`k.${i}`))!);
        if (parts.template !== undefined) kept++;
        assert.equal(parts.template !== undefined, i >= n - TEMPLATES_PER_BUCKET, `k.${i}`);
      }
      assert.equal(kept, TEMPLATES_PER_BUCKET);
      // A value that gave its template up still answers, and keeps one again.
      const e0 = (await cache.getEntry("k.0"))!;
      assert.equal(await entryResponse(b, e0, null, false, "", undefined).text(), '{"i":0}');
      assert.notEqual(b.parts(e0).template, undefined);
    });
  } finally {
    await cache.close();
  }
});
