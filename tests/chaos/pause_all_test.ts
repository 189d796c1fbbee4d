import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { type Cache, type CacheOptions, openCache, UnavailableError } from "../../mod.ts";
import { connectTo, startCluster, uniqueBucket, waitFor } from "../_setup.ts";
import { createReplicatedBucket, figures, scale, settlesWithin } from "../_chaos.ts";

const MISS_TIMEOUT_MS = 1_000;
const WRITE_TIMEOUT_MS = 1_500;
/** Slack on top of a deadline before a request counts as hung (event loop, GC, CI load). */
const SLACK_MS = 2_000;

Deno.test("chaos: SIGSTOP of every server: stale reads, misses fail in time, nothing hangs, convergence after", async () => {
  await using cluster = await startCluster();
  const nc = await connectTo(cluster.url);
  const bucket = uniqueBucket("chaos");
  const kv = await createReplicatedBucket(nc, bucket, { replicas: 3, history: 2 });
  const keys = Array.from({ length: 50 }, (_, i) => `k.${i}`);
  for (const k of keys) await kv.put(k, JSON.stringify(1));
  const common: Partial<CacheOptions<number>> = {
    servers: cluster.urls,
    bucket,
    local: { maxItems: 1_000 },
    heartbeatMs: 1_000,
    missTimeoutMs: MISS_TIMEOUT_MS,
    writeTimeoutMs: WRITE_TIMEOUT_MS,
    connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
    // Reconciliation is what notices a consumer that outlived its stream's
    // leader (see the flush reasons below); every 5 s keeps the wait short.
    reconcileMs: 5_000,
  };
  const edges: Cache<number>[] = [];
  // Every flush's reason, per edge mode (the status only keeps the last one).
  const flushReasons = new Map<string, string[]>([["lazy", []], ["replica", []]]);
  const open = (mode: "lazy" | "replica") =>
    openCache<number>({
      ...common,
      mode,
      onEvent: (ev) => {
        if (ev.type === "resync") flushReasons.get(mode)!.push(ev.reason);
      },
    } as CacheOptions<number>);
  // Opening is set-up, not what is tested: a fresh R3 stream on a loaded
  // machine can leave the first consumer create unanswered (a CI run: "Cannot
  // watch bucket …: timed out", a typed UnavailableError), so it is retried.
  const opened = (mode: "lazy" | "replica") =>
    waitFor(() =>
      open(mode).catch((err) => {
        if (err instanceof UnavailableError) return undefined;
        throw err;
      }), { timeoutMs: 90_000, message: `the ${mode} edge opens` });
  try {
    edges.push(await opened("lazy"));
    edges.push(await opened("replica"));
    for (const e of edges) {
      await e.ready({ timeoutMs: 15_000 });
      for (const k of keys) assert.equal(await e.get(k), 1); // resident from here on
    }
    const pauseMs = scale(5_000, 20_000);
    let reads = 0;
    let staleReads = 0;
    let missesFailed = 0;
    let writesFailed = 0;
    let slowestMissMs = 0;
    let slowestWriteMs = 0;
    for (const s of cluster.servers) s.pause();
    const pausedAt = Date.now();
    try {
      // The fault lasts `pauseMs`; the edges are exercised the whole time.
      for (let round = 0; Date.now() - pausedAt < pauseMs; round++) {
        for (const e of edges) {
          for (const k of keys.slice(0, 10)) {
            const entry = await settlesWithin(e.getEntry(k), SLACK_MS, `a resident read of ${k}`);
            assert.equal(entry?.value, 1, `resident ${k} not served while NATS is paused`);
            reads++;
            if (entry?.stale) staleReads++;
          }
          const t0 = Date.now();
          const miss = await settlesWithin(
            e.get(`absent.${round}`).then(() => undefined, (err) => err),
            MISS_TIMEOUT_MS + SLACK_MS,
            "a miss",
          );
          // Lazy misses time out; a synced replica answers "absent" locally.
          if (miss !== undefined) {
            assert.ok(miss instanceof UnavailableError, `a miss failed with ${miss}`);
            missesFailed++;
            slowestMissMs = Math.max(slowestMissMs, Date.now() - t0);
          }
          if (round % 3 === 0) {
            const w0 = Date.now();
            const err = await settlesWithin(
              (e as Cache<number>).set("k.0", 2).then(() => undefined, (err) => err),
              WRITE_TIMEOUT_MS + SLACK_MS,
              "a write",
            );
            assert.ok(err instanceof UnavailableError, `a write while paused ended with ${err}`);
            writesFailed++;
            slowestWriteMs = Math.max(slowestWriteMs, Date.now() - w0);
          }
        }
      }
    } finally {
      for (const s of cluster.servers) s.resume();
    }
    const resumedAt = Date.now();
    // After the pause: writes succeed again and reach both edges.
    // A cluster whose every node was frozen may take long to elect again on a
    // machine whose cores are all busy: this judges what happens, not how fast.
    const rev = await waitFor(() => kv.put("k.1", JSON.stringify(3)).catch(() => 0), {
      timeoutMs: 120_000,
      message: "the cluster accepts writes again",
    });
    const writableMs = Date.now() - resumedAt;
    const edgeConvergedMs: number[] = [];
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    /** What the stream's leader holds for `key` (not a replica's direct get). */
    const held = async (key: string) => {
      const m = await jsm.streams.getMessage(`KV_${bucket}`, {
        last_by_subj: `$KV.${bucket}.${key}`,
      });
      return { value: m?.json<number>(), revision: m?.seq };
    };
    const staleInfoFlushes: string[] = [];
    for (const e of edges) {
      // Converged: synced, and k.0 (written by the edges while paused: their
      // writes failed but may be stored) and k.1 as the stream leader has them.
      let last = "";
      await waitFor(async () => {
        const status = e.status();
        const diffs: string[] = [];
        for (const key of ["k.0", "k.1"]) {
          const want = await held(key);
          // Resident on both edges (read before the pause): a local hit, kept
          // current by the watcher; after a flush, a lazy edge reads it from KV.
          const got = await e.getEntry(key);
          if (got?.value !== want.value || got?.revision !== want.revision) {
            diffs.push(
              `${key}: edge ${got?.value}@${got?.revision}, leader ${want.value}@${want.revision}`,
            );
          }
        }
        last = `${diffs.join("; ")}; status ${JSON.stringify(status)}`;
        return status.state === "synced" && diffs.length === 0;
      }, {
        timeoutMs: 60_000,
        message: `the ${e.mode} edge converged after the pause`,
      }).catch((err) => assert.fail(`${err.message}: ${last}`));
      const { resyncs } = e.status();
      const reasons = flushReasons.get(e.mode)!;
      if (resyncs > 0) {
        // The one reason a flush is allowed for: nats-server 2.9.10, its
        // servers resumed, can answer a stream info with an older state (last
        // 50 while revision 51 was acknowledged and delivered): a server that
        // still takes itself for the stream's leader. A stream that went
        // backwards must be rebuilt, and the edge cannot tell the two apart.
        // On a loaded machine the stale answers can last long enough for a
        // second flush (seen once in CI: 2, both for this reason).
        // The other: 2.9.10 delivered a write made while paused (never
        // acknowledged) that the new leader did not hold, and took the next
        // write at the same revision (a CI run: the edge held k.0 2@51, the
        // leader k.1 3@51, lag 0, synced). Reconciliation sees the leader
        // changed, restarts the watcher at its applied revision, finds another
        // message there and rebuilds; or its revision check asks the leader
        // for revision 51 and finds k.1 there (another CI run: the rebuild
        // after "went backwards" read the replica still holding k.0 2@51, and
        // then the leader took k.1 at 51). A rebuild's consumer may land on
        // that replica again, so each reconciliation round may find it once
        // more: beyond two, one flush per round is allowed, never more.
        // Every other reason fails the test, and so does a flush without a
        // resync event.
        assert.equal(reasons.length, resyncs, `resync events ${reasons.join(" | ")}`);
        const rounds = Math.floor((Date.now() - resumedAt) / common.reconcileMs!);
        assert.ok(
          resyncs <= 2 + rounds,
          `flushed ${resyncs} times in ${rounds} rounds: ${reasons.join(" | ")}`,
        );
        for (const r of reasons) {
          assert.match(r, /^(stream sequence went backwards|replicas disagree at revision)/);
        }
        staleInfoFlushes.push(`${e.mode}: ${reasons.join(" | ")}`);
      }
      edgeConvergedMs.push(Date.now() - resumedAt);
    }
    // The server's own durability (docs/guarantees.md): the write acknowledged
    // at `rev` after the resume is still k.1's latest, as the stream leader
    // answers. Nothing wrote k.1 since, and no process died (SIGSTOP loses no
    // state), so anything else is a lost acknowledged write and fails. Asked
    // again while a 2.9.10 server that still takes itself for the leader may
    // answer with an older state (docs/nats-versions.md), never accepted.
    let k1 = await held("k.1");
    await waitFor(async () => {
      k1 = await held("k.1").catch(() => k1);
      return k1.revision === rev && k1.value === 3;
    }, { timeoutMs: 30_000 }).catch(() =>
      assert.fail(
        `nats-server lost an acknowledged write: k.1 = 3 acknowledged at ${rev}, ` +
          `the stream leader holds ${k1.value}@${k1.revision}`,
      )
    );
    const convergedMs = Date.now() - resumedAt;
    figures("pause-all", {
      pausedMs: resumedAt - pausedAt,
      residentReads: reads,
      servedStale: staleReads,
      missesFailedFast: missesFailed,
      slowestMissMs,
      writesFailedFast: writesFailed,
      slowestWriteMs,
      writableAfterMs: writableMs,
      edgesConvergedAfterMs: edgeConvergedMs.join("/"),
      convergedAfterMs: convergedMs,
      resyncs: edges.map((e) => e.stats().resyncs).join("/"),
      staleStreamInfoFlushes: staleInfoFlushes.join(" | ") || "-",
      lastErrors: edges.map((e) => e.status().lastError ?? "-").join(" | "),
    });
    assert.ok(missesFailed > 0, "no miss was attempted against the paused cluster");
  } finally {
    await Promise.all(edges.map((e) => e.close()));
    await nc.close();
  }
});
