/**
 * A regional edge's belief about the hub link (`status().region`, and
 * whether writes are tried): it follows the link when the link comes back,
 * it is never the reason a write that would succeed is refused, and it ages
 * when the region's JetStream stops answering.
 */
import assert from "node:assert/strict";
import { DiscardPolicy, jetstreamManager, RetentionPolicy } from "@nats-io/jetstream";
import { type Cache, UnavailableError } from "../../mod.ts";
import { domainApi } from "../../src/region.ts";
import { connectHub, regionalBucket, regionalEdge } from "../_regions.ts";
import { HUB_DOMAIN, LEAF_PASSWORDS, startRegions, waitFor } from "../_setup.ts";

const enc = (v: unknown) => JSON.stringify(v);

/** No timer check runs during the test: only what the link learns otherwise counts. */
const NO_TIMER_CHECKS = { hubDomain: HUB_DOMAIN, checkMs: 600_000 };

Deno.test("the hub link as a regional edge believes it", async (t) => {
  await using topo = await startRegions({ regions: ["eu"] });
  const [eu] = topo.regions as [typeof topo.regions[0]];
  const hubNc = await connectHub(topo);
  try {
    const b = await regionalBucket(topo, hubNc);
    for (let i = 0; i < 5; i++) await b.hubKv.put(`k${i}`, enc(i));
    // Checks every 200 ms: tells the test when the region lost or regained the hub.
    await using observer = await regionalEdge<number>(eu, b.name);
    await observer.ready();
    const hubReachable = (c: Cache<number>) => c.status().region?.hubReachable;

    /** Cuts the WAN, waits until the region knows, runs `during`, heals. */
    const cutWhile = async (during: () => Promise<void>) => {
      eu.cut();
      try {
        await waitFor(() => hubReachable(observer) === false, {
          timeoutMs: 20_000,
          message: "the region sees the hub unreachable",
        });
        await during();
      } finally {
        eu.heal();
      }
    };

    await t.step(
      "after a WAN heal a write is tried, not refused on the belief of the last check",
      async () => {
        let edge: Cache<number> | undefined;
        try {
          await cutWhile(async () => {
            edge = await regionalEdge<number>(eu, b.name, {
              mode: "replica",
              region: NO_TIMER_CHECKS,
            });
            await edge.ready({ timeoutMs: 30_000 });
            assert.equal(hubReachable(edge), false, "opened during the cut");
            assert.equal(edge.status().state, "stale");
            await assert.rejects(edge.set("w", 0), (e: Error) => {
              assert.ok(e instanceof UnavailableError, String(e));
              assert.match(e.message, /hub .* unreachable/);
              return true;
            });
          });
          await waitFor(() => hubReachable(observer) === true, {
            timeoutMs: 30_000,
            message: "the region hears the hub again",
          });
          // The edge's last check (at open) said unreachable, and no data
          // has come through since: only the write itself can tell.
          const rev = await edge!.set("w", 1);
          assert.equal((await b.hubKv.get("w"))?.revision, rev);
          await waitFor(() => edge!.status().state === "synced" && hubReachable(edge!) === true, {
            timeoutMs: 20_000,
            message: `the acknowledged write refreshes the link (${
              JSON.stringify(edge!.status().region)
            })`,
          });
        } finally {
          await edge?.close();
        }
      },
    );

    await t.step(
      "after a WAN heal status() follows the link once the mirror delivers, without waiting a check",
      async () => {
        let edge: Cache<number> | undefined;
        let last = 0;
        try {
          await cutWhile(async () => {
            edge = await regionalEdge<number>(eu, b.name, {
              mode: "replica",
              region: NO_TIMER_CHECKS,
            });
            await edge.ready({ timeoutMs: 30_000 });
            assert.equal(edge.status().state, "stale");
            for (let i = 0; i < 5; i++) last = await b.hubKv.put(`k${i}`, enc(100 + i));
            await b.hubKv.delete("k4");
            last = (await b.hubKv.get("k4"))!.revision;
          });
          await waitFor(() => edge!.peek("k3") === 103 && edge!.peek("k4") === undefined, {
            timeoutMs: 30_000,
            message: "the hub's writes during the cut reach the edge",
          });
          await waitFor(
            () => {
              const s = edge!.status();
              return s.state === "synced" && s.region?.hubReachable === true &&
                s.region.mirrorLastRevision >= last;
            },
            {
              timeoutMs: 20_000,
              message: `status() follows the healed link (${JSON.stringify(edge!.status())})`,
            },
          );
          assert.equal((await edge!.getEntry("k3"))?.source, "hit");
        } finally {
          await edge?.close();
        }
      },
    );

    await t.step(
      "a silent regional JetStream (leaf SIGSTOPped, connection up) ages the belief: unreachable after maxSilenceMs",
      async () => {
        await using edge = await regionalEdge<number>(eu, b.name, {
          mode: "replica",
          region: { hubDomain: HUB_DOMAIN, checkMs: 200, maxSilenceMs: 1_000 },
          // The client's pings must not be what notices: the connection stays up.
          connectOptions: {
            user: "admin",
            pass: LEAF_PASSWORDS.admin,
            pingInterval: 120_000,
          },
        });
        await edge.ready({ timeoutMs: 30_000 });
        await waitFor(() => edge.status().state === "synced" && hubReachable(edge) === true, {
          timeoutMs: 20_000,
          message: "the edge starts synced",
        });
        eu.leaf.pause();
        try {
          await waitFor(() => hubReachable(edge) === false, {
            timeoutMs: 20_000,
            message: `the belief ages (${JSON.stringify(edge.status())})`,
          });
          const s = edge.status();
          assert.equal(s.connected, true, "the connection is still up");
          assert.equal(s.state, "stale");
          assert.equal((await edge.getEntry("k0"))?.stale, true);
          await assert.rejects(edge.set("k0", 7), UnavailableError);
        } finally {
          eu.leaf.resume();
        }
        await waitFor(() => edge.status().state === "synced" && hubReachable(edge) === true, {
          timeoutMs: 30_000,
          message: `the edge is synced again once the leaf answers (${
            JSON.stringify(edge.status())
          })`,
        });
      },
    );

    await t.step(
      "a mirror that lacks a revision the hub holds is never vouched for: not synced, mirrorMissing",
      async () => {
        // What nats-server 2.9.10 made after a WAN cut (torture seed 1841743:
        // mirror 2..2 with 1 message, hub 1..2 with 2), made on purpose: a
        // mirror that starts copying at the hub's second revision.
        const h = await regionalBucket(topo, hubNc);
        await h.hubKv.put("k0", enc(0));
        const last = await h.hubKv.put("k1", enc(1));
        const nc = await eu.connect();
        try {
          const jsm = await jetstreamManager(nc);
          const stream = `KV_${h.name}`;
          const origin = (await jsm.streams.info(stream)).config;
          await jsm.streams.delete(stream);
          await jsm.streams.add({
            name: stream,
            mirror: {
              name: stream,
              opt_start_seq: last,
              external: { api: domainApi(HUB_DOMAIN), deliver: "" },
            },
            retention: RetentionPolicy.Limits,
            max_msgs_per_subject: origin.max_msgs_per_subject,
            discard: DiscardPolicy.New,
            allow_rollup_hdrs: true,
            deny_delete: true,
            allow_direct: true,
            mirror_direct: true,
          });
          await waitFor(async () => {
            const i = await jsm.streams.info(stream);
            return i.state.last_seq === last && i.mirror?.lag === 0 && i.mirror.active >= 0;
          }, { timeoutMs: 30_000, message: "the holey mirror has copied the hub's last revision" });
        } finally {
          await nc.close();
        }
        await using edge = await regionalEdge<number>(eu, h.name, { mode: "replica" });
        await edge.ready({ timeoutMs: 30_000 });
        await waitFor(() => edge.status().region?.mirrorMissing === 1, {
          timeoutMs: 20_000,
          message:
            `the edge finds the mirror lacks k0@1 (status ${JSON.stringify(edge.status())}; ` +
            `k0 read as ${await edge.get("k0").catch((e) => String(e))})`,
        });
        // Several checks later (checkMs 200) it still does not say synced.
        const checked = edge.status().region!.checkedAt;
        await waitFor(() => edge.status().region!.checkedAt > checked + 600, { timeoutMs: 20_000 });
        const s = edge.status();
        assert.notEqual(s.state, "synced", JSON.stringify(s));
        assert.equal(s.region?.mirrorMissing, 1);
        assert.equal(
          s.region?.hubReachable,
          true,
          "the hub is reachable: only the mirror is wrong",
        );
        assert.match(s.lastError ?? "", /lacks 1 revision/);
      },
    );
  } finally {
    await hubNc.close();
  }
});
