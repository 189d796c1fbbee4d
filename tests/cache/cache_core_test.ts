import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { z } from "zod";
import {
  BucketNotFoundError,
  type Cache,
  type CacheEvent,
  type CacheOptions,
  ConflictError,
  DecodeError,
  KeyError,
  openCache,
  ValidationError,
} from "../../mod.ts";
import { blockEventLoop, connectTo, lines, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const enc = (v: unknown) => JSON.stringify(v);

Deno.test("core cache against a real nats-server", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  const open = <T = unknown>(extra: Partial<CacheOptions<T>> = {}): Promise<Cache<T>> =>
    openCache<T>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: { history: 5 },
      local: { maxItems: 1000 },
      ...extra,
    } as CacheOptions<T>);

  await t.step("a write by a raw @nats-io/kv client reaches a resident entry", async () => {
    await using c = await open<{ n: number }>();
    const kv = await kvm.open(c.bucket);
    await kv.put("a", enc({ n: 1 }));
    assert.deepEqual(await c.get("a"), { n: 1 }); // miss, now resident
    await kv.put("a", enc({ n: 2 }));
    await waitFor(() => c.peek("a")?.n === 2, { message: "update never reached the cache" });
    const e = await c.getEntry("a");
    assert.equal(e?.source, "hit");
    assert.equal(e?.revision, 2);
  });

  await t.step(
    "values are shared, never copied on a hit, and a new revision is a new object",
    async () => {
      await using c = await open<{ n: number; tags: string[] }>();
      const kv = await kvm.open(c.bucket);
      await kv.put("s", enc({ n: 1, tags: ["a"] }));
      const first = await c.get("s");
      assert.strictEqual(await c.get("s"), first, "two hits, two objects: a hit copied");
      assert.strictEqual(c.peek("s"), first);
      assert.strictEqual((await c.getEntry("s"))?.value, first);
      await kv.put("s", enc({ n: 2, tags: ["b"] }));
      await waitFor(() => c.peek("s")?.n === 2);
      assert.notStrictEqual(c.peek("s"), first);
      assert.deepEqual(first, { n: 1, tags: ["a"] }, "the cache changed a value it handed out");
    },
  );

  await t.step("lazy mode does not grow from the watcher", async () => {
    await using c = await open();
    const kv = await kvm.open(c.bucket);
    for (let i = 0; i < 50; i++) await kv.put(`k${i}`, enc(i));
    await waitFor(() => c.stats().lastRevision === 50);
    assert.equal(c.stats().entries, 0);
  });

  await t.step(
    "rule 1: an own write acknowledged after the watcher applied a newer revision does not replace it",
    async () => {
      // The own write's revision r reaches the cache last: another process
      // writes r+1 while this event loop is blocked, so the watcher applies
      // r+1 before the continuation of set() stores r. Rule 1 keeps r+1.
      let attempts = 0;
      for (let tries = 0; attempts < 2; tries++) {
        assert.ok(tries < 12, "the watcher never overtook an own write");
        const r = await ownWriteOvertaken();
        if (r.overtaken === 0) continue;
        attempts++;
        assert.deepEqual(r.stuck, [], `keys left at the older own write: ${r.stuck.length}`);
      }
    },
  );

  /** One attempt: how many own writes the watcher overtook, and the keys left at them. */
  async function ownWriteOvertaken(): Promise<{ overtaken: number; stuck: string[] }> {
    await using c = await open<string>({ local: { maxItems: 10_000 } });
    const kv = await kvm.open(c.bucket);
    const keys = Array.from({ length: 200 }, (_, i) => `race.${i}`);
    for (const k of keys) await kv.put(k, enc("v1"));
    for (const k of keys) assert.equal(await c.get(k), "v1"); // resident: the watcher updates them
    const writer = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        new URL("../_race_writer.ts", import.meta.url).pathname,
        srv.url,
        c.bucket,
        String(keys.length),
        "put",
        "100",
      ],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const out = lines(writer.stdout);
    assert.equal((await out.next()).value, "ready");
    const w = writer.stdin.getWriter();
    await w.write(new TextEncoder().encode("go\n")); // it writes "v2" 100 ms later
    // Each set() notes its revision and how far the watcher had got when it resolved.
    const sets = keys.map((k) =>
      c.set(k, "mine").then((rev) => ({ rev, seen: c.stats().lastRevision }))
    );
    // The publishes go out: microtasks for TCP, a task turn for WebSocket's send.
    for (let i = 0; i < 50; i++) await Promise.resolve();
    await new Promise((resolve) => setTimeout(resolve, 0));
    blockEventLoop(400);
    assert.equal((await out.next()).value, "done");
    await w.close();
    await writer.status;
    const own = await Promise.all(sets);
    const latest = await Promise.all(keys.map((k) => kv.get(k)));
    const v2 = latest.map((e) => e!.revision);
    // Overtaken: the own write went first (a lower revision than "v2"; a busy
    // transport can also send it after "v2") and the watcher had applied "v2"
    // before the own write resolved.
    const overtaken = keys.filter((_, i) => own[i]!.rev < v2[i]! && own[i]!.seen >= v2[i]!);
    await waitFor(() => c.stats().lastRevision >= Math.max(...v2));
    const stuck = overtaken.filter((k) => c.peek(k) !== "v2");
    return { overtaken: overtaken.length, stuck };
  }

  await t.step(
    "rule 2: a delete is served as absent without I/O and cannot be resurrected",
    async () => {
      await using c = await open<number>();
      const kv = await kvm.open(c.bucket);
      await kv.put("d", enc(1));
      assert.equal(await c.get("d"), 1);
      await kv.delete("d");
      await waitFor(() => c.peek("d") === undefined);
      const fetches = c.stats().fetches;
      for (let i = 0; i < 10; i++) assert.equal(await c.get("d"), undefined);
      assert.equal(c.stats().fetches, fetches, "a tombstone read must not go to NATS");
      // A miss for a key never written is cached negatively too.
      assert.equal(await c.get("never"), undefined);
      const after = c.stats().fetches;
      assert.equal(await c.get("never"), undefined);
      assert.equal(c.stats().fetches, after);
      // A purge leaves a tombstone as well; a later put (higher revision) wins.
      await kv.put("p", enc(5));
      assert.equal(await c.get("p"), 5);
      await kv.purge("p");
      await waitFor(() => c.peek("p") === undefined);
      await kv.put("p", enc(6));
      await waitFor(() => c.peek("p") === 6);
    },
  );

  await t.step(
    "rule 3: the stale-re-cache race leaves no key at the old value (200 keys)",
    async () => {
      await using c = await open<string>({ local: { maxItems: 10_000 } });
      const kv = await kvm.open(c.bucket);
      const keys = Array.from({ length: 200 }, (_, i) => `race.${i}`);
      for (const k of keys) await kv.put(k, enc("v1"));
      // v2 is written by another process while this process's event loop is
      // blocked (as in a GC pause): the server answers the in-flight misses with
      // v1, then the watcher's v2 events queue up behind those answers, and all
      // are read in one go — the watcher sees v2 before the fetch returns v1.
      const writer = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          new URL("../_race_writer.ts", import.meta.url).pathname,
          srv.url,
          c.bucket,
          "200",
        ],
        stdin: "piped",
        stdout: "piped",
      }).spawn();
      const out = lines(writer.stdout);
      assert.equal((await out.next()).value, "ready");
      const misses = keys.map((k) => c.get(k));
      await new Promise((r) => setTimeout(r, 0)); // let the miss requests go out
      const w = writer.stdin.getWriter();
      await w.write(new TextEncoder().encode("go\n"));
      blockEventLoop(300);
      assert.equal((await out.next()).value, "done");
      await w.close();
      await writer.status;
      assert.ok((await Promise.all(misses)).every((v) => v === "v1" || v === "v2"));
      await waitFor(() => keys.every((k) => c.peek(k) === "v2"), {
        timeoutMs: 10_000,
        message: `keys stuck at v1: ${keys.filter((k) => c.peek(k) !== "v2").length}`,
      });
    },
  );

  await t.step("rule 3: 100 concurrent gets of one missing key share one KV read", async () => {
    await using c = await open<number>();
    const kv = await kvm.open(c.bucket);
    await kv.put("hot", enc(42));
    const before = c.stats().fetches;
    const values = await Promise.all(Array.from({ length: 100 }, () => c.get("hot")));
    assert.ok(values.every((v) => v === 42));
    assert.equal(c.stats().fetches - before, 1);
  });

  await t.step(
    "rule 4: reads of one key never go back in revision, even across evictions",
    async () => {
      await using c = await open<number>({ local: { maxItems: 3 } });
      const kv = await kvm.open(c.bucket);
      let writing = true;
      const writer = (async () => {
        for (let i = 1; i <= 300; i++) await kv.put("m", enc(i));
        writing = false;
      })();
      let last = 0;
      let reads = 0;
      let i = 0;
      while (writing || reads < 50) {
        const e = await c.getEntry("m");
        if (e) {
          assert.ok(e.revision >= last, `revision went back: ${e.revision} < ${last}`);
          last = e.revision;
        }
        await c.get(`churn.${i++ % 10}`); // evicts "m" now and then
        reads++;
      }
      await writer;
    },
  );

  await t.step("changes() yields applied changes in revision order", async () => {
    await using c = await open<number>();
    const kv = await kvm.open(c.bucket);
    const it = c.changes();
    for (let i = 0; i < 20; i++) await kv.put(`c.${i % 4}`, enc(i));
    await kv.delete("c.0");
    const seen: number[] = [];
    const ops: string[] = [];
    for await (const ch of it) {
      seen.push(ch.revision);
      ops.push(ch.operation);
      if (seen.length === 21) break;
    }
    assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
    assert.equal(new Set(seen).size, 21);
    assert.equal(ops.at(-1), "DEL");
  });

  await t.step("writes: set, create, update with CAS, delete, purge", async () => {
    await using c = await open<string>();
    const r1 = await c.create("w", "a");
    await assert.rejects(c.create("w", "b"), ConflictError);
    const r2 = await c.update("w", "b", r1);
    await assert.rejects(
      c.update("w", "c", r1),
      (e) => e instanceof ConflictError && e.code === "CONFLICT",
    );
    await assert.rejects(c.delete("w", { expectedRevision: r1 }), ConflictError);
    const r3 = await c.delete("w", { expectedRevision: r2 });
    assert.ok(r3 > r2);
    assert.equal(await c.get("w"), undefined);
    const r4 = await c.create("w", "again"); // create over a delete marker
    assert.equal(await c.get("w"), "again");
    const r5 = await c.purge("w");
    assert.ok(r5 > r4);
    assert.equal(await c.get("w"), undefined);
    const kv = await kvm.open(c.bucket);
    const h = await c.history("w");
    assert.deepEqual(h.map((e) => e.operation), ["PURGE"]);
    await c.set("z", "1");
    await kv.put("y", enc("2"));
    const keys: string[] = [];
    for await (const k of c.keys()) keys.push(k);
    assert.deepEqual(keys.sort(), ["y", "z"]);
  });

  await t.step("local bounds: items and bytes are never exceeded", async () => {
    await using byItems = await open<number>({ local: { maxItems: 10 } });
    for (let i = 0; i < 50; i++) await byItems.set(`i.${i}`, i);
    assert.equal(byItems.stats().entries, 10);
    assert.equal(byItems.stats().evictions, 40);
    await using byBytes = await open<string>({ local: { maxBytes: 10_000 } });
    const big = "x".repeat(1000);
    for (let i = 0; i < 50; i++) await byBytes.set(`b.${i}`, big);
    assert.ok(byBytes.stats().bytes <= 10_000, `bytes ${byBytes.stats().bytes}`);
    assert.ok(byBytes.stats().entries < 50 && byBytes.stats().entries > 0);
  });

  await t.step("rule 6: an entry never outlives local.maxTtlMs nor the bucket TTL", async () => {
    await using c = await open<number>({ local: { maxItems: 100, maxTtlMs: 300 } });
    await c.set("t", 1);
    assert.equal(c.peek("t"), 1);
    await waitFor(() => c.peek("t") === undefined, { timeoutMs: 3000 });
    await using b = await open<number>({ create: { ttlMs: 1000 }, local: { maxItems: 100 } });
    assert.equal(b.status().bucketTtlMs, 1000);
    const kv = await kvm.open(b.bucket);
    await kv.put("bt", enc(1));
    const e = await b.getEntry("bt");
    assert.equal(e?.value, 1);
    await waitFor(() => b.peek("bt") === undefined, { timeoutMs: 5000 });
    assert.ok(Date.now() >= e!.createdMs + 1000 - 50, "expired before created + ttl");
  });

  await t.step(
    "schema: rejected on write before I/O, and a bad stored value is never served",
    async () => {
      const User = z.object({ name: z.string() });
      const events: CacheEvent[] = [];
      await using c = await open<z.infer<typeof User>>({
        schema: User,
        onEvent: (e) => events.push(e),
      });
      await assert.rejects(
        c.set("u.1", { name: 5 } as unknown as { name: string }),
        (e) => e instanceof ValidationError && e.issues[0]?.path[0] === "name",
      );
      const kv = await kvm.open(c.bucket);
      assert.equal(await kv.get("u.1"), null, "nothing was written");
      await kv.put("u.2", enc({ nom: "x" }));
      await kv.put("u.3", "{not json");
      // Never served, and not passed off as absent either.
      await assert.rejects(c.get("u.2"), DecodeError);
      await assert.rejects(c.get("u.3"), DecodeError);
      // Resident now and refused: the hit path rejects too (a promise, never a throw).
      await assert.rejects(c.get("u.2"), DecodeError);
      await assert.rejects(c.getEntry("u.3"), DecodeError);
      assert.equal(c.stats().rejected, 2);
      assert.ok(events.some((e) => e.type === "rejected" && e.key === "u.2"));
      await c.set("u.4", { name: "ok" });
      assert.deepEqual(await c.get("u.4"), { name: "ok" });
    },
  );

  await t.step("bad keys are a KeyError before any I/O", async () => {
    await using c = await open<number>();
    const bad = ["a..b", ".a", "a.", "a b", "a*", ">", "ü", "x".repeat(600), "", "a\nb", "$x"];
    for (const k of bad) {
      await assert.rejects(c.get(k), KeyError, `get ${JSON.stringify(k)}`);
      await assert.rejects(c.set(k, 1), KeyError, `set ${JSON.stringify(k)}`);
    }
    assert.equal(c.stats().fetches, 0);
  });

  await t.step("a keys filter scopes the cache", async () => {
    await using c = await open<number>({ keys: "user.>" });
    await c.set("user.1", 1);
    await assert.rejects(c.get("order.1"), KeyError);
  });

  await t.step("bad options give clear errors", async () => {
    const base = { servers: srv.url, bucket: "ok" };
    await assert.rejects(openCache({ ...base, local: {} }), RangeError);
    await assert.rejects(
      openCache({ ...base, local: { maxItems: 0 } }),
      (e) => e instanceof RangeError && e.message.includes('"local.maxItems"'),
    );
    await assert.rejects(openCache({ ...base, bucket: "a.b", local: { maxItems: 1 } }), TypeError);
    await assert.rejects(
      openCache({ bucket: "x", local: { maxItems: 1 } } as CacheOptions<unknown>),
      /exactly one of "servers" and "connection"/,
    );
    await assert.rejects(
      openCache({ ...base, bucket: uniqueBucket("missing"), local: { maxItems: 1 } }),
      (e) => e instanceof BucketNotFoundError && e.message.includes("does not exist"),
    );
  });

  await t.step("a shared connection is not closed by the cache", async () => {
    const b = uniqueBucket();
    const c = await openCache<number>({
      connection: nc,
      bucket: b,
      create: true,
      local: { maxItems: 5 },
    });
    await c.set("s", 1);
    await c.close();
    assert.equal(nc.isClosed(), false);
    assert.equal(c.status().state, "closed");
  });

  await nc.close();
});
