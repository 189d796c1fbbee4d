import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { LoaderError, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { startProxy } from "../_proxy.ts";

Deno.test("loader (cache-aside for keys absent from KV)", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);

  await t.step("1000 concurrent gets of one key make one origin call", async () => {
    let calls = 0;
    const { promise: gate, resolve: open } = Promise.withResolvers<void>();
    await using c = await openCache<string>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: true,
      local: { maxItems: 100 },
      loader: async (key) => {
        calls++;
        await gate; // hold the origin call until every get is waiting on it
        return `origin:${key}`;
      },
    });
    const gets = Array.from({ length: 1000 }, () => c.get("k"));
    open();
    const values = await Promise.all(gets);
    assert.ok(values.every((v) => v === "origin:k"));
    assert.equal(calls, 1);
    assert.equal(await c.get("k"), "origin:k");
    assert.equal(calls, 1, "the loaded value is cached");
  });

  await t.step(
    "a key present in KV never reaches the loader; a deleted one is absent",
    async () => {
      let calls = 0;
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket);
      await kv.put("in-kv", JSON.stringify("kv"));
      await kv.put("gone", JSON.stringify("x"));
      await kv.delete("gone");
      await using c = await openCache<string>({
        servers: srv.url,
        bucket,
        local: { maxItems: 100 },
        loader: () => {
          calls++;
          return Promise.resolve("origin");
        },
      });
      assert.equal(await c.get("in-kv"), "kv");
      assert.equal(await c.get("gone"), undefined, "a delete in KV is authoritative");
      assert.equal(calls, 0);
    },
  );

  await t.step("writeBack stores the loaded value in KV, where other edges see it", async () => {
    const bucket = uniqueBucket();
    await kvm.create(bucket);
    await using a = await openCache<number>({
      servers: srv.url,
      bucket,
      local: { maxItems: 100 },
      loader: () => Promise.resolve(7),
      writeBack: true,
    });
    await using b = await openCache<number>({ servers: srv.url, bucket, local: { maxItems: 100 } });
    assert.equal(await a.get("wb"), 7);
    const e = await (await kvm.open(bucket)).get("wb");
    assert.equal(e?.string(), "7");
    assert.equal(await b.get("wb"), 7);
    assert.equal((await a.getEntry("wb"))?.revision, e?.revision);
  });

  await t.step("writeBack loses to a concurrent newer write", async () => {
    const bucket = uniqueBucket();
    const kv = await kvm.create(bucket);
    await using c = await openCache<string>({
      servers: srv.url,
      bucket,
      local: { maxItems: 100 },
      writeBack: true,
      loader: async () => {
        await kv.put("race", JSON.stringify("writer")); // someone writes while we load
        return "loader";
      },
    });
    assert.equal(await c.get("race"), "writer");
    assert.equal((await kv.get("race"))?.json(), "writer");
  });

  await t.step(
    "a write the watcher brings while the loader runs wins over the loader's answer (rule 3)",
    async () => {
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket);
      await using c = await openCache<string>({
        servers: srv.url,
        bucket,
        local: { maxItems: 100 },
        loader: async (key) => {
          // KV gets the key while the origin is asked; the loader answers only
          // once this cache's watcher has delivered that write.
          const seen = (async () => {
            for await (const ch of c.changes()) if (ch.key === key) return;
          })();
          await kv.put(key, JSON.stringify("kv"));
          await seen;
          return "origin";
        },
      });
      await c.ready();
      const first = await c.getEntry("raced");
      assert.equal(first?.value, "kv", "KV's revision, not the loader's answer");
      assert.ok(first.revision > 0);
      assert.equal(await c.get("raced"), "kv", "and it is what stays resident");
    },
  );

  await t.step("'absent at the origin' is cached for negativeTtlMs", async () => {
    let calls = 0;
    await using c = await openCache<string>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: true,
      local: { maxItems: 100 },
      negativeTtlMs: 200,
      loader: () => {
        calls++;
        return Promise.resolve(undefined);
      },
    });
    assert.equal(await c.get("nope"), undefined);
    assert.equal(await c.get("nope"), undefined);
    assert.equal(calls, 1);
    await waitFor(async () => {
      await c.get("nope");
      return calls === 2;
    }, { message: "the negative entry never expired" });
  });

  await t.step("loader errors are typed and not cached", async () => {
    let calls = 0;
    await using c = await openCache<string>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: true,
      local: { maxItems: 100 },
      loader: () => {
        calls++;
        return calls === 1 ? Promise.reject(new Error("db down")) : Promise.resolve("ok");
      },
    });
    await assert.rejects(
      c.get("x"),
      (e) => e instanceof LoaderError && (e.cause as Error).message === "db down",
    );
    assert.equal(await c.get("x"), "ok");
    assert.equal(calls, 2);
  });

  await t.step("with NATS unreachable, misses go to the loader instead of failing", async () => {
    await using proxy = startProxy(srv.port);
    await using c = await openCache<string>({
      servers: proxy.url,
      bucket: uniqueBucket(),
      create: true,
      local: { maxItems: 100 },
      connectOptions: { reconnectTimeWait: 100, ignoreClusterUpdates: true },
      loader: (key) => Promise.resolve(`origin:${key}`),
    });
    proxy.cut();
    await waitFor(() => !c.status().connected);
    assert.equal(await c.get("offline"), "origin:offline");
  });

  await t.step(
    "a loader that never settles fails its misses at loaderTimeoutMs, aborts its signal and frees the key",
    async () => {
      let calls = 0;
      let aborted: unknown;
      await using c = await openCache<string>({
        servers: srv.url,
        bucket: uniqueBucket(),
        create: true,
        local: { maxItems: 100 },
        loaderTimeoutMs: 300,
        loader: (_key, { signal }) => {
          calls++;
          if (calls > 1) return Promise.resolve("second");
          signal.addEventListener("abort", () => aborted = signal.reason, { once: true });
          return new Promise<string>(() => {}); // hung origin
        },
      });
      const first = await within(
        Promise.allSettled([c.get("hung"), c.getEntry("hung")]),
        15_000,
        "get() of a key whose loader hangs is still waiting after 15 s",
      );
      for (const r of first) {
        assert.equal(r.status, "rejected");
        const e = (r as PromiseRejectedResult).reason;
        assert.ok(e instanceof LoaderError, `not a LoaderError: ${e}`);
        assert.equal((e.cause as DOMException).name, "TimeoutError");
      }
      assert.equal((aborted as DOMException | undefined)?.name, "TimeoutError", "signal aborted");
      assert.equal(await c.get("hung"), "second", "the single-flight slot was freed");
      assert.equal(calls, 2);
    },
  );

  await t.step(
    "values the loader gave while NATS was unreachable are checked against KV on reconnect",
    async () => {
      await using proxy = startProxy(srv.port);
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket);
      await kv.put("in-kv", JSON.stringify("kv"));
      await kv.put("in-kv-too", JSON.stringify("kv2"));
      await using c = await openCache<string>({
        servers: proxy.url,
        bucket,
        local: { maxItems: 100 },
        connectOptions: { reconnectTimeWait: 100, ignoreClusterUpdates: true },
        loader: (key) => Promise.resolve(key === "in-kv" ? "origin" : undefined),
      });
      await c.ready({ timeoutMs: 10_000 });
      proxy.cut();
      await waitFor(() => !c.status().connected);
      assert.equal(await c.get("in-kv"), "origin", "offline, the loader answers");
      assert.equal(await c.get("in-kv-too"), undefined, "offline, the loader says absent");
      proxy.restore();
      await waitFor(() => c.status().state === "synced", { timeoutMs: 15_000 });
      assert.equal(await c.get("in-kv"), "kv", "the loader's value shadows KV (rule 5)");
      assert.equal(await c.get("in-kv-too"), "kv2", "the loader's 'absent' shadows KV (rule 5)");
    },
  );

  await nc.close();
});

/** Rejects with `message` if `p` is not settled within `ms` (a deadline, not a sleep). */
async function within<V>(p: Promise<V>, ms: number, message: string): Promise<V> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(message)), ms);
  });
  try {
    return await Promise.race([p, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
