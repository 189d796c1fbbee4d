/**
 * A regional edge re-reads its mirror when the hub link heals (the mirror
 * may have stored its backlog below where the watcher already was,
 * docs/nats-versions.md) and says `synced` only once that re-read has caught
 * up: its status never says synced in between. Both modes.
 */
import assert from "node:assert/strict";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { CacheEvent } from "../../mod.ts";
import { createRegionalMirror } from "../../src/region_mirror.ts";
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
        const kv = await new Kvm(jetstream(hubNc)).create(name, { history: 5 });
        await waitFor(() => createRegionalMirror(nc, name, { hubDomain: HUB_DOMAIN }), {
          timeoutMs: 30_000,
          message: "mirror created",
        });
        await kv.put("a", JSON.stringify(1));
        await using c = await regionalEdge<number>(eu, name, { mode });
        await c.ready();
        await waitFor(async () => (await c.get("a")) === 1, { message: "the edge serves a" });
        eu.cut();
        await waitFor(() => c.status().state === "stale", {
          timeoutMs: 20_000,
          message: "the edge says stale in the cut",
        });
        await kv.put("a", JSON.stringify(2)); // the hub moves on meanwhile
        const events: CacheEvent[] = [];
        const stop = new AbortController();
        const reading = (async () => {
          for await (const e of c.events({ signal: stop.signal })) {
            if (e.type === "synced" || e.type === "resync") events.push(e);
          }
        })();
        eu.heal();
        await waitFor(async () => c.status().state === "synced" && (await c.get("a")) === 2, {
          timeoutMs: 30_000,
          message: "the edge is synced and current after the heal",
        });
        stop.abort();
        await reading;
        const types = events.map((e) => e.type);
        assert.equal(types[0], "resync", `synced before the re-read: ${types.join(", ")}`);
        assert.ok(types.includes("synced"), types.join(", "));
      });
    }
  } finally {
    await nc.close();
    await hubNc.close();
  }
});
