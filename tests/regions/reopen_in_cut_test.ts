/**
 * A regional replica opened while the WAN is cut reads a mirror that is
 * behind the hub. When the link heals, the mirror copies its backlog. It does
 * not always store that backlog in sequence order: on nats-server 2.9.10 the
 * watcher's first delivery after a heal was the hub's newest message, and
 * older ones were stored below it afterwards (torture seeds 1065681 and
 * 1905095; docs/nats-versions.md). So the edge re-reads the mirror before it
 * says `synced` again. 2.15.2 has not shown the out-of-order copy, so this
 * test checks that the re-read happens and that its result is the hub's state.
 */
import assert from "node:assert/strict";
import type { Cache } from "../../mod.ts";
import { connectHub, regionalBucket, regionalEdge } from "../_regions.ts";
import { HUB_DOMAIN, startRegions, waitFor } from "../_setup.ts";

const enc = (v: unknown) => JSON.stringify(v);

Deno.test("a replica opened during a WAN cut re-reads its mirror when the link heals", async () => {
  await using topo = await startRegions({ regions: ["eu"] });
  const [eu] = topo.regions as [typeof topo.regions[0]];
  const hubNc = await connectHub(topo);
  let edge: Cache<number> | undefined;
  try {
    const b = await regionalBucket(topo, hubNc);
    await b.hubKv.put("k0", enc(0));
    await using observer = await regionalEdge<number>(eu, b.name);
    await observer.ready();
    await waitFor(() => (observer.status().region?.mirrorLastRevision ?? 0) >= 1, {
      timeoutMs: 20_000,
      message: "k0 reaches the region's mirror",
    });
    eu.cut();
    try {
      await waitFor(() => observer.status().region?.hubReachable === false, {
        timeoutMs: 20_000,
        message: "the region sees the hub unreachable",
      });
      edge = await regionalEdge<number>(eu, b.name, {
        mode: "replica",
        region: { hubDomain: HUB_DOMAIN, checkMs: 200, maxSilenceMs: 1_000 },
      });
      await edge.ready({ timeoutMs: 30_000 });
      assert.equal(edge.status().state, "stale", "opened during the cut");
      assert.equal(edge.status().resyncs, 0, "nothing re-read before the heal");
      for (let i = 1; i < 6; i++) await b.hubKv.put(`k${i}`, enc(i));
      await b.hubKv.delete("k0");
    } finally {
      eu.heal();
    }
    const last = (await b.hubKv.get("k0"))!.revision;
    await waitFor(
      () => {
        const s = edge!.status();
        return s.state === "synced" && s.region?.hubReachable === true &&
          s.region.mirrorLastRevision >= last;
      },
      {
        timeoutMs: 30_000,
        message: `the edge is synced after the heal (${JSON.stringify(edge.status())})`,
      },
    );
    const s = edge.status();
    assert.ok(
      s.resyncs >= 1,
      `the healed link made the edge re-read its mirror (${JSON.stringify(s)})`,
    );
    assert.match(s.lastResyncReason ?? "", /reaches the hub again: re-reading it/);
    for (let i = 1; i < 6; i++) assert.equal(edge.peek(`k${i}`), i, `k${i} after the heal`);
    assert.equal(edge.peek("k0"), undefined, "k0 deleted at the hub during the cut");
  } finally {
    await edge?.close();
    await hubNc.close();
  }
});
