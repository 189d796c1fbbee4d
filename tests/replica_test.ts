import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheEvent, openCache } from "../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "./_setup.ts";
import { fill } from "./_seed.ts";

Deno.test("replica mode", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);

  await t.step("ready() resolves on an empty bucket", async () => {
    await using c = await openCache({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: true,
      mode: "replica",
      local: { maxItems: 10 },
    });
    await c.ready({ timeoutMs: 5000 });
    assert.equal(c.status().state, "synced");
    assert.equal(await c.get("nothing"), undefined);
    assert.equal(c.stats().fetches, 0, "a miss in a synced replica is authoritative");
  });

  await t.step(
    "a replica of 50k keys answers every read locally with the bucket's values",
    async () => {
      const bucket = uniqueBucket();
      await kvm.create(bucket, { history: 2 });
      await fill(nc, bucket, 50_000, (i) => ({ i }));
      const kv = await kvm.open(bucket);
      await kv.delete("k.7"); // the snapshot carries deletes too
      const events: CacheEvent[] = [];
      await using c = await openCache<{ i: number }>({
        servers: srv.url,
        bucket,
        mode: "replica",
        local: { maxItems: 100_000 },
        onEvent: (e) => events.push(e),
      });
      await c.ready({ timeoutMs: 30_000 });
      assert.equal(c.stats().entries, 49_999);
      for (let i = 0; i < 50_000; i++) {
        const v = await c.get(`k.${i}`);
        if (i === 7) assert.equal(v, undefined);
        else assert.equal(v?.i, i);
      }
      assert.equal(c.stats().fetches, 0, "no read left the process");
      assert.ok(
        events.filter((e) => e.type === "bootstrap").length >= 4,
        "bootstrap progress was reported",
      );
      // and it follows later changes
      await kv.put("k.new", JSON.stringify({ i: -1 }));
      await kv.delete("k.1");
      await waitFor(() => c.peek("k.new")?.i === -1 && c.peek("k.1") === undefined);
    },
  );

  await t.step(
    "a bucket larger than the bounds overflows, says so, and falls back to lazy reads",
    async () => {
      const bucket = uniqueBucket();
      await kvm.create(bucket);
      await fill(nc, bucket, 500, (i) => i);
      const events: CacheEvent[] = [];
      await using c = await openCache<number>({
        servers: srv.url,
        bucket,
        mode: "replica",
        local: { maxItems: 100 },
        onEvent: (e) => events.push(e),
      });
      await c.ready({ timeoutMs: 10_000 });
      assert.equal(c.stats().entries, 100);
      assert.equal(c.status().overflowed, true);
      assert.ok(events.some((e) => e.type === "overflow"));
      assert.equal(await c.get("k.0"), 0, "an evicted key is fetched, not reported absent");
      assert.equal(c.stats().fetches, 1);
    },
  );

  await t.step("a keys filter limits the replica", async () => {
    const bucket = uniqueBucket();
    await kvm.create(bucket);
    const kv = await kvm.open(bucket);
    await kv.put("user.1", "1");
    await kv.put("order.1", "2");
    await using c = await openCache<number>({
      servers: srv.url,
      bucket,
      mode: "replica",
      keys: "user.>",
      local: { maxItems: 100 },
    });
    await c.ready({ timeoutMs: 5000 });
    assert.equal(c.stats().entries, 1);
    assert.equal(await c.get("user.1"), 1);
  });

  await nc.close();
});
