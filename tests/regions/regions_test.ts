/**
 * Regions over leaf nodes: a hub cluster (R3, domain "hub") and two regions,
 * each a leaf node with a mirror of the bucket, linked to the hub through a
 * proxy the tests cut. Edges read the mirror and write to the hub.
 */
import assert from "node:assert/strict";
import { type KV, Kvm } from "@nats-io/kv";
import { ConflictError, openCache, UnavailableError } from "../../mod.ts";
import {
  type Acked,
  connectHub,
  regionalBucket,
  regionalEdge,
  regionDiagnosis,
  waitConverged,
} from "../_regions.ts";
import { HUB_DOMAIN, LEAF_PASSWORDS, startRegions, uniqueBucket, waitFor } from "../_setup.ts";

const enc = (v: unknown) => JSON.stringify(v);
const ROOT = new URL("../../", import.meta.url).pathname;

/**
 * Writes to the hub's bucket until stopped: puts and deletes over `keys`,
 * recording every acknowledged one. Failed writes (a leader election) are
 * not acknowledged, so not recorded.
 */
function hubTraffic(
  kv: KV,
  keys: string[],
): { acked: Acked; writes: () => number; stop: () => Promise<void> } {
  const acked: Acked = new Map();
  let running = true;
  let n = 0;
  const loop = (async () => {
    while (running) {
      const k = keys[n % keys.length]!;
      try {
        if (n % 7 === 3) {
          await kv.delete(k);
          const e = await kv.get(k);
          if (e) acked.set(k, { rev: e.revision, deleted: e.operation !== "PUT" });
        } else {
          acked.set(k, { rev: await kv.put(k, enc(n)), deleted: false });
        }
      } catch {
        await new Promise((r) => setTimeout(r, 50));
      }
      n++;
    }
  })();
  return {
    acked,
    writes: () => n,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

Deno.test("regions over leaf nodes", async (t) => {
  await using topo = await startRegions();
  const [eu, us] = topo.regions as [typeof topo.regions[0], typeof topo.regions[0]];
  const hubNc = await connectHub(topo);
  try {
    await t.step("a regional edge needs a mirror of the hub's bucket, and no create", async () => {
      const bucket = uniqueBucket("r");
      await new Kvm(hubNc).create(bucket, { replicas: 3 });
      await assert.rejects(regionalEdge(eu, bucket), /does not exist/);
      const nc = await eu.connect();
      await new Kvm(nc).create(bucket); // a plain bucket in the region, not a mirror
      await nc.close();
      await assert.rejects(regionalEdge(eu, bucket), (e: Error) => {
        assert.ok(e instanceof TypeError, String(e));
        assert.match(e.message, /not a mirror.*kv mirror/);
        return true;
      });
      await assert.rejects(
        regionalEdge(eu, bucket, { create: true }),
        /"create" cannot be used with "region"/,
      );
    });

    await t.step("`deno task kv mirror` creates the regional mirror, once", async () => {
      const bucket = uniqueBucket("r");
      await new Kvm(hubNc).create(bucket, { replicas: 3, history: 7, ttl: 3_600_000 });
      const run = async (...args: string[]) => {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--config", `${ROOT}deno.json`, `${ROOT}scripts/kv.ts`, ...args],
          env: { NATS_URL: us.url, NATS_USER: "admin", NATS_PASSWORD: LEAF_PASSWORDS.admin },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const dec = new TextDecoder();
        return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
      };
      const first = await run("mirror", bucket, "--hub-domain", HUB_DOMAIN, "--json");
      assert.equal(first.code, 0, first.stderr);
      const info = JSON.parse(first.stdout);
      assert.equal(info.history, 7, "the mirror keeps the hub bucket's history");
      assert.equal(info.ttlMs, 3_600_000);
      const again = await run("mirror", bucket, "--hub-domain", HUB_DOMAIN);
      assert.equal(again.code, 0, again.stderr);
      const missing = await run("mirror", "nope", "--hub-domain", HUB_DOMAIN);
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /^kv: error: .*does not exist/);
      const usage = await run("mirror", bucket);
      assert.equal(usage.code, 2);
      await new Kvm(hubNc).open(bucket).then((kv) => kv.put("a", enc(1)));
      await using edge = await regionalEdge<number>(us, bucket);
      await waitFor(async () => (await edge.get("a")) === 1, {
        timeoutMs: 20_000,
        message: "the edge reads the hub's value from the new mirror",
      });
    });

    await t.step("reads, replica bootstrap and pushed updates come from the mirror", async () => {
      const b = await regionalBucket(topo, hubNc);
      for (let i = 0; i < 20; i++) await b.hubKv.put(`k${i}`, enc(i));
      await using replica = await regionalEdge<number>(eu, b.name, { mode: "replica" });
      await using lazy = await regionalEdge<number>(us, b.name);
      await replica.ready({ timeoutMs: 30_000 });
      await lazy.ready({ timeoutMs: 30_000 });
      assert.equal(replica.stats().entries, 20);
      assert.equal(replica.peek("k7"), 7);
      // The us mirror copies asynchronously: wait until it holds k19 (written last).
      await waitFor(async () => (await lazy.history("k19")).length === 1, { timeoutMs: 20_000 });
      const miss = await lazy.getEntry("k3");
      assert.equal(miss?.value, 3);
      assert.equal(miss?.source, "miss");
      assert.equal(miss?.stale, false);
      const rev = await b.hubKv.put("k3", enc(33));
      await waitFor(() => replica.peek("k3") === 33 && lazy.peek("k3") === 33, {
        timeoutMs: 20_000,
        message: "a hub write reaches both regions",
      });
      assert.equal((await lazy.getEntry("k3"))?.revision, rev, "mirror revisions are the hub's");
      const s = replica.status();
      assert.equal(s.state, "synced");
      assert.equal(s.region?.hubReachable, true);
      assert.equal(s.region?.hubDomain, HUB_DOMAIN);
      assert.equal(s.region?.mirrorLag, 0);
    });

    await t.step("writes go to the hub: set, create, CAS update, delete, purge", async () => {
      const b = await regionalBucket(topo, hubNc);
      await using edge = await regionalEdge<number>(eu, b.name);
      await using other = await regionalEdge<number>(us, b.name, { mode: "replica" });
      await edge.ready();
      await other.ready({ timeoutMs: 30_000 });
      const r1 = await edge.set("a", 1);
      assert.equal((await b.hubKv.get("a"))?.revision, r1);
      assert.equal(edge.peek("a"), 1, "read-your-writes");
      const r2 = await edge.update("a", 2, r1);
      await assert.rejects(edge.update("a", 3, r1), ConflictError);
      await assert.rejects(edge.create("a", 3), ConflictError);
      const r3 = await edge.create("b", 1);
      assert.ok(r3 > r2);
      await edge.delete("b");
      await edge.purge("a");
      await edge.create("a", 4); // over a purge marker
      await waitFor(() => other.peek("a") === 4 && other.peek("b") === undefined, {
        timeoutMs: 20_000,
        message: "the other region sees the writes",
      }).catch(async (err) =>
        assert.fail(
          `${err.message}: a=${other.peek("a")} b=${other.peek("b")}\n${await regionDiagnosis(
            other as never,
            { region: us, hubNc },
            "a",
          )}`,
        )
      );
      assert.equal((await b.hubKv.get("b"))?.operation, "DEL");
    });

    await t.step("the least-privilege edge of leaf.conf reads, follows and writes", async () => {
      const b = await regionalBucket(topo, hubNc, "cfg");
      await b.hubKv.put("x", enc(1));
      await using edge = await openCache<number>({
        servers: eu.url,
        connectOptions: { user: "edge", pass: LEAF_PASSWORDS.edge, inboxPrefix: "_INBOX_edge" },
        bucket: "cfg",
        mode: "replica",
        region: { hubDomain: HUB_DOMAIN, checkMs: 200 },
        local: { maxItems: 100 },
      });
      await edge.ready({ timeoutMs: 30_000 });
      await waitFor(() => edge.peek("x") === 1, { timeoutMs: 20_000, message: "x arrives" });
      const rev = await edge.set("y", 2);
      assert.equal((await b.hubKv.get("y"))?.revision, rev);
      await b.hubKv.put("x", enc(3));
      await waitFor(() => edge.peek("x") === 3, { timeoutMs: 20_000, message: "update arrives" });
      assert.equal(edge.status().lastError, undefined);
    });

    await t.step(
      "WAN cut: stale reads, mirrored misses answer, writes fail fast; heal converges",
      async () => {
        const b = await regionalBucket(topo, hubNc);
        const keys = Array.from({ length: 30 }, (_, i) => `k${i}`);
        const acked: Acked = new Map();
        for (const k of keys) acked.set(k, { rev: await b.hubKv.put(k, enc(k)), deleted: false });
        await using lazy = await regionalEdge<string>(eu, b.name);
        await using replica = await regionalEdge<string>(eu, b.name, { mode: "replica" });
        await using far = await regionalEdge<string>(us, b.name, { mode: "replica" });
        await lazy.ready();
        await replica.ready({ timeoutMs: 30_000 });
        await far.ready({ timeoutMs: 30_000 });
        // The eu mirror holds every key once the replica edge on it does.
        await waitFor(() => replica.stats().entries === 30, { timeoutMs: 20_000 });
        for (const k of keys.slice(0, 10)) assert.equal(await lazy.get(k), k); // resident

        let opened: Awaited<ReturnType<typeof regionalEdge<string>>> | undefined;
        eu.cut();
        try {
          await waitFor(
            () => [lazy, replica].every((c) => c.status().region?.hubReachable === false),
            { timeoutMs: 20_000, message: "the region's edges see the hub unreachable" },
          );
          for (const c of [lazy, replica]) {
            const s = c.status();
            assert.equal(s.state, "stale");
            assert.ok(
              s.region!.mirrorActiveMs > 3_000,
              `mirror active ${s.region!.mirrorActiveMs}`,
            );
          }
          // Hub writes during the cut: updates, deletes, new keys; only the other region sees them.
          for (const k of keys.slice(0, 5)) {
            acked.set(k, { rev: await b.hubKv.put(k, enc("v2")), deleted: false });
          }
          for (const k of keys.slice(5, 8)) {
            acked.set(k, {
              rev: await b.hubKv.delete(k).then(async () => (await b.hubKv.get(k))!.revision),
              deleted: true,
            });
          }
          acked.set("new", { rev: await b.hubKv.put("new", enc("n")), deleted: false });
          // An edge opened during the cut serves the mirror, stale, and says so.
          opened = await regionalEdge<string>(eu, b.name, { mode: "replica" });
          await opened.ready({ timeoutMs: 30_000 });
          assert.equal(opened.status().state, "stale");
          assert.equal((await opened.getEntry("k1"))?.stale, true);
          await waitFor(() => far.peek("k0") === "v2" && far.peek("new") === "n", {
            timeoutMs: 20_000,
            message: "the healthy region follows the hub",
          });
          const resident = await lazy.getEntry("k0");
          assert.equal(resident?.value, "k0");
          assert.equal(resident?.source, "stale");
          assert.equal(resident?.stale, true);
          const mirrored = await lazy.getEntry("k20"); // never read before: a miss on the mirror
          assert.equal(mirrored?.value, "k20");
          assert.equal(mirrored?.stale, true);
          assert.equal((await replica.getEntry("k6"))?.stale, true);
          for (const write of [() => lazy.set("k1", "x"), () => replica.delete("k2")]) {
            await assert.rejects(write(), (e: Error) => {
              assert.ok(e instanceof UnavailableError, String(e));
              assert.match(e.message, /hub .* unreachable/);
              return true;
            });
          }
        } finally {
          eu.heal();
        }
        for (
          const [c, what] of [[lazy, "lazy edge"], [replica, "replica edge"], [
            far,
            "far edge",
          ]] as const
        ) {
          await waitConverged(c as never, b.hubKv, acked, what);
        }
        await waitConverged(opened as never, b.hubKv, acked, "edge opened during the cut");
        await opened!.close();
        assert.equal(
          replica.peek("k6"),
          undefined,
          "a delete made during the cut reached the region",
        );
        assert.equal(replica.status().region?.hubReachable, true);
        await lazy.set("k1", "after"); // writes work again
      },
    );

    await t.step(
      "a slow WAN (150 ms each way): fresh reads, writes and updates still work",
      async () => {
        const b = await regionalBucket(topo, hubNc);
        await b.hubKv.put("a", enc(1));
        await using edge = await regionalEdge<number>(eu, b.name, { mode: "replica" });
        await edge.ready({ timeoutMs: 30_000 });
        eu.delay(150);
        try {
          const r1 = await edge.set("b", 2); // a round trip to the hub and back
          assert.equal((await b.hubKv.get("b"))?.revision, r1);
          const r2 = await b.hubKv.put("a", enc(3));
          await waitFor(() => edge.peek("a") === 3, {
            timeoutMs: 20_000,
            message: "update arrives",
          });
          assert.equal((await edge.getEntry("a"))?.revision, r2);
          assert.equal(edge.status().region?.hubReachable, true, "a slow hub is not an absent one");
          assert.equal(edge.status().state, "synced");
        } finally {
          eu.delay(0);
        }
      },
    );

    await t.step("deno task serve with KVEDGE_HUB_DOMAIN: a regional HTTP edge", async () => {
      // As leaf.conf's restricted `edge` identity, which may serve bucket cfg only (the earlier
      // step made it; making it again keeps it and its mirrors).
      const b = await regionalBucket(topo, hubNc, "cfg");
      await b.hubKv.put("a", enc({ v: 1 }));
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${ROOT}workers/edge.ts`],
        env: {
          NATS_URL: eu.url,
          NATS_USER: "edge",
          NATS_PASSWORD: LEAF_PASSWORDS.edge,
          NATS_INBOX_PREFIX: "_INBOX_edge",
          KVEDGE_BUCKETS: b.name,
          KVEDGE_HUB_DOMAIN: HUB_DOMAIN,
          KVEDGE_WRITE_TOKEN: "w",
          KVEDGE_LOG_REQUESTS: "0",
          PORT: "0",
        },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let errors = "";
      const drained = (async () => {
        for await (const c of child.stderr.pipeThrough(new TextDecoderStream())) errors += c;
      })().catch(() => {});
      try {
        let text = "";
        const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
        const url = await waitFor(async () => {
          const { value, done } = await reader.read();
          if (done) throw new Error(`worker exited: ${text}${errors}`);
          text += value;
          return /"msg":"listening".*?"url":"([^"]+)"/.exec(text)?.[1];
        }, { timeoutMs: 60_000, message: "the worker listens" });
        void (async () => {
          while (!(await reader.read()).done) { /* keep the pipe drained */ }
        })().catch(() => {});
        const key = `${url}/v1/buckets/${b.name}/keys`;
        const got = await waitFor(async () => {
          const r = await fetch(`${key}/a`);
          if (r.status === 200) return r;
          await r.body?.cancel();
          return undefined;
        }, { timeoutMs: 20_000, message: "the worker serves a from the mirror" });
        assert.deepEqual(await got.json(), { v: 1 });
        const put = await fetch(`${key}/b`, {
          method: "PUT",
          headers: { authorization: "Bearer w", "content-type": "application/json" },
          body: enc({ v: 2 }),
        });
        assert.ok(put.ok, `${put.status}`);
        const { revision } = await put.json();
        assert.equal(
          (await b.hubKv.get("b"))?.revision,
          revision,
          "the PUT landed in the hub's bucket",
        );
        eu.cut();
        try {
          await waitFor(async () => {
            const r = await fetch(`${key}/a`);
            await r.body?.cancel();
            return r.headers.get("x-cache") === "stale";
          }, { timeoutMs: 20_000, message: "the worker serves stale during the WAN cut" });
          const refused = await fetch(`${key}/c`, {
            method: "PUT",
            headers: { authorization: "Bearer w", "content-type": "application/json" },
            body: enc({ v: 3 }),
          });
          assert.equal(refused.status, 503, await refused.text());
        } finally {
          eu.heal();
        }
        assert.doesNotMatch(
          errors,
          /Permissions Violation|superseded/,
          "the edge identity suffices",
        );
      } finally {
        try {
          child.kill("SIGKILL");
        } catch { /* it exited already: the failure above says why */ }
        await child.status;
        await drained;
      }
    });

    await t.step("a leaf node restart during regional traffic: every edge converges", async () => {
      const b = await regionalBucket(topo, hubNc);
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      const traffic = hubTraffic(b.hubKv, keys);
      await using replica = await regionalEdge(eu, b.name, { mode: "replica" });
      await using lazy = await regionalEdge(eu, b.name);
      await replica.ready({ timeoutMs: 30_000 });
      for (const k of keys.slice(0, 10)) await lazy.get(k);
      await waitFor(() => traffic.writes() > 50, { timeoutMs: 30_000 });
      await eu.leaf.kill();
      await waitFor(() => replica.status().connected === false, { timeoutMs: 20_000 });
      const during = traffic.writes();
      await waitFor(() => traffic.writes() > during + 30, { timeoutMs: 30_000 });
      await eu.leaf.restart();
      await waitFor(() => traffic.writes() > during + 60, { timeoutMs: 30_000 });
      await traffic.stop();
      await waitConverged(
        replica as never,
        b.hubKv,
        traffic.acked,
        "replica edge after leaf restart",
      );
      await waitConverged(lazy as never, b.hubKv, traffic.acked, "lazy edge after leaf restart");
    });

    await t.step("a hub leader kill during regional traffic: every edge converges", async () => {
      const b = await regionalBucket(topo, hubNc);
      const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
      const traffic = hubTraffic(b.hubKv, keys);
      await using replica = await regionalEdge(eu, b.name, { mode: "replica" });
      await using far = await regionalEdge(us, b.name, { mode: "replica" });
      await replica.ready({ timeoutMs: 30_000 });
      await far.ready({ timeoutMs: 30_000 });
      await waitFor(() => traffic.writes() > 50, { timeoutMs: 30_000 });
      const leader = await waitFor(() => topo.hub.leaderOf(`KV_${b.name}`), {
        timeoutMs: 20_000,
        message: "the bucket has a leader",
      });
      await leader.kill();
      const during = traffic.writes();
      await waitFor(() => traffic.writes() > during + 60, {
        timeoutMs: 60_000,
        message: "hub writes resume after the election",
      });
      await leader.restart();
      await traffic.stop();
      await waitConverged(
        replica as never,
        b.hubKv,
        traffic.acked,
        "eu edge after leader kill",
        60_000,
        {
          region: eu,
          hubNc,
        },
      );
      await waitConverged(
        far as never,
        b.hubKv,
        traffic.acked,
        "us edge after leader kill",
        60_000,
        {
          region: us,
          hubNc,
        },
      );
    });
  } finally {
    await hubNc.close();
  }
});
