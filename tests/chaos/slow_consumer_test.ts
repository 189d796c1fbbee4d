import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheEvent, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { blockEventLoop, burstInChild, figures, RssSampler, scale } from "../_chaos.ts";

const WRITES = scale(200_000, 1_000_000);
const KEYS = 20_000;
/** Generous ceiling on RSS growth during the burst: the replica itself needs ~10-20 MiB. */
const MAX_GROWTH_MIB = 512;

Deno.test("chaos: a burst of writes to a busy edge: bounded memory, it keeps up or resyncs and says so", async () => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const bucket = uniqueBucket("chaos");
  const kv = await new Kvm(nc).create(bucket, { history: 1 });
  const events: CacheEvent[] = [];
  await using edge = await openCache<{ i: number }>({
    servers: srv.url,
    bucket,
    mode: "replica",
    local: { maxItems: 50_000 },
    heartbeatMs: 1_000,
    connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
    onEvent: (e) => {
      if (e.type !== "evicted") events.push(e);
    },
  });
  await edge.ready({ timeoutMs: 10_000 });
  const rss = new RssSampler(250);
  // The edge's event loop is blocked 150 ms out of every 200 ms while the
  // burst lasts (a CPU-bound handler); the writer runs in its own process.
  let blocked = 0;
  const busy = setInterval(() => {
    blockEventLoop(150);
    blocked++;
  }, 200);
  let last: number;
  const t0 = Date.now();
  try {
    last = await burstInChild(srv.url, bucket, WRITES, KEYS);
  } finally {
    clearInterval(busy);
  }
  const burstMs = Date.now() - t0;
  const lagAtEnd = last - edge.stats().lastRevision;
  await waitFor(() => edge.stats().lastRevision >= last && edge.status().state === "synced", {
    timeoutMs: 120_000,
    message: "the edge caught up after the burst",
  });
  const caughtUpMs = Date.now() - t0 - burstMs;
  rss.sample();
  rss.stop();
  // The replica equals the bucket: every key at its last value (checked on a sample).
  assert.equal(edge.stats().entries, KEYS);
  let checked = 0;
  for (let k = 0; k < KEYS; k += 97) {
    const truth = await kv.get(`b.${k}`);
    assert.deepEqual(edge.peek(`b.${k}`)?.i, truth?.json<{ i: number }>().i, `b.${k}`);
    checked++;
  }
  const s = edge.status();
  const restarts = events.filter((e) => e.type === "watcher_restart").length;
  figures("slow-consumer", {
    writes: WRITES,
    keys: KEYS,
    burstMs,
    eventLoopBlocks: blocked,
    lagAtBurstEnd: lagAtEnd,
    caughtUpAfterMs: caughtUpMs,
    rssStartMiB: rss.firstMiB,
    rssMaxMiB: rss.maxMiB,
    rssEndMiB: rss.lastMiB,
    heapStartMiB: rss.firstHeapMiB,
    heapMaxMiB: rss.maxHeapMiB,
    watcherRestarts: restarts,
    resyncs: s.resyncs,
    verdict: s.resyncs > 0
      ? `resynced (${s.lastResyncReason})`
      : restarts > 0
      ? "resumed"
      : "kept up",
    sampledKeysEqual: checked,
  });
  assert.ok(
    rss.maxMiB - rss.firstMiB < MAX_GROWTH_MIB,
    `RSS grew from ${rss.firstMiB} to ${rss.maxMiB} MiB`,
  );
  assert.ok(
    rss.maxHeapMiB - rss.firstHeapMiB < MAX_GROWTH_MIB,
    `the heap grew from ${rss.firstHeapMiB} to ${rss.maxHeapMiB} MiB`,
  );
  // Whatever happened is visible: a resync names its reason, a restart is an event.
  if (s.resyncs > 0) assert.ok(s.lastResyncReason);
  await nc.close();
});
