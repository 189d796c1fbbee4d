/**
 * close() while the nats-server is SIGSTOPped: the TCP connection stays up but
 * nothing answers, so every request and every flush the close makes waits for
 * a reply that never comes. close() must still settle within its own deadline
 * (`closeTimeoutMs`), long before the server is resumed.
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheOptions, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { settlesWithin } from "../_chaos.ts";

/** The close deadline these tests set (docs/options.md `closeTimeoutMs`). */
const CLOSE_TIMEOUT_MS = 2_000;
/**
 * How long close() may take with the server paused: its deadline plus a
 * generous 8 s of slack for a busy 2-core machine. The server stays paused
 * the whole time, so a close that waits for it can never settle in time.
 */
const CLOSE_BOUND_MS = CLOSE_TIMEOUT_MS + 8_000;

const fast = {
  missTimeoutMs: 500,
  writeTimeoutMs: 1000,
  heartbeatMs: 500,
  closeTimeoutMs: CLOSE_TIMEOUT_MS,
  connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50, ignoreClusterUpdates: true },
} satisfies Partial<CacheOptions<unknown>>;

for (const mode of ["lazy", "replica"] as const) {
  Deno.test(`close() of a ${mode} cache settles while the server is paused (SIGSTOP)`, async () => {
    await using srv = await startServer();
    const nc = await connectTo(srv);
    try {
      const bucket = uniqueBucket();
      const kv = await new Kvm(nc).create(bucket);
      await kv.put("a", "1");
      // The cache owns its connection (servers, not connection): close() must close it.
      const c = await openCache<number>({
        ...fast,
        servers: srv.url,
        bucket,
        mode,
        local: { maxItems: 100 },
      });
      await c.ready();
      assert.equal(await c.get("a"), 1);
      srv.pause();
      try {
        await settlesWithin(c.close(), CLOSE_BOUND_MS, `close() of a ${mode} cache, server paused`);
        assert.equal(c.status().state, "closed");
      } finally {
        srv.resume();
      }
      // The cache's own connection was closed, not left draining: once the
      // server runs again it sees only the test's connection.
      await waitFor(async () => (await connections(srv.monitorPort)) === 1, {
        message: "the cache's own connection was left open",
      });
    } finally {
      await nc.close();
    }
  });
}

/** Client connections the server counts (monitoring `/connz`). */
async function connections(monitorPort: number): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${monitorPort}/connz`);
  return (await res.json()).num_connections;
}

Deno.test("close() with the server paused leaves a given connection open", async () => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  try {
    const bucket = uniqueBucket();
    const kv = await new Kvm(nc).create(bucket);
    await kv.put("a", "1");
    const c = await openCache<number>({
      ...fast,
      connection: nc,
      bucket,
      mode: "replica",
      local: { maxItems: 100 },
    });
    await c.ready();
    srv.pause();
    try {
      await settlesWithin(
        c.close(),
        CLOSE_BOUND_MS,
        "close() on a given connection, server paused",
      );
    } finally {
      srv.resume();
    }
    assert.equal(nc.isClosed(), false, "the cache closed a connection it was given");
    // The given connection still works once the server runs again.
    await waitFor(async () => (await kv.get("a"))?.string() === "1", {
      message: "the given connection did not work after resume",
    });
  } finally {
    await nc.close();
  }
});
