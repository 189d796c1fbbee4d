/**
 * The HTTP facade under hostile input: bounded bodies and headers,
 * constant-time token checks, nothing echoed back or logged.
 *
 * @module
 */
import assert from "node:assert/strict";
import { openCache } from "../../mod.ts";
import { createApp } from "../../http.ts";
import { startServer } from "../_setup.ts";
import { assertNoSecret } from "../_security.ts";

Deno.test("HTTP facade: bounded input, constant-time tokens, nothing echoed", async (t) => {
  await using srv = await startServer();
  const readToken = "read-" + crypto.randomUUID();
  const writeToken = "write-" + crypto.randomUUID();
  await using cache = await openCache<unknown>({
    servers: srv.url,
    bucket: "http",
    create: { history: 2 },
    local: { maxItems: 100 },
  });
  await cache.ready({ timeoutMs: 10_000 });
  const logged: string[] = [];
  const app = createApp({
    buckets: { http: { cache } },
    auth: { readTokens: [readToken], writeTokens: [writeToken] },
    limits: { maxBodyBytes: 1024, maxSseStreams: 1 },
    onRequest: (info) => logged.push(JSON.stringify(info)),
  });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const responses: string[] = [];
  /** Every response is recorded (headers and body) to look for echoed secrets at the end. */
  const request = async (path: string, init: RequestInit = {}): Promise<Response> => {
    const res = await app.request(path, init);
    const body = path.endsWith("/watch") && res.ok ? "" : await res.clone().text();
    responses.push(JSON.stringify([...res.headers]) + body);
    return res;
  };
  const problem = async (res: Response, status: number, code: string) => {
    assert.equal(res.status, status);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const p = await res.json();
    assert.equal(p.status, status);
    assert.equal(p.code, code);
    return p;
  };

  try {
    await t.step(
      "missing, malformed and unknown tokens are 401; a read token on a write is 403",
      async () => {
        await problem(await request("/v1/buckets/http/keys/a"), 401, "unauthorized");
        await problem(
          await request("/v1/buckets/http/keys/a", {
            headers: { authorization: `Basic ${btoa("u:" + readToken)}` },
          }),
          401,
          "unauthorized",
        );
        // Same length as the real token, differing in the last character only.
        const near = readToken.slice(0, -1) + (readToken.endsWith("0") ? "1" : "0");
        await problem(
          await request("/v1/buckets/http/keys/a", { headers: bearer(near) }),
          401,
          "unauthorized",
        );
        await problem(
          await request("/v1/buckets/http/keys/a", {
            method: "PUT",
            body: "1",
            headers: bearer(readToken),
          }),
          403,
          "forbidden",
        );
        const ok = await request("/v1/buckets/http/keys/a", {
          method: "PUT",
          body: "1",
          headers: bearer(writeToken),
        });
        assert.equal(ok.status, 201);
        const read = await request("/v1/buckets/http/keys/a", { headers: bearer(readToken) });
        assert.equal(read.status, 200);
        assert.equal(await read.text(), "1");
      },
    );

    await t.step("an oversized body is 413, with or without Content-Length", async () => {
      const big = "9".repeat(4096);
      await problem(
        await request("/v1/buckets/http/keys/big", {
          method: "PUT",
          body: big,
          headers: bearer(writeToken),
        }),
        413,
        "too_large",
      );
      // A streamed (chunked) body carries no Content-Length: it is counted as it arrives.
      let pulled = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          if (pulled > 1_000) controller.close();
          else controller.enqueue(new TextEncoder().encode("9".repeat(512)));
        },
      });
      await problem(
        await request("/v1/buckets/http/keys/big", {
          method: "PUT",
          body: stream,
          headers: bearer(writeToken),
        }),
        413,
        "too_large",
      );
      assert.ok(pulled < 10, `the app read ${pulled} chunks of a body past its limit`);
      assert.equal(await cache.get("big"), undefined);
    });

    await t.step("over-long and malformed keys are 400 before any NATS I/O", async () => {
      const fetches = cache.stats().fetches;
      for (const key of ["k".repeat(5000), "a..b", "a%20b", "a*", "%24SYS", "a%00b"]) {
        const res = await request(`/v1/buckets/http/keys/${key}`, { headers: bearer(readToken) });
        await problem(res, 400, "bad_key");
      }
      assert.equal(cache.stats().fetches, fetches);
    });

    await t.step("SSE streams are capped (503 too_many_streams beyond the limit)", async () => {
      const ac = new AbortController();
      const first = await request("/v1/buckets/http/watch", {
        headers: bearer(readToken),
        signal: ac.signal,
      });
      assert.equal(first.status, 200);
      await problem(
        await request("/v1/buckets/http/watch", { headers: bearer(readToken) }),
        503,
        "too_many_streams",
      );
      ac.abort();
      await first.body?.cancel().catch(() => {});
    });

    await t.step("no response and no log line ever contains a token", async () => {
      // Requests that carry tokens in every place a naive server might echo them.
      await request(`/v1/buckets/nope/keys/a?token=${writeToken}`, { headers: bearer(writeToken) });
      await request("/nowhere", { headers: bearer(writeToken) });
      await request("/v1/buckets/http/keys/a", {
        method: "PUT",
        body: "{",
        headers: bearer(writeToken),
      });
      await request("/metrics", { headers: bearer(readToken) });
      await request("/v1/stats", { headers: bearer(readToken) });
      for (const r of responses) assertNoSecret(r, [readToken, writeToken], "a response");
      for (const line of logged) assertNoSecret(line, [readToken, writeToken], "a log record");
      assert.ok(responses.length >= 15 && logged.length >= 15);
    });
  } finally {
    // Nothing else to release: the cache and server are disposed by `await using`.
  }
});
