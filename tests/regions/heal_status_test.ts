/**
 * A regional edge re-reads its mirror when the hub link heals (the mirror
 * may have stored its backlog below where the watcher already was,
 * docs/nats-versions.md) and says `synced` only once that re-read has caught
 * up: its status never says synced in between. Both modes.
 */
import assert from "node:assert/strict";
import type { CacheEvent } from "../../mod.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
import { createReplicatedBucket } from "../_chaos.ts";
import { regionalEdge } from "../_regions.ts";
import { connectTo, HUB_DOMAIN, startRegions, uniqueBucket, waitFor } from "../_setup.ts";

Deno.test("after a WAN heal a regional edge says synced only once its re-read has caught up", async (t) => {
  await using topo = await startRegions({ regions: ["eu"] });
  const eu = topo.regions[0]!;
  const hubNc = await connectTo(topo.hub.servers.map((s) => s.tcpUrl).join(","));
  const nc = await eu.connect();
  try {
    for (const mode of ["lazy", "replica"] as const) {
      await t.step(mode, async () => {
        const name = uniqueBucket("heal");
        // A create on the freshly started hub cluster can go unanswered while
        // its meta layer settles (a CI run: "TimeoutError" from Bucket.create):
        // the helper retries it and waits until the stream takes writes.
        const kv = await createReplicatedBucket(hubNc, name, { replicas: 1, history: 5 });
        await waitFor(() => createRegionalMirror(nc, name, { hubDomain: HUB_DOMAIN }), {
          timeoutMs: 30_000,
          message: "mirror created",
        });
        await kv.put("a", JSON.stringify(1));
        await using c = await regionalEdge<number>(eu, name, { mode });
        await c.ready();
        // Synced first: a mirror created a moment ago may not have heard
        // from the hub when the edge opens (stale at open), and a cut taken
        // then can end before the link notices it, with nothing to re-read
        // (a CI run on 2.15.2 saw one "synced" and no "resync").
        await waitFor(async () => c.status().state === "synced" && (await c.get("a")) === 1, {
          timeoutMs: 20_000,
          message: "the edge is synced and serves a",
        });
        eu.cut();
        // Stale because the link noticed the cut (not for another reason).
        await waitFor(() => c.status().state === "stale" && !c.status().region!.hubReachable, {
          timeoutMs: 20_000,
          message: "the edge says stale in the cut, the hub unreachable",
        });
        await kv.put("a", JSON.stringify(2)); // the hub moves on meanwhile
        const events: CacheEvent[] = [];
        const stop = new AbortController();
        const reading = (async () => {
          for await (const e of c.events({ signal: stop.signal })) events.push(e);
        })();
        eu.heal();
        await waitFor(async () => c.status().state === "synced" && (await c.get("a")) === 2, {
          timeoutMs: 30_000,
          message: "the edge is synced and current after the heal",
        });
        stop.abort();
        await reading;
        // Every event, with its reason, in a failure's message.
        const told = JSON.stringify(events);
        const types = events.map((e) => e.type).filter((t) => t === "synced" || t === "resync");
        assert.equal(types[0], "resync", `synced before the re-read: ${told}`);
        assert.ok(types.includes("synced"), told);
      });
    }
  } finally {
    await nc.close();
    await hubNc.close();
  }
});
