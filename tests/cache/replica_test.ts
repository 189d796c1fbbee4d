import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { type CacheEvent, openCache } from "../../mod.ts";
import { connectTo, startServer, suiteTransport, uniqueBucket, waitFor } from "../_setup.ts";
import { fill } from "../_seed.ts";
import { deliveredSeq, startProxy } from "../_proxy.ts";

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

  await t.step({
    name: "rule 2: an acknowledged delete is not undone by the key's earlier PUT arriving later",
    // The proxy reads NATS frames over TCP only, and nats.js has one transport
    // per process: the WebSocket rerun of this file leaves this step to TCP.
    ignore: suiteTransport() === "websocket",
    fn: async () => {
      // The PUTs are written while this cache is cut off. When it is back, the
      // proxy holds its watcher's restart (the stream-info request that starts
      // it) until the cache's own deletes of those keys are acknowledged, so
      // the watcher delivers each PUT after its delete; and it holds every
      // delivery after the last PUT, so the cache stays in that window, PUTs
      // applied and DELs not, while the test reads every key. Over TCP
      // whatever the suite's transport: the proxy reads NATS frames.
      await using proxy = startProxy(Number(new URL(srv.tcpUrl).port), "tcp", { frames: true });
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket, { history: 5 });
      const keys = Array.from({ length: 50 }, (_, i) => `del.${i}`);
      let armed = false;
      const deletes = Promise.withResolvers<number[]>();
      await using c = await openCache<number>({
        servers: proxy.url,
        bucket,
        mode: "replica",
        local: { maxItems: 10_000 },
        connectOptions: { reconnectTimeWait: 100, ignoreClusterUpdates: true },
        onEvent: (e) => {
          if (e.type === "connected" && armed) {
            armed = false;
            Promise.all(keys.map((k) => c.delete(k))).then(deletes.resolve, deletes.reject);
          }
        },
      });
      await c.ready({ timeoutMs: 5000 });
      proxy.cut();
      await waitFor(() => !c.status().connected);
      let lastPut = 0;
      for (const k of keys) lastPut = await kv.put(k, "1");
      const firstPut = lastPut - keys.length + 1;
      // Its consumer would push the PUTs the moment the link is back (before
      // the cache hears of the reconnect): remove it, so the PUTs come from
      // the consumer the watcher creates after the deletes were sent.
      const jsm = await jetstreamManager(nc);
      for await (const ci of await jsm.consumers.list(`KV_${bucket}`)) {
        await jsm.consumers.delete(`KV_${bucket}`, ci.name);
      }
      const restart = proxy.hold((f) =>
        f.from === "client" && f.subject === `$JS.API.STREAM.INFO.KV_${bucket}`
      );
      const afterPuts = proxy.hold((f) =>
        f.from === "server" && (deliveredSeq(f.reply, `KV_${bucket}`) ?? 0) > lastPut
      );
      armed = true;
      proxy.restore();
      const revisions = await deletes.promise;
      assert.ok(
        c.stats().lastRevision < firstPut,
        `the race is not set up: the watcher was at ${c.stats().lastRevision} when the deletes ` +
          `were acknowledged, the PUTs are ${firstPut}–${lastPut}`,
      );
      restart.release();
      await waitFor(() => c.stats().lastRevision >= lastPut, {
        message: "the watcher delivers the PUTs",
      });
      // peek() never fetches, so the check cannot repair what it checks.
      const resurrected = keys.filter((k) => c.peek(k) !== undefined);
      afterPuts.release();
      await waitFor(() => c.stats().lastRevision >= Math.max(...revisions));
      for (const k of keys) if (await c.get(k) !== undefined) resurrected.push(k);
      assert.deepEqual(resurrected, [], "deleted keys read back with their old value");
      await waitFor(() => c.status().state === "synced");
      assert.equal(c.stats().entries, 0, "tombstones dropped once the watcher passed them");
    },
  });

  await t.step({
    name:
      "rule 3: a miss during bootstrap that read a PUT the watcher has since deleted is not cached",
    ignore: suiteTransport() === "websocket", // the proxy reads NATS frames over TCP only
    fn: async () => {
      // Forced with the proxy, not sampled: bootstrap is held after revision
      // 50, so the replica is overflowing (10 entries) and not caught up when
      // it misses the race keys; the answers (v1) are held while the keys are
      // deleted and 20 other keys written; then bootstrap goes on: the watcher
      // applies each key's v1 and its DEL, and the later writes evict the
      // tombstones. Only the reservation (rule 3) now knows of the DEL when
      // the held answer arrives. (A replica that does not overflow needs no
      // reservation here: it reads "absent" from being complete.)
      await using proxy = startProxy(Number(new URL(srv.tcpUrl).port), "tcp", { frames: true });
      const bucket = uniqueBucket();
      const stream = `KV_${bucket}`;
      const kv = await kvm.create(bucket, { history: 5 });
      await fill(nc, bucket, 100, (i) => i);
      const keys = Array.from({ length: 20 }, (_, i) => `race.${i}`);
      await fill(nc, bucket, keys.length, () => "v1", { prefix: "race." });
      await fill(nc, bucket, 100, (i) => i, { prefix: "tail." });
      const bootstrap = proxy.hold((f) => (deliveredSeq(f.reply, stream) ?? 0) > 50);
      const asked = new Set<string>();
      let heldAnswers = 0;
      const answers = proxy.hold((f) => {
        if (f.from === "client" && f.reply && isGet(f.subject, stream)) asked.add(f.reply);
        if (f.from !== "server" || !asked.has(f.subject)) return false;
        heldAnswers++;
        return true;
      });
      await using c = await openCache<number | string>({
        servers: proxy.url,
        bucket,
        mode: "replica",
        local: { maxItems: 10 },
        heartbeatMs: 60_000, // no watchdog restart while deliveries are held
        missTimeoutMs: 60_000,
      });
      await waitFor(() => c.stats().lastRevision === 50, { message: "bootstrap reaches 50" });
      assert.notEqual(c.status().state, "synced", "the race is not set up: bootstrap ended");
      assert.equal(c.status().overflowed, true);
      const misses = keys.map((k) => c.get(k));
      await waitFor(() => heldAnswers >= keys.length, { message: "every miss was answered" });
      for (const k of keys) await kv.delete(k);
      let last = 0;
      for (let i = 0; i < 20; i++) last = await kv.put(`k.${i}`, "-1");
      bootstrap.release();
      await waitFor(() => c.stats().lastRevision >= last, { message: "bootstrap goes on" });
      assert.ok(
        keys.every((k) => c.peek(k) === undefined),
        "the race is not set up: a deleted key is resident before the answers arrive",
      );
      answers.release();
      const got = await Promise.all(misses);
      const stale = keys.filter((k) => c.peek(k) !== undefined);
      assert.deepEqual(stale, [], `deleted keys cached at their old value: ${stale.length}`);
      assert.deepEqual(got, keys.map(() => undefined), "a miss answered a value deleted since");
    },
  });

  await nc.close();
});

/** Whether `subject` is a JetStream get of one message of `stream` (leader or direct). */
function isGet(subject: string, stream: string): boolean {
  return subject === `$JS.API.STREAM.MSG.GET.${stream}` ||
    subject.startsWith(`$JS.API.DIRECT.GET.${stream}`);
}
