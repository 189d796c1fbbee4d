/**
 * `changes({ fromRevision })`: a replay leaves nothing behind when it ends,
 * and a replay whose history moved on resumes after the last revision it
 * delivered instead of starting over.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { type Change, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";

/** Counts "abort" listeners registered on AbortSignals and not removed (or fired, for once). */
function trackAbortListeners(): { live(): number; [Symbol.dispose](): void } {
  const live = new Map<EventTarget, Set<unknown>>();
  const add = EventTarget.prototype.addEventListener;
  const remove = EventTarget.prototype.removeEventListener;
  EventTarget.prototype.addEventListener = function (
    this: EventTarget,
    type: string,
    fn: EventListenerOrEventListenerObject | null,
    opts?: boolean | AddEventListenerOptions,
  ) {
    if (type === "abort" && this instanceof AbortSignal && fn) {
      let set = live.get(this);
      if (!set) live.set(this, set = new Set());
      set.add(fn);
    }
    return add.call(this, type, fn, opts);
  };
  EventTarget.prototype.removeEventListener = function (
    this: EventTarget,
    type: string,
    fn: EventListenerOrEventListenerObject | null,
    opts?: boolean | EventListenerOptions,
  ) {
    if (type === "abort") live.get(this)?.delete(fn);
    return remove.call(this, type, fn, opts);
  };
  return {
    live: () =>
      [...live.entries()].reduce((n, [s, l]) => n + ((s as AbortSignal).aborted ? 0 : l.size), 0),
    [Symbol.dispose]() {
      EventTarget.prototype.addEventListener = add;
      EventTarget.prototype.removeEventListener = remove;
    },
  };
}

Deno.test("changes({ fromRevision }) replays", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);

  await t.step("a finished replay leaves no listener on the cache's lifetime signal", async () => {
    await using c = await openCache<number>({
      servers: srv.url,
      bucket: uniqueBucket(),
      create: { history: 5 },
      local: { maxItems: 100 },
    });
    await c.set("a", 1);
    using listeners = trackAbortListeners();
    const before = listeners.live();
    for (let i = 0; i < 20; i++) {
      for await (const ch of c.changes({ fromRevision: 1 })) {
        assert.equal(ch.revision, 1);
        break; // ends the replay
      }
    }
    const ac = new AbortController();
    const it = c.changes({ fromRevision: 1, signal: ac.signal });
    await it.next();
    ac.abort();
    await it.return?.();
    assert.equal(listeners.live() - before, 0, "listeners left by 21 finished replays");
  });

  await t.step(
    "a replay whose history moved on resumes after the last revision it delivered",
    async () => {
      await using c = await openCache<number>({
        servers: srv.url,
        bucket: uniqueBucket(),
        create: { history: 5 },
        local: { maxItems: 100 },
        heartbeatMs: 200,
      });
      const kv = await kvm.open(c.bucket);
      for (let i = 1; i <= 5; i++) await kv.put(`a.${i}`, String(i));
      const it = c.changes({ fromRevision: 1 });
      const seen: number[] = [];
      for (let i = 0; i < 5; i++) seen.push((await it.next()).value!.revision);
      assert.deepEqual(seen, [1, 2, 3, 4, 5]);
      // The replay's consumer is gone, so its watcher restarts, and the
      // history no longer reaches revision 6 (purged twice): it must resync.
      const jsm = await jetstreamManager(nc);
      const stream = `KV_${c.bucket}`;
      for await (const ci of await jsm.consumers.list(stream)) {
        await jsm.consumers.delete(stream, ci.name).catch(() => {});
      }
      await jsm.streams.purge(stream);
      await kv.put("gone", "6");
      await jsm.streams.purge(stream);
      await kv.put("b", "7");
      await kv.put("c", "8");
      const next: Change<number>[] = [];
      const reading = (async () => {
        for (let i = 0; i < 2; i++) {
          const r = await it.next();
          if (r.done) break;
          next.push(r.value);
        }
      })();
      await waitFor(async () => {
        await Promise.race([reading, new Promise((r) => setTimeout(r, 50))]);
        return next.length === 2 || c.status().lastError?.startsWith("replay ended");
      }, { timeoutMs: 15_000, message: "the replay neither resumed nor ended" });
      assert.deepEqual(
        next.map((ch) => ch.revision),
        [7, 8],
        `the replay ended or started over: ${c.status().lastError}`,
      );
      await it.return?.();
    },
  );

  await t.step(
    "a replay ends when the bucket is recreated, even with more revisions than it delivered",
    async () => {
      const bucket = uniqueBucket();
      await using c = await openCache<number>({
        servers: srv.url,
        bucket,
        create: { history: 5 },
        local: { maxItems: 100 },
        heartbeatMs: 200,
      });
      const kv = await kvm.open(bucket);
      for (let i = 1; i <= 3; i++) await kv.put(`a.${i}`, String(i));
      const it = c.changes({ fromRevision: 1 });
      const seen: number[] = [];
      for (let i = 0; i < 3; i++) seen.push((await it.next()).value!.revision);
      assert.deepEqual(seen, [1, 2, 3]);
      // Deleted and made again with more revisions than the replay delivered:
      // only the stream's creation time tells the two buckets apart.
      await (await jetstreamManager(nc)).streams.delete(`KV_${bucket}`);
      const again = await kvm.create(bucket, { history: 5 });
      for (let i = 1; i <= 10; i++) await again.put(`new.${i}`, String(-i));
      const after: Change<number>[] = [];
      let ended = false;
      const reading = (async () => {
        for (let r = await it.next(); !r.done; r = await it.next()) after.push(r.value);
        ended = true;
      })();
      await waitFor(() => ended || after.length > 0, {
        timeoutMs: 15_000,
        message: `the replay ends (lastError: ${c.status().lastError})`,
      }).catch((err) => assert.fail(`${err.message}; lastError now: ${c.status().lastError}`));
      await it.return?.();
      await reading;
      assert.deepEqual(
        after.map((ch) => `${ch.key}@${ch.revision}`),
        [],
        "the new bucket leaked in",
      );
      assert.match(c.status().lastError ?? "", /^replay ended: bucket was recreated/);
    },
  );

  await nc.close();
});
