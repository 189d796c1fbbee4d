import assert from "node:assert/strict";
import { type Cache, openCache } from "../../mod.ts";
import { connectTo, startCluster, uniqueBucket, waitFor } from "../_setup.ts";
import {
  AckedWriter,
  completeFromLeader,
  createReplicatedBucket,
  explainMissing,
  figures,
  readBucket,
  replicaViews,
  scale,
  snapshotBucket,
} from "../_chaos.ts";

Deno.test(
  "chaos: kill -9 of the stream leader loses no acknowledged write, in the bucket or in any edge",
  async () => {
    await using cluster = await startCluster();
    const nc = await connectTo(cluster.url);
    const bucket = uniqueBucket("chaos");
    await createReplicatedBucket(nc, bucket, { replicas: 3, history: 1 });
    const edges: Cache<number>[] = [];
    try {
      for (let i = 0; i < 2; i++) {
        // Opening is set-up here, not what is judged: on a busy machine a new
        // cluster may not answer the first stream info in time (seen once on
        // 2.15.2), and a failed open leaves nothing behind, so retry it.
        edges.push(
          await waitFor(() =>
            openCache<number>({
              servers: cluster.urls,
              bucket,
              mode: "replica",
              local: { maxItems: 100_000 },
              heartbeatMs: 1_000,
              missTimeoutMs: 1_000,
              writeTimeoutMs: 2_000,
              connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
            }), { timeoutMs: 60_000, message: "an edge opened" }),
        );
      }
      await Promise.all(edges.map((e) => e.ready({ timeoutMs: 15_000 })));
      const writer = new AckedWriter(nc, bucket);
      const kills = scale(2, 8);
      const perPhase = scale(150, 1_000);
      const deadline = Date.now() + scale(120_000, 900_000);
      /** Awaited writes until `n` more are acknowledged (or the deadline passes). */
      const writeAcked = async (n: number) => {
        const target = writer.acked.size + n;
        while (writer.acked.size < target) {
          assert.ok(Date.now() < deadline, "the cluster never recovered for writes");
          await writer.writeOne();
        }
      };
      const killed: string[] = [];
      for (let k = 0; k < kills; k++) {
        await writeAcked(perPhase);
        const leader = await waitFor(() => cluster.leaderOf(`KV_${bucket}`), {
          timeoutMs: 15_000,
          message: "the stream has a leader",
        });
        await leader.kill();
        killed.push(leader.name);
        // Writing goes on while the leader is dead: a new one is elected.
        await writeAcked(Math.ceil(perPhase / 2));
        await leader.restart();
      }
      await writeAcked(perPhase);
      // Convergence: the bucket, then every edge, holds every acknowledged write.
      // What the earlier checker did: read at once, while a just-restarted
      // replica may still be catching up (kept as a figure, not a verdict).
      const early = await readBucket(nc, bucket).catch(() => undefined);
      const earlyMissed = early === undefined
        ? "error"
        : [...writer.acked].filter(([k, v]) => early.get(k)?.value !== v).length;
      const snap = await snapshotBucket(nc, bucket);
      const listingMissed = await completeFromLeader(nc, bucket, snap, writer.acked.keys());
      const missingInBucket = [...writer.acked].filter(([k, v]) => snap.get(k)?.value !== v);
      const missingInEdges = await Promise.all(edges.map(async (e) => {
        await waitFor(
          () => e.status().state === "synced" && [...snap].every(([k, s]) => e.peek(k) === s.value),
          { timeoutMs: 30_000, message: "an edge converged to the bucket" },
        ).catch(() => {});
        return [...writer.acked].filter(([k, v]) => e.peek(k) !== v).length;
      }));
      figures("leader-kill", {
        kills: killed.length,
        killed: killed.join(","),
        attempted: writer.attempted,
        acknowledged: writer.acked.size,
        unacknowledged: writer.failed,
        stored: snap.size,
        listingMissed: listingMissed.length,
        earlyReadMissed: earlyMissed,
        ackedMissingInBucket: missingInBucket.length,
        ackedMissingInEdges: missingInEdges.join("/"),
        edgeResyncs: edges.map((e) => e.stats().resyncs).join("/"),
      });
      for (const [i, e] of edges.entries()) {
        // Why an edge resynced: on 2.9.10 a watcher that finds the replicas out
        // of step resyncs ("replicas disagree…", docs/nats-versions.md).
        const why = e.status().lastResyncReason;
        if (why) {
          console.log(`leader-kill: edge ${i} resynced (${e.stats().resyncs}×), last: ${why}`);
        }
      }
      if (missingInBucket.length > 0) {
        // Say what the leader holds at each lost write's acknowledged sequence and
        // whether the edges (fed by their own consumers) saw it: a real loss by
        // NATS and a reader that missed a write look alike otherwise.
        const why = await explainMissing(
          nc,
          bucket,
          missingInBucket.map(([key, value]) => ({ key, value, seq: writer.ackSeq.get(key) })),
        );
        const inEdges = missingInBucket.slice(0, 10).map(([k, v]) =>
          `${k}: ${edges.map((e) => e.peek(k) === v ? "held" : "absent").join("/")}`
        );
        assert.fail(
          `acknowledged writes lost: ${missingInBucket.length}, ` +
            `${missingInBucket.slice(0, 5)}\n${why.join("\n")}\nedges: ${inEdges.join(", ")}`,
        );
      }
      if (missingInEdges.some((n) => n > 0)) {
        // The bucket holds them: say what the leader and each node's replica
        // hold at their acknowledged sequences. An edge's consumer runs on any
        // of the stream's peers, and 2.9.10 replicas can come back out of step
        // after a kill (docs/nats-versions.md), which a kvedge bug must not be
        // mistaken for, nor passed over as.
        const inNoEdge = [...writer.acked].filter(([k, v]) => edges.some((e) => e.peek(k) !== v));
        const why = await explainMissing(
          nc,
          bucket,
          inNoEdge.map(([key, value]) => ({ key, value, seq: writer.ackSeq.get(key) })),
        );
        const seqs = inNoEdge.slice(0, 3).map(([k]) => writer.ackSeq.get(k)!);
        const replicas = await replicaViews(cluster.servers, `KV_${bucket}`, seqs);
        const status = edges.map((e) => JSON.stringify(e.status()));
        assert.fail(
          `acknowledged writes missing from an edge: ${missingInEdges.join("/")}\n` +
            `${why.join("\n")}\n${replicas.join("\n")}\n${status.join("\n")}`,
        );
      }
      for (const e of edges) {
        // Nothing beyond the bucket either: the edge holds exactly its content.
        assert.equal(e.stats().entries, snap.size);
      }
    } finally {
      await Promise.all(edges.map((e) => e.close()));
      await nc.close();
    }
  },
);
