/**
 * The HTTP facade under hostile or careless clients (issue #11, items 6, 7,
 * 10, 11, 12, 14, 15): each step names the item it covers.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { type Cache, type CacheOptions, jsonCodec, openCache } from "../../mod.ts";
import { createApp, type CreateAppOptions, type HttpApp } from "../../http.ts";
import { startServer, uniqueBucket, waitFor } from "../_setup.ts";

const json = (value: unknown, headers: Record<string, string> = {}): RequestInit => ({
  method: "PUT",
  body: typeof value === "string" ? value : JSON.stringify(value),
  headers: { "content-type": "application/json", ...headers },
});

/** `depth` nested arrays around 1, as JSON text, built without recursion. */
function nested(depth: number): string {
  return "[".repeat(depth) + "1" + "]".repeat(depth);
}

/**
 * `depth` nested objects `{"1":…}` around 1, as JSON text. V8 re-serialises
 * plain deep values on an iterative fast path; index-like keys take its
 * recursive slow path, which overflows the stack.
 */
function nestedObjects(depth: number): string {
  return '{"1":'.repeat(depth) + "1" + "}".repeat(depth);
}

/** Reads SSE text until `until(text)` holds or the stream ends, then cancels. */
async function readSseText(res: Response, until: (text: string) => boolean): Promise<string> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => reader.cancel().catch(() => {}), 30_000);
  try {
    while (!until(text)) {
      const { done, value } = await reader.read();
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
    await reader.cancel().catch(() => {});
  }
  return text;
}

Deno.test("HTTP facade under hostile clients", async (t) => {
  await using srv = await startServer();
  const caches: Cache<unknown>[] = [];
  const open = async (extra: Partial<CacheOptions<unknown>> = {}): Promise<Cache<unknown>> => {
    const c = await openCache<unknown>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: { history: 5 },
      local: { maxItems: 1000 },
      ...extra,
    } as CacheOptions<unknown>);
    await c.ready({ timeoutMs: 10_000 });
    caches.push(c);
    return c;
  };
  const appWith = async (
    options: Partial<CreateAppOptions> = {},
  ): Promise<{ app: HttpApp; cache: Cache<unknown> }> => {
    const cache = await open();
    const app = createApp({
      buckets: { b: { cache } },
      auth: { anonymousWrites: true },
      ...options,
    });
    return { app, cache };
  };

  try {
    await t.step("#6: PUT does not count as a cache hit or miss", async () => {
      const { app, cache } = await appWith();
      (await app.request("/v1/buckets/b/keys/k", json({ v: 1 }))).body?.cancel();
      const before = cache.stats();
      for (let i = 0; i < 5; i++) {
        const r = await app.request("/v1/buckets/b/keys/k", json({ v: i }));
        assert.ok(r.status === 200 || r.status === 201, `PUT answers ${r.status}`);
        await r.body?.cancel();
      }
      const after = cache.stats();
      assert.equal(after.hits, before.hits, "writes are not hits");
      assert.equal(after.staleHits, before.staleHits, "writes are not stale hits");
      assert.equal(after.misses, before.misses, "writes are not misses");
      const metrics = await (await app.request("/metrics")).text();
      assert.match(
        metrics,
        new RegExp(`^kvedge_cache_hits_total\\{bucket="b"\\} ${after.hits}$`, "m"),
      );
    });

    await t.step("#7: the exported jsonCodec() keeps SSE and history as JSON", async () => {
      const cache = await open();
      const app = createApp({
        buckets: { b: { cache, codec: jsonCodec() } },
        auth: { anonymousWrites: true },
      });
      (await app.request("/v1/buckets/b/keys/k", json({ n: 1 }))).body?.cancel();
      const h = await (await app.request("/v1/buckets/b/keys/k/history")).json();
      assert.deepEqual(h.history[0].value, { n: 1 });
      assert.equal(h.history[0].valueBase64, undefined);
      const watch = await app.request("/v1/buckets/b/watch", {
        headers: { "last-event-id": "0" },
      });
      const text = await readSseText(watch, (s) => s.includes('"key":"k"'));
      assert.match(text, /"value":\{"n":1\}/);
      assert.doesNotMatch(text, /valueBase64/);
      const g = await app.request("/v1/buckets/b/keys/k");
      assert.equal(g.headers.get("content-type"), "application/json");
    });

    await t.step("#10: the Host header cannot reroute a request", async () => {
      const demo = await open();
      const other = await open();
      const app = createApp({
        buckets: { demo: { cache: demo }, other: { cache: other } },
        auth: { anonymousWrites: true },
      });
      await using server = Deno.serve(
        { hostname: "127.0.0.1", port: 0, onListen() {} },
        app.fetch,
      );
      const port = server.addr.port;
      const raw = async (head: string, body = ""): Promise<string> => {
        const conn = await Deno.connect({ hostname: "127.0.0.1", port });
        try {
          const bytes = new TextEncoder().encode(
            head + `\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n` + body,
          );
          await conn.write(bytes);
          let text = "";
          const buf = new Uint8Array(65536);
          for (;;) {
            const n = await conn.read(buf);
            if (n === null) break;
            text += new TextDecoder().decode(buf.subarray(0, n));
          }
          return text;
        } finally {
          try {
            conn.close();
          } catch { /* closed by the server */ }
        }
      };
      const answer = await raw(
        "PUT /v1/buckets/demo/keys/mine HTTP/1.1\r\nhost: x/v1/buckets/other/keys/stolen?",
        '{"v":1}',
      );
      assert.match(answer, /^HTTP\/1\.1 400 /, answer.slice(0, 200));
      assert.equal(
        await other.getEntry("stolen"),
        undefined,
        "nothing written to the other bucket",
      );
      const good = await raw(
        `PUT /v1/buckets/demo/keys/mine HTTP/1.1\r\nhost: 127.0.0.1:${port}`,
        '{"v":2}',
      );
      assert.match(good, /^HTTP\/1\.1 201 /, good.slice(0, 200));
      assert.deepEqual((await demo.getEntry("mine"))?.value, { v: 2 });
      for (const host of ["a b", "x#y", "u@h", "h/", "[::1", "h:99999x"]) {
        const r = await raw(`GET /healthz HTTP/1.1\r\nhost: ${host}`);
        assert.match(r, /^HTTP\/1\.1 400 /, `Host ${host}: ${r.slice(0, 100)}`);
      }
      for (const host of ["localhost", "[::1]:8080", "edge.example.com:443", "127.0.0.1"]) {
        const r = await raw(`GET /healthz HTTP/1.1\r\nhost: ${host}`);
        assert.match(r, /^HTTP\/1\.1 200 /, `Host ${host}: ${r.slice(0, 100)}`);
      }
    });

    await t.step("#14: a body over NATS max_payload is a 413 that says why", async () => {
      await using small = await startServer({ config: "max_payload: 65536" });
      const cache = await openCache<unknown>({
        servers: small.url,
        bucket: uniqueBucket(),
        create: true,
        local: { maxItems: 10 },
      });
      caches.push(cache);
      await cache.ready({ timeoutMs: 10_000 });
      const app = createApp({
        buckets: { b: { cache } },
        auth: { anonymousWrites: true },
        limits: { maxBodyBytes: 65536 },
      });
      // Under maxBodyBytes but over the server's max_payload once NATS adds
      // its headers.
      const big = JSON.stringify("x".repeat(65_520));
      const res = await app.request("/v1/buckets/b/keys/big", json(big));
      assert.equal(res.status, 413);
      const p = await res.json();
      assert.equal(p.code, "too_large");
      assert.match(String(p.detail), /max_payload/);
      assert.equal(res.headers.get("retry-after"), null, "not retryable");
    });

    await t.step("#15: /readyz names buckets only to readers with a token", async () => {
      const cache = await open();
      const app = createApp({
        buckets: { secretbucket: { cache } },
        auth: { readTokens: ["r3ad"], writeTokens: ["wr1te"] },
      });
      const anon = await app.request("/readyz");
      assert.equal(anon.status, 200);
      const anonText = await anon.text();
      assert.ok(!anonText.includes("secretbucket"), anonText);
      const authed = await app.request("/readyz", { headers: { authorization: "Bearer r3ad" } });
      assert.equal((await authed.json()).buckets.secretbucket.state, "synced");
      await cache.close();
      const down = await app.request("/readyz");
      assert.equal(down.status, 503);
      const downText = await down.text();
      assert.ok(!downText.includes("secretbucket"), downText);
      const downAuthed = await app.request("/readyz", {
        headers: { authorization: "Bearer wr1te" },
      });
      assert.match(await downAuthed.text(), /secretbucket/);
    });

    await t.step("#11: nesting is bounded on write, 422 with the limit", async () => {
      const { app } = await appWith({ limits: { maxJsonDepth: 32 } });
      const ok = await app.request("/v1/buckets/b/keys/ok", json(nested(32)));
      assert.equal(ok.status, 201);
      await ok.body?.cancel();
      const deep = await app.request("/v1/buckets/b/keys/deep", json(nested(33)));
      assert.equal(deep.status, 422);
      const p = await deep.json();
      assert.equal(p.code, "too_deep");
      assert.match(String(p.detail), /32/);
      // Brackets inside strings are not nesting.
      const str = await app.request("/v1/buckets/b/keys/s", json(JSON.stringify("[".repeat(100))));
      assert.equal(str.status, 201);
      await str.body?.cancel();
      const dflt = await appWith();
      const huge = await dflt.app.request("/v1/buckets/b/keys/deep", json(nested(100_000)));
      assert.equal(huge.status, 422);
      await huge.body?.cancel();
    });

    await t.step("#11: values nested 100k deep written straight to KV are served", async () => {
      const cache = await open();
      const app = createApp({ buckets: { b: { cache } }, auth: { anonymousWrites: true } });
      const nc = await connect({ servers: srv.url });
      try {
        const kv = await new Kvm(nc).open(cache.bucket);
        await kv.put("deep", new TextEncoder().encode(nestedObjects(100_000)));
        await kv.put("deep", new TextEncoder().encode(nestedObjects(100_000)));
        await waitFor(async () => (await cache.getEntry("deep")) !== undefined);
        const g = await app.request("/v1/buckets/b/keys/deep");
        assert.equal(g.status, 200);
        assert.equal(await g.text(), nestedObjects(100_000));
        const h = await app.request("/v1/buckets/b/keys/deep/history");
        assert.equal(h.status, 200);
        const hist = await h.text();
        assert.ok(hist.includes(nestedObjects(100_000)), "history carries the value");
        const watch = await app.request("/v1/buckets/b/watch", {
          headers: { "last-event-id": "0" },
        });
        const text = await readSseText(watch, (s) => (s.match(/event: put/g) ?? []).length >= 2);
        assert.equal((text.match(/event: put/g) ?? []).length, 2, "both events are sent");
      } finally {
        await nc.close();
      }
    });

    await t.step("#11: jsonCodec() encodes any depth (cache writes, projection targets)", () => {
      const text = nestedObjects(100_000);
      const codec = jsonCodec<unknown>();
      const value = codec.decode(new TextEncoder().encode(text));
      assert.equal(new TextDecoder().decode(codec.encode(value)), text);
    });

    await t.step("#11: the kv CLI prints a value nested 100k deep", async () => {
      const cache = await open();
      const nc = await connect({ servers: srv.url });
      try {
        const kv = await new Kvm(nc).open(cache.bucket);
        await kv.put("deep", new TextEncoder().encode(nestedObjects(100_000)));
      } finally {
        await nc.close();
      }
      for (const args of [["get", cache.bucket, "deep"], ["history", cache.bucket, "deep"]]) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", new URL("../../scripts/kv.ts", import.meta.url).pathname, ...args],
          env: { NATS_URL: srv.url, NO_COLOR: "1" },
          stdin: "null",
        }).output();
        const stdout = new TextDecoder().decode(out.stdout);
        assert.equal(out.code, 0, `kv ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
        assert.ok(stdout.includes('{"1":{"1":{"1":'), `kv ${args[0]} prints the value`);
      }
    });

    await t.step("#12: a stream that is never read is bounded in bytes", async () => {
      const cache = await open({ local: { maxItems: 10, maxBytes: 1 << 20 } });
      const maxBytes = 256 * 1024;
      const app = createApp({
        buckets: { b: { cache } },
        auth: { anonymousWrites: true },
        limits: { maxBodyBytes: 64 * 1024, sseBufferBytes: maxBytes, sseHeartbeatMs: 60_000 },
      });
      // Never read: the body stays queued in the server's stream.
      const watch = await app.request("/v1/buckets/b/watch");
      assert.equal(watch.status, 200);
      const value = JSON.stringify("v".repeat(40_000));
      let peak = 0;
      const gauge = async () => {
        const m = await (await app.request("/metrics")).text();
        const n = Number(/^kvedge_sse_buffered_bytes (\d+)$/m.exec(m)?.[1] ?? NaN);
        assert.ok(Number.isFinite(n), "kvedge_sse_buffered_bytes is exported");
        peak = Math.max(peak, n);
        return m;
      };
      for (let i = 0; i < 40; i++) {
        const r = await app.request(`/v1/buckets/b/keys/k${i % 5}`, json(value));
        await r.body?.cancel();
        await gauge();
      }
      const m = await waitFor(async () => {
        const m = await gauge();
        return /^kvedge_sse_slow_clients_total 1$/m.test(m) && m;
      }, { message: "the slow client is dropped" });
      assert.match(m, /^kvedge_sse_streams 0$/m);
      assert.ok(peak <= maxBytes + 64 * 1024, `buffered ${peak} bytes, bound ${maxBytes}`);
      await watch.body?.cancel().catch(() => {});
    });
  } finally {
    for (const c of caches) await c.close().catch(() => {});
  }
});
