/**
 * Reconciliation notices a new stream leader and restarts the watcher at its
 * applied revision (src/cache/reconcile.ts): a consumer may outlive a
 * leader whose last deliveries the new leader never held. Where the replicas
 * agree the restart re-reads one message and costs no resync.
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { type Cache, type CacheEvent, openCache, UnavailableError } from "../../mod.ts";
import { connectTo, startCluster, uniqueBucket, waitFor } from "../_setup.ts";
import { createReplicatedBucket } from "../_chaos.ts";

Deno.test("a stream leader change restarts the watcher at its applied revision, without a resync", async () => {
  await using cluster = await startCluster();
  const nc = await connectTo(cluster.url);
  const bucket = uniqueBucket("leader");
  const kv = await createReplicatedBucket(nc, bucket, { replicas: 3, history: 1 });
  await kv.put("a", JSON.stringify(1));
  const restarts: string[] = [];
  // Opening is set-up: a fresh R3 stream may leave the first consumer create unanswered.
  const cache = await waitFor(() =>
    openCache<number>({
      servers: cluster.urls,
      bucket,
      mode: "replica",
      local: { maxItems: 100 },
      reconcileMs: 200,
      onEvent: (e: CacheEvent) => {
        if (e.type === "watcher_restart") restarts.push(e.reason);
      },
    }).catch((err) => {
      if (err instanceof UnavailableError) return undefined;
      throw err;
    }), { timeoutMs: 60_000, message: "the edge opens" }) as Cache<number>;
  try {
    await cache.ready({ timeoutMs: 15_000 });
    const jsm = await jetstreamManager(nc);
    const stream = `KV_${bucket}`;
    const leaderOf = async () => (await jsm.streams.info(stream)).cluster?.leader;
    const before = await waitFor(leaderOf, { message: "the stream has a leader" });
    // Reconciliation has read the stream at least once with this leader.
    await waitFor(() => cache.status().lastRevision === 1, {
      message: "the edge is at revision 1",
    });
    await nc.request(`$JS.API.STREAM.LEADER.STEPDOWN.${stream}`, "", { timeout: 5_000 });
    const after = await waitFor(async () => {
      const l = await leaderOf().catch(() => undefined);
      return l !== undefined && l !== before ? l : undefined;
    }, { timeoutMs: 30_000, message: "a new leader is elected" });
    await waitFor(() => restarts.some((r) => r.includes(`leader changed (${before} → ${after})`)), {
      timeoutMs: 30_000,
      message: `the watcher restarts for the new leader: ${restarts.join(" | ")}`,
    });
    const rev = await waitFor(() => kv.put("a", JSON.stringify(2)).catch(() => 0), {
      timeoutMs: 30_000,
      message: "the new leader takes writes",
    });
    await waitFor(async () => (await cache.getEntry("a"))?.revision === rev, {
      message: "the edge applies the write after the leader change",
    });
    assert.equal(cache.status().resyncs, 0, `resynced: ${cache.status().lastResyncReason}`);
    assert.equal((await cache.getEntry("a"))?.value, 2);
  } finally {
    await cache.close();
    await nc.close();
  }
});
