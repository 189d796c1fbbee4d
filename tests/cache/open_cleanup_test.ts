/**
 * A failed `openCache()` must leave nothing running: no reconcile or snapshot
 * timer, no status loop on a shared connection, no connection of its own.
 * Deno's op and resource sanitizers (on in these tests) catch any leftover.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket } from "../_setup.ts";

/** A user that may read stream info but not create consumers: the watcher cannot start. */
const noConsumers = (bucket: string) =>
  `authorization {
  users = [
    { user: admin, password: adminpw },
    {
      user: edge, password: edgepw,
      permissions: {
        publish: { allow: ">", deny: "$JS.API.CONSUMER.CREATE.KV_${bucket}.>" },
        subscribe: { allow: ">" }
      }
    }
  ]
}`;

/** Counts intervals started and not cleared (the sanitizer ignores unref'd ones). */
function trackIntervals(): { live: Set<unknown>; [Symbol.dispose](): void } {
  const live = new Set<unknown>();
  const set = globalThis.setInterval;
  const clear = globalThis.clearInterval;
  globalThis.setInterval = ((...args: Parameters<typeof set>) => {
    const id = set(...args);
    live.add(id);
    return id;
  }) as typeof set;
  globalThis.clearInterval = ((id?: Parameters<typeof clear>[0]) => {
    live.delete(id);
    clear(id);
  }) as typeof clear;
  return {
    live,
    [Symbol.dispose]() {
      globalThis.setInterval = set;
      globalThis.clearInterval = clear;
      for (const id of live) clear(id as Parameters<typeof clear>[0]);
    },
  };
}

Deno.test({
  name: "a failed openCache() stops its timers, status loop and connection",
  sanitizeOps: true,
  sanitizeResources: true,
  async fn(t) {
    const bucket = uniqueBucket();
    await using srv = await startServer({ config: noConsumers(bucket) });
    const admin = await connectTo(srv, { user: "admin", pass: "adminpw" });
    await new Kvm(admin).create(bucket);

    await t.step("with a connection it opened itself", async () => {
      using intervals = trackIntervals();
      await assert.rejects(openCache({
        servers: srv.url,
        connectOptions: { user: "edge", pass: "edgepw" },
        bucket,
        local: { maxItems: 10 },
        reconcileMs: 50,
      }));
      assert.equal(intervals.live.size, 0, "an interval of the failed cache still runs");
    });

    await t.step("with a shared connection, which stays usable", async () => {
      const nc = await connectTo(srv, { user: "edge", pass: "edgepw" });
      const listeners = () =>
        (nc as unknown as { protocol: { listeners: unknown[] } }).protocol
          .listeners.length;
      const before = listeners();
      using intervals = trackIntervals();
      await assert.rejects(openCache({
        connection: nc,
        bucket,
        local: { maxItems: 10 },
        reconcileMs: 50,
      }));
      assert.equal(intervals.live.size, 0, "an interval of the failed cache still runs");
      assert.equal(listeners(), before, "the cache's status loop still listens");
      assert.equal(nc.isClosed(), false);
      await nc.close();
    });

    await admin.close();
  },
});
