import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { createFetchHandler } from "../../http.ts";
import { freePort } from "../../host/free_port.ts";
import { fill } from "../_seed.ts";
import { connectTo, type ServerHandle, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const EXAMPLE = fileURLToPath(new URL("../../examples/isolate/main.ts", import.meta.url));

/** Client connections the server holds now (`/connz`). */
async function connections(srv: ServerHandle): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${srv.monitorPort}/connz`);
  return (await res.json() as { num_connections: number }).num_connections;
}

function get(path: string): Request {
  return new Request(`http://edge.test${path}`);
}

Deno.test("createFetchHandler() checks its options before any I/O", () => {
  const base = { servers: "ws://127.0.0.1:1", buckets: { a: {} }, local: { maxItems: 10 } };
  assert.throws(
    () => createFetchHandler({ ...base, servers: ["ws://127.0.0.1:1", "nats://127.0.0.1:2"] }),
    (e: unknown) => e instanceof TypeError && /mixes WebSocket .* and TCP/.test(e.message),
  );
  assert.throws(() => createFetchHandler({ ...base, buckets: {} }), TypeError);
  assert.throws(() => createFetchHandler({ ...base, servers: [] }), TypeError);
  assert.throws(() => createFetchHandler({ ...base, local: {} }), RangeError);
  assert.throws(() => createFetchHandler({ ...base, buckets: { "a.b": {} } }), TypeError);
  // Valid options open nothing: no server listens on port 1.
  createFetchHandler(base);
});

Deno.test("fetch handler over WebSocket", async (t) => {
  await using srv = await startServer({ websocket: true });
  const writer = await connectTo(srv.wsUrl!);
  const kvm = new Kvm(writer);
  try {
    await t.step(
      "concurrent first requests share one opening: one connection, every answer right",
      async () => {
        const bucket = uniqueBucket();
        const kv = await kvm.create(bucket, { history: 5 });
        await kv.put("k.1", JSON.stringify({ n: 1 }));
        const before = await connections(srv);
        await using handler = createFetchHandler({
          servers: srv.wsUrl!,
          buckets: { [bucket]: {} },
          local: { maxItems: 100 },
        });
        assert.equal(await connections(srv), before, "nothing opens before the first request");
        const answers = await Promise.all(
          Array.from(
            { length: 20 },
            (_, i) => handler.fetch(get(`/v1/buckets/${bucket}/keys/${i % 2 ? "k.1" : "absent"}`)),
          ),
        );
        for (const [i, res] of answers.entries()) {
          assert.equal(res.status, i % 2 ? 200 : 404);
          if (i % 2) assert.deepEqual(await res.json(), { n: 1 });
          else await res.body?.cancel();
        }
        assert.equal(await connections(srv), before + 1, "one NATS connection per isolate");
        const hit = await handler.fetch(get(`/v1/buckets/${bucket}/keys/k.1`));
        assert.equal(hit.headers.get("x-cache"), "hit");
        await hit.body?.cancel();
        // The watcher runs over WebSocket: a put elsewhere reaches the resident key.
        await kv.put("k.1", JSON.stringify({ n: 2 }));
        await waitFor(async () => {
          const res = await handler.fetch(get(`/v1/buckets/${bucket}/keys/k.1`));
          const body = await res.json() as { n: number };
          return res.headers.get("x-cache") === "hit" && body.n === 2;
        }, { timeoutMs: 10_000, message: "the put reaches the isolate's cache" });
      },
    );

    await t.step(
      "a replica bucket serves before its sync unless waitForSync is set",
      async () => {
        const bucket = uniqueBucket();
        await kvm.create(bucket, { history: 1 });
        // Enough keys that the bootstrap cannot finish before the first answer.
        await fill(writer, bucket, 20_000, (i) => i);
        const early = createFetchHandler({
          servers: srv.wsUrl!,
          buckets: { [bucket]: { mode: "replica" } },
          local: { maxItems: 50_000 },
        });
        try {
          const res = await early.fetch(get(`/v1/buckets/${bucket}/keys/k.19999`));
          assert.equal(res.status, 200);
          assert.equal(await res.json(), 19999);
          assert.equal(res.headers.get("x-cache"), "miss", "answered from KV, before the sync");
          const cache = (await early.caches())[bucket]!;
          await cache.ready({ timeoutMs: 60_000 });
          assert.equal(cache.stats().entries, 20_000);
        } finally {
          await early.close();
        }
        await using synced = createFetchHandler({
          servers: srv.wsUrl!,
          buckets: { [bucket]: { mode: "replica" } },
          local: { maxItems: 50_000 },
          waitForSync: true,
        });
        const res = await synced.fetch(get(`/v1/buckets/${bucket}/keys/k.19999`));
        assert.equal(res.headers.get("x-cache"), "hit", "the first answer waited for the sync");
        await res.body?.cancel();
      },
    );

    await t.step(
      "an opening that fails answers 503 and the next request tries again",
      async () => {
        const bucket = uniqueBucket();
        await using handler = createFetchHandler({
          servers: srv.wsUrl!,
          buckets: { [bucket]: {} },
          local: { maxItems: 10 },
        });
        const first = await handler.fetch(get(`/v1/buckets/${bucket}/keys/a`));
        assert.equal(first.status, 503, "the bucket does not exist yet");
        assert.equal(first.headers.get("content-type"), "application/problem+json");
        assert.equal((await first.json() as { code: string }).code, "unavailable");
        const kv = await kvm.create(bucket);
        await kv.put("a", JSON.stringify("x"));
        const second = await handler.fetch(get(`/v1/buckets/${bucket}/keys/a`));
        assert.equal(second.status, 200);
        assert.equal(await second.json(), "x");
      },
    );

    await t.step(
      "resident keys are served stale while the server is down, fresh after its restart",
      async () => {
        const bucket = uniqueBucket();
        const kv = await kvm.create(bucket, { history: 5 });
        await kv.put("a", JSON.stringify(1));
        await using handler = createFetchHandler({
          servers: srv.wsUrl!,
          buckets: { [bucket]: { missTimeoutMs: 500 } },
          local: { maxItems: 10 },
        });
        await (await handler.fetch(get(`/v1/buckets/${bucket}/keys/a`))).body?.cancel();
        await srv.kill();
        const stale = await waitFor(async () => {
          const res = await handler.fetch(get(`/v1/buckets/${bucket}/keys/a`));
          if (res.headers.get("x-cache") !== "stale") return void await res.body?.cancel();
          return res;
        }, { timeoutMs: 30_000, message: "X-Cache: stale while the server is down" });
        assert.equal(await stale.json(), 1);
        const miss = await handler.fetch(get(`/v1/buckets/${bucket}/keys/absent`));
        assert.equal(miss.status, 503, "a miss fails fast instead of hanging");
        await miss.body?.cancel();
        await srv.restart();
        await waitFor(() => kv.put("a", JSON.stringify(2)), {
          timeoutMs: 30_000,
          message: "a put after the restart",
        });
        await waitFor(async () => {
          const res = await handler.fetch(get(`/v1/buckets/${bucket}/keys/a`));
          return res.headers.get("x-cache") === "hit" && await res.json() === 2;
        }, { timeoutMs: 30_000, message: "fresh again after the restart" });
      },
    );
  } finally {
    await writer.close();
  }
});

Deno.test(
  "examples/isolate serves over WebSocket with no file system permission",
  async () => {
    await using srv = await startServer({ websocket: true });
    const writer = await connectTo(srv.wsUrl!);
    const bucket = uniqueBucket();
    try {
      const kv = await new Kvm(writer).create(bucket);
      await kv.put("greeting", JSON.stringify("hello"));
    } finally {
      await writer.close();
    }
    const port = freePort();
    const child = new Deno.Command(Deno.execPath(), {
      // No --allow-read/--allow-write: any file access would fail the requests.
      args: [
        "serve",
        "--no-check",
        "--host",
        "127.0.0.1",
        "--port",
        String(port),
        "--allow-net=127.0.0.1",
        "--allow-env=NATS_URL,KVEDGE_BUCKETS,NATS_USER,NATS_PASSWORD,NATS_TOKEN,NATS_INBOX_PREFIX",
        EXAMPLE,
      ],
      env: { NATS_URL: srv.wsUrl!, KVEDGE_BUCKETS: bucket },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    const stderr = new Response(child.stderr).text();
    try {
      const res = await waitFor(
        () => fetch(`http://127.0.0.1:${port}/v1/buckets/${bucket}/keys/greeting`),
        { timeoutMs: 60_000, message: "the example answers" },
      );
      assert.equal(res.status, 200);
      assert.equal(await res.json(), "hello");
      const again = await fetch(`http://127.0.0.1:${port}/v1/buckets/${bucket}/keys/greeting`);
      assert.equal(again.headers.get("x-cache"), "hit");
      await again.body?.cancel();
      const readyz = await fetch(`http://127.0.0.1:${port}/readyz`);
      assert.equal(readyz.status, 200);
      await readyz.body?.cancel();
    } finally {
      // An isolate is not asked to stop; and SIGTERM waits for idle keep-alive clients.
      child.kill("SIGKILL");
      await child.status;
      const text = await stderr;
      assert.ok(!/NotCapable|PermissionDenied|Requires (read|write) access/.test(text), text);
    }
  },
);
