import assert from "node:assert/strict";
import { type Cache, openCache } from "../../mod.ts";
import { versionAtLeast } from "../../src/server_version.ts";
import { connectTo, startCluster, uniqueBucket, waitFor } from "../_setup.ts";
import {
  AckedWriter,
  createReplicatedBucket,
  figures,
  scale,
  snapshotBucket,
  streamSettled,
} from "../_chaos.ts";

/**
 * Failover recovery time. The stream leader of an R3 bucket is killed (and
 * restarted 2 s later) while a writer keeps overwriting a few keys, so the
 * history moves on during the election. For each edge it measures, from the
 * kill, when the new leader acknowledged its first write ("serving") and when
 * the edge was synced again and had applied that write ("converged"). Printed,
 * not asserted: time on a shared two-core machine is not a spec.
 */
Deno.test("chaos: after a leader kill, edges are current soon after the new leader serves", async () => {
  await using cluster = await startCluster();
  const nc = await connectTo(cluster.url);
  const bucket = uniqueBucket("failover");
  // History 1 with overwrites: the stream's first sequence moves on while an edge waits.
  await createReplicatedBucket(nc, bucket, { replicas: 3, history: 1 });
  const common = {
    servers: cluster.urls,
    bucket,
    local: { maxItems: 10_000 },
    heartbeatMs: 1_000,
    missTimeoutMs: 1_000,
    writeTimeoutMs: 2_000,
    connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
  };
  // Every resync's reason, per edge (`status()` keeps only the last one).
  const resyncs: Record<string, string[]> = { replica: [], lazy: [] };
  // Opening is set-up, not what is judged: a fresh R3 stream on a busy
  // machine may leave the first consumer create unanswered (seen in CI), and a
  // failed open leaves nothing behind, so it is retried.
  const opened = (mode: "replica" | "lazy") =>
    waitFor(() =>
      openCache<number>({
        ...common,
        mode,
        onEvent: (e) => void (e.type === "resync" && resyncs[mode]!.push(e.reason)),
      }), {
      timeoutMs: 60_000,
      message: `the ${mode} edge opens`,
    });
  const edges: { name: string; cache: Cache<number> }[] = [
    { name: "replica", cache: await opened("replica") },
    { name: "lazy", cache: await opened("lazy") },
  ];
  const writer = new AckedWriter(nc, bucket, { prefix: "k.", keys: 20 });
  try {
    await Promise.all(edges.map((e) => e.cache.ready({ timeoutMs: 30_000 })));
    writer.start();
    await waitFor(() => writer.acked.size === 20, { timeoutMs: 30_000, message: "first writes" });
    // The lazy edge holds every key, so it follows them all.
    for (const e of edges) for (const k of writer.acked.keys()) await e.cache.get(k);
    const rows: string[] = [];
    const kills = scale(2, 6);
    for (let k = 0; k < kills; k++) {
      await waitFor(
        () => edges.every((e) => e.cache.status().state === "synced"),
        { timeoutMs: 60_000, message: "edges synced before the kill" },
      );
      // The leader as the stream itself reports it (monitoring output may lag).
      const info = await streamSettled(nc, `KV_${bucket}`, Date.now() + 60_000);
      const leader = cluster.servers.find((s) => s.name === info.cluster?.leader);
      assert.ok(leader, `no leader known: ${JSON.stringify(info.cluster)}`);
      await leader.kill();
      // An acknowledgement that arrives from now on comes from a new leader.
      const acksBefore = writer.acks.length;
      const killedAt = performance.now();
      const restarting = (async () => {
        // The fault's schedule, not a wait for a condition: back 2 s after the kill.
        await new Promise((r) => setTimeout(r, 2_000));
        await leader.restart();
      })();
      const serving = await waitFor(
        () => writer.acks.slice(acksBefore).find((a) => a.at > killedAt),
        { timeoutMs: 120_000, intervalMs: 10, message: "a write acknowledged after the kill" },
      );
      const converged = await Promise.all(edges.map(async (e) => {
        await waitFor(
          () =>
            e.cache.status().state === "synced" &&
            e.cache.status().lastRevision >= serving.seq,
          { timeoutMs: 120_000, intervalMs: 10, message: `${e.name} edge converged` },
        );
        return performance.now();
      }));
      await restarting;
      const ms = (t: number) => Math.round(t - killedAt);
      const row = `kill ${k + 1} (${leader.name}): serving ${ms(serving.at)} ms, converged ` +
        edges.map((e, i) => `${e.name} ${ms(converged[i]!)} ms`).join(", ");
      rows.push(row);
      console.log(`  ${row}`);
    }
    await writer.stop();
    // Nothing lost on the way, and no edge fell back to a full resync.
    const snap = await snapshotBucket(nc, bucket);
    for (const e of edges) {
      // get(): a resident entry answers locally, anything else is fetched.
      const differences = async () => {
        const out: string[] = [];
        for (const [key, s] of snap) {
          const got = await e.cache.get(key).catch((err) => `error ${err}`);
          if (got !== s.value) {
            out.push(
              `${key}: got ${got} (resident ${e.cache.peek(key)}), bucket ${s.value}@${s.revision}`,
            );
          }
        }
        return out;
      };
      let last: string[] = [];
      await waitFor(async () => (last = await differences()).length === 0, {
        timeoutMs: 60_000,
        intervalMs: 250,
      }).catch(() => {
        assert.fail(
          `${e.name} edge differs from the bucket: ${last.slice(0, 5).join("; ")}; ` +
            `status ${JSON.stringify(e.cache.status())}`,
        );
      });
    }
    figures("failover", {
      kills,
      acknowledged: writer.acks.length,
      unacknowledged: writer.failed,
      resyncs: edges.map((e) => `${e.name}:${e.cache.stats().resyncs}`).join("/"),
      resyncReasons: edges.map((e) => `${e.name}:${resyncs[e.name]!.join(" + ") || "-"}`)
        .join(" | "),
      lastErrors: edges.map((e) => `${e.name}:${e.cache.status().lastError ?? "-"}`).join(" | "),
      rows: rows.join(" ; "),
    });
    // Nothing forced a flush: a history that moved past an edge is resumed, not
    // resynced. Two exceptions, each a rebuild that serves no wrong value
    // (docs/nats-versions.md): on 2.9 replicas can come back out of step after
    // a leader kill ("replicas disagree", "stream sequence went backwards";
    // seen in a CI run here); and on any server the first stream info after
    // the election may stand below what the edge applied ("stream sequence
    // went backwards": seen once on 2.15.2, last 3112 < applied 3113), at most
    // once per kill.
    const outOfStep = !versionAtLeast(nc.info?.version ?? "0.0.0", "2.10.0");
    const allowed = outOfStep
      ? /^(replicas disagree|stream sequence went backwards)/
      : /^stream sequence went backwards/;
    for (const e of edges) {
      const reasons = resyncs[e.name]!;
      assert.equal(e.cache.stats().resyncs, reasons.length, `${e.name}: every resync was told`);
      assert.deepEqual(reasons.filter((r) => !allowed.test(r)), [], `${e.name}: resynced`);
      assert.ok(reasons.length <= kills, `${e.name}: ${reasons.length} resyncs in ${kills} kills`);
    }
    // A write that timed out may still be stored, so the bucket may hold a newer value.
    for (const [key, value] of writer.acked) {
      assert.ok(Number(snap.get(key)?.value) >= value, `${key}: acknowledged ${value} lost`);
    }
  } finally {
    await writer.stop();
    await Promise.all(edges.map((e) => e.cache.close()));
    await nc.close();
  }
});
