import assert from "node:assert/strict";
import { z } from "zod";
import { type Cache, type CacheOptions, openCache } from "../../mod.ts";
import { createApp, type CreateAppOptions, type HttpApp } from "../../http.ts";
import { startServer, uniqueBucket, waitFor } from "../_setup.ts";

interface SseBlock {
  event?: string;
  id?: string;
  data?: string;
  retry?: string;
  comment?: string;
}

/** Reads SSE blocks until `until` says stop (or the stream ends), then cancels the body. */
async function readSse(
  res: Response,
  until: (blocks: SseBlock[]) => boolean,
  timeoutMs = 10_000,
): Promise<SseBlock[]> {
  const reader = res.body!.getReader();
  const timer = setTimeout(() => reader.cancel().catch(() => {}), timeoutMs);
  const dec = new TextDecoder();
  const blocks: SseBlock[] = [];
  let buf = "";
  try {
    while (!until(blocks)) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n\n")) >= 0) {
        const block: SseBlock = {};
        for (const line of buf.slice(0, i).split("\n")) {
          if (line.startsWith(":")) block.comment = line.slice(1).trim();
          else {
            const at = line.indexOf(": ");
            const field = line.slice(0, at) as keyof SseBlock;
            block[field] = (block[field] === undefined ? "" : block[field] + "\n") +
              line.slice(at + 2);
          }
        }
        buf = buf.slice(i + 2);
        blocks.push(block);
      }
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return blocks;
}

async function problemOf(res: Response): Promise<Record<string, unknown>> {
  assert.equal(res.headers.get("content-type"), "application/problem+json");
  const p = await res.json();
  for (const field of ["type", "title", "status", "detail", "code"]) {
    assert.ok(field in p, `problem lacks "${field}": ${JSON.stringify(p)}`);
  }
  assert.equal(p.status, res.status);
  assert.equal(p.type, `urn:kvedge:problem:${p.code}`);
  return p;
}

const json = (value: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "PUT",
  body: JSON.stringify(value),
  headers: { "content-type": "application/json", ...headers },
});

Deno.test("HTTP facade over a real cache", async (t) => {
  await using srv = await startServer();
  const caches: Cache<unknown>[] = [];
  const open = async <T = unknown>(extra: Partial<CacheOptions<T>> = {}): Promise<Cache<T>> => {
    const c = await openCache<T>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: { history: 5 },
      local: { maxItems: 1000 },
      ...extra,
    } as CacheOptions<T>);
    await c.ready({ timeoutMs: 10_000 });
    caches.push(c as Cache<unknown>);
    return c;
  };
  /** One bucket named "b" served with open writes (unless `options` says otherwise). */
  const appWith = async (
    options: Partial<CreateAppOptions> = {},
    cacheOptions: Partial<CacheOptions<unknown>> = {},
  ): Promise<{ app: HttpApp; cache: Cache<unknown> }> => {
    const cache = await open(cacheOptions);
    const app = createApp({
      buckets: { b: { cache } },
      auth: { anonymousWrites: true },
      ...options,
    });
    return { app, cache };
  };

  try {
    await t.step("GET of an absent key is a 404 problem+json", async () => {
      const { app } = await appWith();
      const res = await app.request("/v1/buckets/b/keys/nope");
      assert.equal(res.status, 404);
      const p = await problemOf(res);
      assert.equal(p.code, "not_found");
      assert.equal(p.instance, "/v1/buckets/b/keys/nope");
    });

    await t.step(
      "PUT creates (201) then replaces (200), and GET serves it with headers",
      async () => {
        const { app } = await appWith();
        const r1 = await app.request("/v1/buckets/b/keys/user.1", json({ name: "Ada" }));
        assert.equal(r1.status, 201);
        const b1 = await r1.json();
        assert.equal(b1.key, "user.1");
        assert.ok(b1.revision > 0);
        assert.equal(r1.headers.get("etag"), `"${b1.revision}"`);
        assert.equal(r1.headers.get("location"), "/v1/buckets/b/keys/user.1");

        const r2 = await app.request("/v1/buckets/b/keys/user.1", json({ name: "Ada L." }));
        assert.equal(r2.status, 200);
        const b2 = await r2.json();
        assert.ok(b2.revision > b1.revision);

        const g = await app.request("/v1/buckets/b/keys/user.1");
        assert.equal(g.status, 200);
        assert.equal(g.headers.get("content-type"), "application/json");
        assert.equal(g.headers.get("etag"), `"${b2.revision}"`);
        assert.ok(["hit", "miss"].includes(g.headers.get("x-cache")!));
        assert.equal(g.headers.get("cache-control"), "no-cache");
        assert.ok(!Number.isNaN(Date.parse(g.headers.get("last-modified")!)));
        assert.deepEqual(await g.json(), { name: "Ada L." });
        const again = await app.request("/v1/buckets/b/keys/user.1");
        assert.equal(again.headers.get("x-cache"), "hit");
        await again.body?.cancel();
      },
    );

    await t.step("HEAD answers the GET headers without a body", async () => {
      const { app } = await appWith();
      await app.request("/v1/buckets/b/keys/h", json([1, 2, 3]));
      const res = await app.request("/v1/buckets/b/keys/h", { method: "HEAD" });
      assert.equal(res.status, 200);
      assert.ok(res.headers.get("etag"));
      assert.equal(await res.text(), "");
    });

    await t.step("X-Cache says miss for a key fetched from KV, then hit", async () => {
      const { app, cache } = await appWith();
      // Another client of the bucket writes; this edge has never seen the key.
      const writer = await open({ bucket: cache.bucket, create: undefined });
      await writer.set("elsewhere", { n: 1 });
      const first = await app.request("/v1/buckets/b/keys/elsewhere");
      assert.equal(first.headers.get("x-cache"), "miss");
      assert.deepEqual(await first.json(), { n: 1 });
      const second = await app.request("/v1/buckets/b/keys/elsewhere");
      assert.equal(second.headers.get("x-cache"), "hit");
      await second.body?.cancel();
    });

    await t.step("If-None-Match with the current ETag is a 304 without a body", async () => {
      const { app } = await appWith();
      const put = await app.request("/v1/buckets/b/keys/k", json({ v: 1 }));
      const etag = put.headers.get("etag")!;
      for (const inm of [etag, `W/${etag}`, `"999", ${etag}`, "*"]) {
        const res = await app.request("/v1/buckets/b/keys/k", {
          headers: { "if-none-match": inm },
        });
        assert.equal(res.status, 304, `If-None-Match: ${inm}`);
        assert.equal(res.headers.get("etag"), etag);
        assert.equal(await res.text(), "");
      }
      const other = await app.request("/v1/buckets/b/keys/k", {
        headers: { "if-none-match": '"999"' },
      });
      assert.equal(other.status, 200);
      await other.body?.cancel();
    });

    await t.step(
      "If-Match is a compare-and-set: 200 on the current revision, 412 otherwise",
      async () => {
        const { app } = await appWith();
        const put = await app.request("/v1/buckets/b/keys/cas", json(1));
        const { revision } = await put.json();
        const ok = await app.request(
          "/v1/buckets/b/keys/cas",
          json(2, { "if-match": `"${revision}"` }),
        );
        assert.equal(ok.status, 200);
        const next = (await ok.json()).revision;
        assert.ok(next > revision);
        const lost = await app.request(
          "/v1/buckets/b/keys/cas",
          json(3, { "if-match": `"${revision}"` }),
        );
        assert.equal(lost.status, 412);
        assert.equal((await problemOf(lost)).code, "precondition_failed");
        const weak = await app.request(
          "/v1/buckets/b/keys/cas",
          json(3, { "if-match": `W/"${next}"` }),
        );
        assert.equal(weak.status, 412, "a weak tag never matches If-Match");
        await weak.body?.cancel();
        const star = await app.request("/v1/buckets/b/keys/absent", json(1, { "if-match": "*" }));
        assert.equal(star.status, 412, "If-Match: * needs an existing key");
        await star.body?.cancel();
        const several = await app.request(
          "/v1/buckets/b/keys/cas",
          json(4, { "if-match": `"1", "${next}"` }),
        );
        assert.equal(several.status, 200);
        await several.body?.cancel();
        const bad = await app.request("/v1/buckets/b/keys/cas", json(5, { "if-match": "nope" }));
        assert.equal(bad.status, 400);
        assert.equal((await problemOf(bad)).code, "bad_request");
        const g = await app.request("/v1/buckets/b/keys/cas");
        assert.equal(await g.json(), 4);
      },
    );

    await t.step("If-None-Match: * creates only: 201 when absent, 412 when present", async () => {
      const { app } = await appWith();
      const first = await app.request(
        "/v1/buckets/b/keys/once",
        json("a", { "if-none-match": "*" }),
      );
      assert.equal(first.status, 201);
      await first.body?.cancel();
      const second = await app.request(
        "/v1/buckets/b/keys/once",
        json("b", { "if-none-match": "*" }),
      );
      assert.equal(second.status, 412);
      assert.equal((await problemOf(second)).code, "precondition_failed");
      assert.equal(await (await app.request("/v1/buckets/b/keys/once")).json(), "a");
    });

    await t.step("a value failing the bucket's schema is a 422 listing the issues", async () => {
      const schema = z.object({ name: z.string(), age: z.number().int() });
      const { app } = await appWith({}, { schema } as Partial<CacheOptions<unknown>>);
      const res = await app.request("/v1/buckets/b/keys/p", json({ name: 5 }));
      assert.equal(res.status, 422);
      const p = await problemOf(res);
      assert.equal(p.code, "schema");
      const issues = p.issues as { path: unknown[]; message: string }[];
      assert.ok(Array.isArray(issues) && issues.length >= 2, JSON.stringify(p));
      assert.ok(issues.some((i) => i.path[0] === "name"));
      const good = await app.request("/v1/buckets/b/keys/p", json({ name: "Ada", age: 36 }));
      assert.equal(good.status, 201);
      await good.body?.cancel();
    });

    await t.step("bodies past maxBodyBytes are a 413, with or without Content-Length", async () => {
      const { app } = await appWith({ limits: { maxBodyBytes: 64 } });
      const big = JSON.stringify("x".repeat(100));
      const declared = await app.request("/v1/buckets/b/keys/big", { method: "PUT", body: big });
      assert.equal(declared.status, 413);
      assert.equal((await problemOf(declared)).code, "too_large");

      // A chunked body: no Content-Length at all, the reader must count.
      const chunks = (n: number) =>
        new ReadableStream<Uint8Array>({
          start(c) {
            c.enqueue(new TextEncoder().encode('"'));
            for (let i = 0; i < n; i++) c.enqueue(new TextEncoder().encode("xxxxxxxxxx"));
            c.enqueue(new TextEncoder().encode('"'));
            c.close();
          },
        });
      const req = new Request("http://localhost/v1/buckets/b/keys/big", {
        method: "PUT",
        body: chunks(10),
      });
      assert.equal(req.headers.get("content-length"), null);
      const chunked = await app.request(req);
      assert.equal(chunked.status, 413);
      assert.equal((await problemOf(chunked)).code, "too_large");

      // A Content-Length that lies low does not help either.
      const lying = await app.request(
        new Request("http://localhost/v1/buckets/b/keys/big", {
          method: "PUT",
          body: chunks(10),
          headers: { "content-length": "3" },
        }),
      );
      assert.equal(lying.status, 413);
      await lying.body?.cancel();

      const small = await app.request(
        new Request("http://localhost/v1/buckets/b/keys/small", { method: "PUT", body: chunks(2) }),
      );
      assert.equal(small.status, 201);
      await small.body?.cancel();
    });

    await t.step("a body that is not JSON is a 400 bad_request", async () => {
      const { app } = await appWith();
      for (const body of ["{nope", "", "\xff"]) {
        const res = await app.request("/v1/buckets/b/keys/j", { method: "PUT", body });
        assert.equal(res.status, 400);
        assert.equal((await problemOf(res)).code, "bad_request");
      }
    });

    await t.step("keys are validated after percent-decoding (400 bad_key)", async () => {
      const { app } = await appWith();
      const bad = [
        "a..b",
        "a%2E%2Eb",
        ".a",
        "a.",
        "a%20b",
        "a*",
        "a%3E",
        "%E2%9C%93",
        "caf%C3%A9",
        "a%00b",
        "%ZZ",
        "x".repeat(513),
      ];
      for (const key of bad) {
        const res = await app.request(`/v1/buckets/b/keys/${key}`);
        assert.equal(res.status, 400, `key ${key}`);
        assert.equal((await problemOf(res)).code, "bad_key");
      }
      // "/" is a key character; in a path it must be sent as %2F.
      const put = await app.request("/v1/buckets/b/keys/dir%2Ffile", json(1));
      assert.equal(put.status, 201);
      assert.equal(put.headers.get("location"), "/v1/buckets/b/keys/dir%2Ffile");
      await put.body?.cancel();
      const get = await app.request("/v1/buckets/b/keys/dir%2Ffile");
      assert.equal(get.status, 200);
      assert.equal(await get.json(), 1);
      const raw = await app.request("/v1/buckets/b/keys/dir/file");
      assert.equal(raw.status, 404, "an unencoded / is another route");
      await raw.body?.cancel();
    });

    await t.step(
      "only configured buckets are served (404), read-only ones refuse writes (405)",
      async () => {
        const cache = await open();
        const app = createApp({
          buckets: { ro: { cache, readOnly: true }, view: { cache: cache.readonly() } },
          auth: { anonymousWrites: true },
        });
        const unknown = await app.request("/v1/buckets/other/keys/a");
        assert.equal(unknown.status, 404);
        assert.equal((await problemOf(unknown)).code, "not_found");
        for (const bucket of ["ro", "view"]) {
          for (const init of [json(1), { method: "DELETE" }]) {
            const res = await app.request(`/v1/buckets/${bucket}/keys/a`, init);
            assert.equal(res.status, 405, `${init.method} on ${bucket}`);
            assert.equal(res.headers.get("allow"), "GET, HEAD");
            assert.equal((await problemOf(res)).code, "method_not_allowed");
          }
        }
        await cache.set("a", 7);
        const read = await app.request("/v1/buckets/ro/keys/a");
        assert.equal(await read.json(), 7);
      },
    );

    await t.step("auth: 401 without a token, 403 with a read token on a write", async () => {
      const { app } = await appWith({ auth: { readTokens: ["r-tok"], writeTokens: ["w-tok"] } });
      const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

      const none = await app.request("/v1/buckets/b/keys/a");
      assert.equal(none.status, 401);
      assert.match(none.headers.get("www-authenticate")!, /^Bearer realm="kvedge"/);
      assert.equal((await problemOf(none)).code, "unauthorized");
      const wrong = await app.request("/v1/buckets/b/keys/a", { headers: bearer("nope") });
      assert.equal(wrong.status, 401);
      const wrongBody = await wrong.text();
      assert.ok(!wrongBody.includes("nope") && !wrongBody.includes("r-tok"), "tokens never echoed");
      const basic = await app.request("/v1/buckets/b/keys/a", {
        headers: { authorization: "Basic eDp5" },
      });
      assert.equal(basic.status, 401);
      await basic.body?.cancel();

      const readOk = await app.request("/v1/buckets/b/keys/a", { headers: bearer("r-tok") });
      assert.equal(readOk.status, 404, "a read token reads (the key is absent)");
      await readOk.body?.cancel();

      const writeWithRead = await app.request("/v1/buckets/b/keys/a", {
        ...json(1),
        headers: bearer("r-tok"),
      });
      assert.equal(writeWithRead.status, 403);
      assert.equal((await problemOf(writeWithRead)).code, "forbidden");
      const writeNone = await app.request("/v1/buckets/b/keys/a", json(1));
      assert.equal(writeNone.status, 401);
      await writeNone.body?.cancel();
      const write = await app.request("/v1/buckets/b/keys/a", {
        ...json(1),
        headers: bearer("w-tok"),
      });
      assert.equal(write.status, 201);
      await write.body?.cancel();
      const readWithWrite = await app.request("/v1/buckets/b/keys/a", { headers: bearer("w-tok") });
      assert.equal(readWithWrite.status, 200, "a write token also reads");
      await readWithWrite.body?.cancel();
      const health = await app.request("/healthz");
      assert.equal(health.status, 200, "health needs no token");
      await health.body?.cancel();
      const metrics = await app.request("/metrics");
      assert.equal(metrics.status, 401, "metrics need the read token");
      await metrics.body?.cancel();
    });

    await t.step(
      "with no write token configured, writes are refused (403) unless anonymous",
      async () => {
        const cache = await open();
        const app = createApp({ buckets: { b: { cache } } });
        const res = await app.request("/v1/buckets/b/keys/a", json(1));
        assert.equal(res.status, 403);
        assert.equal((await problemOf(res)).code, "forbidden");
        const read = await app.request("/v1/buckets/b/keys/a");
        assert.equal(read.status, 404, "reads stay open");
        await read.body?.cancel();
      },
    );

    await t.step("DELETE honours If-Match and leaves the key absent", async () => {
      const { app } = await appWith();
      const { revision } = await (await app.request("/v1/buckets/b/keys/d", json(1))).json();
      const stale = await app.request("/v1/buckets/b/keys/d", {
        method: "DELETE",
        headers: { "if-match": `"${revision + 100}"` },
      });
      assert.equal(stale.status, 412);
      await stale.body?.cancel();
      const del = await app.request("/v1/buckets/b/keys/d", {
        method: "DELETE",
        headers: { "if-match": `"${revision}"` },
      });
      assert.equal(del.status, 200);
      assert.ok((await del.json()).revision > revision);
      const gone = await app.request("/v1/buckets/b/keys/d");
      assert.equal(gone.status, 404);
      await gone.body?.cancel();
      await app.request("/v1/buckets/b/keys/p", json(2));
      const purge = await app.request("/v1/buckets/b/keys/p?purge=true", { method: "DELETE" });
      assert.equal(purge.status, 200);
      await purge.body?.cancel();
      const hist = await app.request("/v1/buckets/b/keys/p/history");
      const h = await hist.json();
      assert.deepEqual(h.history.map((e: { operation: string }) => e.operation), ["PURGE"]);
    });

    await t.step("listing pages through keys in sorted order with an opaque cursor", async () => {
      const { app, cache } = await appWith();
      const keys = ["b.3", "a.1", "b.1", "c", "b.2", "b.10"];
      for (const k of keys) await cache.set(k, k);
      await cache.delete("c");
      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const url: string = `/v1/buckets/b/keys?limit=2${cursor ? `&cursor=${cursor}` : ""}`;
        const res = await app.request(url);
        assert.equal(res.status, 200);
        const body: { keys: string[]; cursor: string | null } = await res.json();
        assert.ok(body.keys.length <= 2);
        seen.push(...body.keys);
        cursor = body.cursor;
        pages++;
      } while (cursor !== null && pages < 10);
      assert.deepEqual(seen, ["a.1", "b.1", "b.10", "b.2", "b.3"]);
      const prefixed = await (await app.request("/v1/buckets/b/keys?prefix=b.1")).json();
      assert.deepEqual(prefixed.keys, ["b.1", "b.10"]);
      for (
        const q of [
          "limit=0",
          "limit=abc",
          "limit=100000",
          "cursor=!!",
          "cursor=Zm9vLi4=",
          "prefix=a%20",
        ]
      ) {
        const res = await app.request(`/v1/buckets/b/keys?${q}`);
        assert.equal(res.status, 400, q);
        assert.equal((await problemOf(res)).code, "bad_request");
      }
    });

    await t.step("history lists a key's revisions oldest first; none is a 404", async () => {
      const { app, cache } = await appWith();
      const r1 = await cache.set("h", 1);
      const r2 = await cache.set("h", 2);
      const res = await app.request("/v1/buckets/b/keys/h/history");
      assert.equal(res.status, 200);
      const body = await res.json();
      assert.deepEqual(
        body.history.map((e: { revision: number; value: unknown }) => [e.revision, e.value]),
        [[r1, 1], [r2, 2]],
      );
      const none = await app.request("/v1/buckets/b/keys/never/history");
      assert.equal(none.status, 404);
      await none.body?.cancel();
    });

    await t.step("watch streams changes as SSE and resumes after Last-Event-ID", async () => {
      const { app, cache } = await appWith({ limits: { sseHeartbeatMs: 50 } });
      const r1 = await cache.set("w.a", 1);
      const r2 = await cache.set("w.b", 2);
      await cache.delete("w.a");
      await cache.set("other", 0);
      const res = await app.request("/v1/buckets/b/watch?prefix=w.", {
        headers: { "last-event-id": String(r1) },
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("content-type"), "text/event-stream; charset=utf-8");
      const blocks = await readSse(
        res,
        (b) => b.filter((x) => x.id).length >= 2 && b.some((x) => x.comment === "hb"),
      );
      assert.equal(blocks[0]!.retry, "2000");
      const events = blocks.filter((b) => b.id !== undefined);
      assert.deepEqual(events.map((e) => e.event), ["put", "del"]);
      assert.equal(events[0]!.id, String(r2), "replay starts after Last-Event-ID");
      const d0 = JSON.parse(events[0]!.data!);
      assert.deepEqual([d0.key, d0.revision, d0.operation, d0.value], ["w.b", r2, "PUT", 2]);
      const d1 = JSON.parse(events[1]!.data!);
      assert.deepEqual([d1.key, d1.operation], ["w.a", "DEL"]);
      assert.ok(blocks.some((b) => b.comment === "hb"), "heartbeat comments are sent");

      // Live (no Last-Event-ID): only changes after the stream opened.
      const live = await app.request("/v1/buckets/b/watch");
      const reading = readSse(live, (b) => b.some((x) => x.id !== undefined));
      const r3 = await cache.set("w.c", 3);
      const got = (await reading).filter((b) => b.id !== undefined);
      assert.equal(got[0]!.id, String(r3));
      await waitFor(async () => {
        const s = await (await app.request("/v1/stats")).json();
        return s.sse.open === 0;
      }, { message: "streams are released after the client cancels" });

      const bad = await app.request("/v1/buckets/b/watch", { headers: { "last-event-id": "x" } });
      assert.equal(bad.status, 400);
      await bad.body?.cancel();
    });

    await t.step("past maxSseStreams a watch is a 503 too_many_streams", async () => {
      const { app } = await appWith({ limits: { maxSseStreams: 1 } });
      const first = await app.request("/v1/buckets/b/watch");
      assert.equal(first.status, 200);
      const second = await app.request("/v1/buckets/b/watch");
      assert.equal(second.status, 503);
      assert.ok(second.headers.get("retry-after"));
      assert.equal((await problemOf(second)).code, "too_many_streams");
      await first.body!.cancel();
      const third = await app.request("/v1/buckets/b/watch");
      assert.equal(third.status, 200, "a closed stream frees its slot");
      await third.body!.cancel();
    });

    await t.step("a client that does not read is disconnected when its buffer fills", async () => {
      const { app, cache } = await appWith({ limits: { sseBufferSize: 4 } });
      const res = await app.request("/v1/buckets/b/watch");
      for (let i = 0; i < 10; i++) await cache.set(`s${i}`, i);
      await waitFor(async () => {
        const s = await (await app.request("/v1/stats")).json();
        return s.sse.slowClients === 1 && s.sse.open === 0;
      }, { message: "slow client disconnected" });
      await assert.rejects(res.body!.getReader().read(), "the stream errors");
    });

    await t.step("aborting the app's signal ends open streams", async () => {
      const shutdown = new AbortController();
      const { app } = await appWith({ signal: shutdown.signal });
      const res = await app.request("/v1/buckets/b/watch");
      const reading = readSse(res, () => false);
      shutdown.abort();
      const blocks = await reading;
      assert.equal(blocks[0]!.retry, "2000", "the stream ended cleanly after its first field");
    });

    await t.step("ops: healthz, readyz, stats and Prometheus metrics", async () => {
      const cache = await open();
      const other = await open();
      const app = createApp({
        buckets: { one: { cache }, two: { cache: other } },
        auth: { anonymousWrites: true },
      });
      const h = await app.request("/healthz");
      assert.deepEqual(await h.json(), { status: "ok" });
      const ready = await app.request("/readyz");
      assert.equal(ready.status, 200);
      assert.equal((await ready.json()).buckets.one.state, "synced");

      await app.request("/v1/buckets/one/keys/m", json(1));
      (await app.request("/v1/buckets/one/keys/m")).body?.cancel();
      (await app.request("/v1/buckets/one/keys/m")).body?.cancel();
      const m = await app.request("/metrics");
      assert.match(m.headers.get("content-type")!, /^text\/plain; version=0\.0\.4/);
      const text = await m.text();
      assert.match(text, /^kvedge_cache_hits_total\{bucket="one"\} [1-9]/m);
      assert.match(text, /^kvedge_cache_entries\{bucket="two"\} 0$/m);
      assert.match(text, /^kvedge_cache_state\{bucket="one",state="synced"\} 1$/m);
      assert.match(
        text,
        /^kvedge_http_requests_total\{method="GET",route="\/v1\/buckets\/:bucket\/keys\/:key",status="200"\} 2$/m,
      );
      assert.match(
        text,
        /^kvedge_http_request_duration_seconds_count\{method="PUT",route="\/v1\/buckets\/:bucket\/keys\/:key"\} 1$/m,
      );
      assert.match(text, /kvedge_watcher_lag_revisions\{bucket="one"\}/);
      const stats = await (await app.request("/v1/stats")).json();
      assert.ok(stats.buckets.one.stats.hits >= 1);
      assert.equal(stats.buckets.two.status.state, "synced");
      const list = await (await app.request("/v1/buckets")).json();
      assert.deepEqual(list.buckets.map((b: { name: string }) => b.name), ["one", "two"]);

      await other.close();
      const notReady = await app.request("/readyz");
      assert.equal(notReady.status, 503);
      const p = await problemOf(notReady);
      assert.equal(p.code, "unavailable");
      assert.match(String(p.detail), /bucket "two" is closed/);
    });

    await t.step(
      "wrong methods are 405 with Allow, OPTIONS lists them, unknown routes 404",
      async () => {
        const { app } = await appWith();
        const post = await app.request("/v1/buckets/b/keys/a", { method: "POST", body: "1" });
        assert.equal(post.status, 405);
        assert.equal(post.headers.get("allow"), "GET, HEAD, PUT, DELETE");
        assert.equal((await problemOf(post)).code, "method_not_allowed");
        const patch = await app.request("/metrics", { method: "PATCH" });
        assert.equal(patch.status, 405);
        await patch.body?.cancel();
        const options = await app.request("/v1/buckets/b/keys/a", { method: "OPTIONS" });
        assert.equal(options.status, 204);
        assert.equal(options.headers.get("allow"), "GET, HEAD, PUT, DELETE");
        const nowhere = await app.request("/v2/anything");
        assert.equal(nowhere.status, 404);
        assert.equal((await problemOf(nowhere)).code, "not_found");
      },
    );

    await t.step("CORS reflects only allowed origins and always varies on Origin", async () => {
      const { app } = await appWith({ cors: { origins: ["https://app.example"] } });
      await app.request("/v1/buckets/b/keys/c", json(1));
      const ok = await app.request("/v1/buckets/b/keys/c", {
        headers: { origin: "https://app.example" },
      });
      assert.equal(ok.headers.get("access-control-allow-origin"), "https://app.example");
      assert.match(ok.headers.get("access-control-expose-headers")!, /ETag/);
      assert.match(ok.headers.get("vary")!, /Origin/);
      await ok.body?.cancel();
      const evil = await app.request("/v1/buckets/b/keys/c", {
        headers: { origin: "https://evil.example" },
      });
      assert.equal(evil.headers.get("access-control-allow-origin"), null);
      assert.match(evil.headers.get("vary")!, /Origin/);
      await evil.body?.cancel();
      const pre = await app.request("/v1/buckets/b/keys/c", {
        method: "OPTIONS",
        headers: { origin: "https://app.example", "access-control-request-method": "PUT" },
      });
      assert.equal(pre.status, 204);
      assert.match(pre.headers.get("access-control-allow-methods")!, /PUT/);
      assert.match(pre.headers.get("access-control-allow-headers")!, /If-Match/);
      const err = await app.request("/v1/buckets/nope/keys/c", {
        headers: { origin: "https://app.example" },
      });
      assert.equal(err.status, 404);
      assert.equal(
        err.headers.get("access-control-allow-origin"),
        "https://app.example",
        "errors too",
      );
      await err.body?.cancel();
    });

    await t.step(
      "with NATS down: resident keys are served stale, misses are 503 with Retry-After",
      async () => {
        await using own = await startServer();
        const cache = await openCache<unknown>({
          servers: own.url,
          bucket: uniqueBucket(),
          create: true,
          local: { maxItems: 100 },
          missTimeoutMs: 300,
          connectOptions: { reconnectTimeWait: 50 },
        });
        try {
          await cache.ready({ timeoutMs: 10_000 });
          const app = createApp({ buckets: { b: { cache } }, auth: { anonymousWrites: true } });
          const strict = createApp({ buckets: { b: { cache } }, readiness: { maxStaleMs: 0 } });
          await app.request("/v1/buckets/b/keys/kept", json({ v: 1 }));
          await own.stop();
          await waitFor(() => !cache.status().connected, { message: "cache notices the outage" });
          await waitFor(() => cache.status().state === "stale", { message: "cache turns stale" });
          const ready = await app.request("/readyz");
          assert.equal(ready.status, 200, "stale is ready by default: disconnected is not down");
          assert.equal((await ready.json()).buckets.b.state, "stale");
          await waitFor(() => Date.now() > cache.status().since);
          const notReady = await strict.request("/readyz");
          assert.equal(notReady.status, 503, "past maxStaleMs a stale bucket is not ready");
          assert.match(String((await problemOf(notReady)).detail), /stale for/);
          const stale = await app.request("/v1/buckets/b/keys/kept");
          assert.equal(stale.status, 200);
          assert.equal(stale.headers.get("x-cache"), "stale");
          assert.deepEqual(await stale.json(), { v: 1 });
          const miss = await app.request("/v1/buckets/b/keys/other");
          assert.equal(miss.status, 503);
          assert.equal(miss.headers.get("retry-after"), "1");
          const p = await problemOf(miss);
          assert.equal(p.code, "unavailable");
          assert.ok(!String(p.detail).includes("nats://"), "no NATS internals in the detail");
          const write = await app.request("/v1/buckets/b/keys/kept", json(2));
          assert.equal(write.status, 503);
          await write.body?.cancel();
        } finally {
          await cache.close();
        }
      },
    );
    await t.step(
      "a write the edge's NATS credentials forbid is a 403 upstream_forbidden",
      async () => {
        const bucket = uniqueBucket();
        await using guarded = await startServer({
          config: `authorization {
  users = [{
    user: edge, password: edgepw,
    permissions: {
      publish: { allow: ">", deny: "$KV.${bucket}.locked.>" },
      subscribe: { allow: ">" }
    }
  }]
}`,
        });
        const cache = await openCache<unknown>({
          servers: guarded.url,
          connectOptions: { user: "edge", pass: "edgepw" },
          bucket,
          create: true,
          local: { maxItems: 100 },
        });
        try {
          await cache.ready({ timeoutMs: 10_000 });
          const app = createApp({ buckets: { b: { cache } }, auth: { anonymousWrites: true } });
          const ok = await app.request("/v1/buckets/b/keys/open.a", json(1));
          assert.equal(ok.status, 201);
          await ok.body?.cancel();
          const denied = await app.request("/v1/buckets/b/keys/locked.a", json(1));
          assert.equal(denied.status, 403);
          const p = await problemOf(denied);
          assert.equal(p.code, "upstream_forbidden");
          assert.ok(!String(p.detail).includes("$KV"), "no NATS subjects in the detail");
        } finally {
          await cache.close();
        }
      },
    );
  } finally {
    for (const c of caches) await c.close();
  }
});
