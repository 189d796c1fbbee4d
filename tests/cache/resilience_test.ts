import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type CacheEvent, type CacheOptions, openCache, UnavailableError } from "../../mod.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import {
  type ClusterHandle,
  connectTo,
  startCluster,
  startServer,
  suiteTransport,
  uniqueBucket,
  waitFor,
} from "../_setup.ts";
import { serverBehindProxy, startProxy } from "../_proxy.ts";
import { fill } from "../_seed.ts";
import { createReplicatedBucket, explainMissing, replicaViews, streamSettled } from "../_chaos.ts";

/** Times a promise that must settle: rejects with a clear message if it hangs. */
async function settlesWithin<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} hung for ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([p, hang]);
  } finally {
    clearTimeout(timer);
  }
}

const fast = {
  missTimeoutMs: 500,
  writeTimeoutMs: 1000,
  heartbeatMs: 500,
  connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50, ignoreClusterUpdates: true },
} satisfies Partial<CacheOptions<unknown>>;

Deno.test("through faults (rule 7)", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);

  await t.step(
    "cut network: stale reads, fast-failing misses and writes, resume without flush",
    async () => {
      await using proxy = startProxy(srv.port);
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket);
      await kv.put("a", JSON.stringify(1));
      const events: CacheEvent[] = [];
      await using c = await openCache<number>({
        ...fast,
        servers: proxy.url,
        bucket,
        local: { maxItems: 100 },
        onEvent: (e) => events.push(e),
      });
      assert.equal(await c.get("a"), 1);
      proxy.cut();
      await waitFor(() => c.status().state === "stale", {
        message: "never noticed the disconnect",
      });
      assert.equal(c.status().connected, false);
      const e = await c.getEntry("a");
      assert.equal(e?.value, 1);
      assert.equal(e?.source, "stale");
      assert.equal(e?.stale, true);
      await settlesWithin(assert.rejects(c.get("missing"), UnavailableError), 2000, "a miss");
      await settlesWithin(assert.rejects(c.set("a", 2), UnavailableError), 2000, "a write");
      // Writes made while the edge is cut off reach it after the network heals.
      await kv.put("a", JSON.stringify(3));
      proxy.restore();
      await waitFor(() => c.status().state === "synced", { timeoutMs: 10_000 });
      await waitFor(() => c.peek("a") === 3, { message: "missed a write made while disconnected" });
      assert.equal(c.stats().resyncs, 0, "a blip must not flush the cache");
      assert.ok(events.some((e) => e.type === "disconnected"));
      assert.ok(events.some((e) => e.type === "connected"));
    },
  );

  await t.step("staleIfErrorMs bounds how long stale entries are served", async () => {
    await using proxy = startProxy(srv.port);
    const bucket = uniqueBucket();
    const kv = await kvm.create(bucket);
    await kv.put("a", "1");
    await using c = await openCache<number>({
      ...fast,
      servers: proxy.url,
      bucket,
      staleIfErrorMs: 300,
      local: { maxItems: 100 },
    });
    assert.equal(await c.get("a"), 1);
    proxy.cut();
    await waitFor(() => !c.status().connected);
    await waitFor(async () => {
      try {
        await c.get("a");
        return false;
      } catch (err) {
        return err instanceof UnavailableError;
      }
    }, { timeoutMs: 5000, message: "stale entry served past staleIfErrorMs" });
    proxy.restore();
    await waitFor(() => c.status().state === "synced", { timeoutMs: 10_000 });
    assert.equal(await c.get("a"), 1);
  });

  await t.step(
    "kill -9 and restart of nats-server: stale meanwhile, then fresh without a resync",
    async () => {
      const bucket = uniqueBucket();
      const kv = await kvm.create(bucket);
      await kv.put("a", "1");
      await using c = await openCache<number>({
        ...fast,
        servers: srv.url,
        bucket,
        local: { maxItems: 100 },
      });
      assert.equal(await c.get("a"), 1);
      await srv.kill();
      await waitFor(() => c.status().state === "stale");
      assert.equal((await c.getEntry("a"))?.source, "stale");
      await settlesWithin(assert.rejects(c.get("b"), UnavailableError), 2000, "a miss");
      await srv.restart();
      await waitFor(() => c.status().state === "synced", { timeoutMs: 15_000 });
      const kv2 = await new Kvm(await connectTo(srv)).open(bucket);
      await kv2.put("a", "2");
      await waitFor(() => c.peek("a") === 2, {
        message: "a write after the restart never arrived",
      });
      assert.equal(c.stats().resyncs, 0);
    },
  );

  // The kill above dropped nc; reconnect for the remaining steps.
  const nc2 = await connectTo(srv);
  const kvm2 = new Kvm(nc2);

  await t.step(
    "bucket deleted and recreated while the edge is disconnected: nothing old survives",
    async () => {
      await using proxy = startProxy(srv.port);
      const bucket = uniqueBucket();
      const kv = await kvm2.create(bucket);
      await kv.put("old", "1");
      await kv.put("both", "1");
      await using c = await openCache<number>({
        ...fast,
        servers: proxy.url,
        bucket,
        local: { maxItems: 100 },
      });
      assert.equal(await c.get("old"), 1);
      assert.equal(await c.get("both"), 1);
      proxy.cut();
      await waitFor(() => !c.status().connected);
      await (await kvm2.open(bucket)).destroy();
      const kvNew = await kvm2.create(bucket);
      await kvNew.put("both", "2"); // revision 1 in the new bucket: lower than what the edge holds
      proxy.restore();
      await waitFor(() => c.status().resyncs >= 1 && c.status().state === "synced", {
        timeoutMs: 15_000,
      });
      assert.match(c.status().lastResyncReason ?? "", /recreated|backwards/);
      assert.equal(await c.get("old"), undefined);
      assert.equal(await c.get("both"), 2);
    },
  );

  await t.step(
    "bucket deleted and recreated while the edge is connected: nothing old survives",
    async () => {
      const bucket = uniqueBucket();
      const kv = await kvm2.create(bucket);
      await kv.put("old", "1");
      await using c = await openCache<number>({
        ...fast,
        servers: srv.url,
        bucket,
        mode: "replica",
        local: { maxItems: 100 },
      });
      await c.ready();
      assert.equal(await c.get("old"), 1);
      await (await kvm2.open(bucket)).destroy();
      const kvNew = await kvm2.create(bucket);
      await kvNew.put("new", "7");
      await waitFor(() => c.status().resyncs >= 1 && c.status().state === "synced", {
        timeoutMs: 15_000,
      });
      await waitFor(() => c.peek("new") === 7);
      assert.equal(await c.get("old"), undefined);
    },
  );

  await t.step(
    "a consumer deleted server-side is noticed by the watchdog and replaced",
    async () => {
      const bucket = uniqueBucket();
      const kv = await kvm2.create(bucket);
      await kv.put("a", "1");
      const events: CacheEvent[] = [];
      await using c = await openCache<number>({
        ...fast,
        servers: srv.url,
        bucket,
        local: { maxItems: 100 },
        onEvent: (e) => events.push(e),
      });
      assert.equal(await c.get("a"), 1);
      const jsm = await jetstreamManager(nc2);
      const consumers = await jsm.consumers.list(`KV_${bucket}`).next();
      assert.equal(consumers.length, 1);
      await jsm.consumers.delete(`KV_${bucket}`, consumers[0]!.name);
      await waitFor(() => events.some((e) => e.type === "watcher_restart"), {
        timeoutMs: 10_000,
        message: "the lost consumer was never replaced",
      });
      await kv.put("a", "2");
      await waitFor(() => c.peek("a") === 2);
      assert.equal(c.stats().resyncs, 0);
    },
  );

  await t.step(
    "history that no longer reaches the last revision: resumes, drops what left the bucket, no resync",
    async () => {
      await using proxy = startProxy(srv.port);
      const bucket = uniqueBucket();
      const kv = await kvm2.create(bucket, { history: 1 });
      await kv.put("a", "1");
      await kv.put("b", "1");
      await using c = await openCache<number>({
        ...fast,
        servers: proxy.url,
        bucket,
        mode: "replica",
        local: { maxItems: 100 },
      });
      await c.ready();
      proxy.cut();
      await waitFor(() => !c.status().connected);
      // A stream purge leaves no marker for "b"; two later writes to "a" (history 1)
      // push the first sequence past the edge's next revision.
      const jsm = await jetstreamManager(nc2);
      await jsm.streams.purge(`KV_${bucket}`);
      await kv.put("a", "2");
      await kv.put("a", "3");
      proxy.restore();
      await waitFor(() => c.status().state === "synced" && c.status().lastRevision >= 4, {
        timeoutMs: 15_000,
      });
      // Revisions 3.. are gone, but nothing a later change did not replace was
      // lost with them except "b", whose history left the bucket with the purge:
      // resuming from the first sequence and dropping older entries is exact.
      assert.equal(c.status().resyncs, 0, c.status().lastResyncReason);
      assert.equal(await c.get("a"), 3);
      assert.equal(await c.get("b"), undefined);
      assert.equal(c.stats().entries, 1);
    },
  );

  await t.step(
    "a stream purge is caught by reconciliation even with no gap and no disconnect",
    async () => {
      const bucket = uniqueBucket();
      const kv = await kvm2.create(bucket);
      await kv.put("a", "1");
      await kv.put("b", "1");
      await using c = await openCache<number>({
        ...fast,
        reconcileMs: 200,
        servers: srv.url,
        bucket,
        mode: "replica",
        local: { maxItems: 100 },
      });
      await c.ready();
      const jsm = await jetstreamManager(nc2);
      await jsm.streams.purge(`KV_${bucket}`);
      await waitFor(() => c.peek("a") === undefined && c.peek("b") === undefined, {
        message: "purged keys are still served",
      });
      await kv.put("a", "2");
      await waitFor(() => c.peek("a") === 2);
      assert.equal(c.stats().resyncs, 0);
    },
  );

  await nc2.close();
});

// Judged against what the stream leader holds. A missing write is explained
// before the test fails: a kvedge bug (the leader holds it, the cache's
// consumer never delivered other content at its sequence), replicas that
// nats-server 2.9.10 left out of step (the consumer delivered other content
// there), or a write the server lost (docs/nats-versions.md).
Deno.test("a watcher resumed after a cut starts at its applied revision: nothing applied twice, nothing lost", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  // Whether the applied revision is still in the stream when the watcher
  // resumes: it is re-read and dropped, or it is gone and the first message is
  // past it (no verdict either way).
  for (const overwrite of [false, true]) {
    await t.step(
      overwrite ? "the applied revision left the stream" : "the applied revision is kept",
      async () => {
        await using proxy = startProxy(srv.port);
        const bucket = uniqueBucket();
        const kv = await kvm.create(bucket); // history 1: a later write to a key removes its older revision
        for (let i = 0; i < 10; i++) await kv.put(`k.${i}`, JSON.stringify(i));
        const events: CacheEvent[] = [];
        await using c = await openCache<number>({
          ...fast,
          servers: proxy.url,
          bucket,
          mode: "replica",
          local: { maxItems: 1000 },
          onEvent: (e) => events.push(e),
        });
        await waitFor(() => c.status().state === "synced");
        const ac = new AbortController();
        const seen: number[] = [];
        const reading = (async () => {
          for await (const ch of c.changes({ signal: ac.signal })) seen.push(ch.revision);
        })().catch(() => {});
        for (let i = 10; i < 20; i++) await kv.put(`k.${i}`, JSON.stringify(i));
        const applied = await kv.put("last", JSON.stringify(-1));
        await waitFor(() => c.peek("last") === -1 && c.status().state === "synced");
        proxy.cut();
        await waitFor(() => c.status().state === "stale", { message: "never noticed the cut" });
        if (overwrite) await kv.put("last", JSON.stringify(-2));
        for (let i = 0; i < 5; i++) await kv.put(`k.${i}`, JSON.stringify(100 + i));
        proxy.restore();
        await waitFor(() => c.status().state === "synced", { timeoutMs: 10_000 });
        for (let i = 20; i < 25; i++) await kv.put(`k.${i}`, JSON.stringify(i));
        const last = (await jetstreamManager(nc).then((m) => m.streams.info(`KV_${bucket}`))).state
          .last_seq;
        await waitFor(() => c.status().lastRevision >= last, { message: "never caught up" });
        ac.abort();
        await reading;
        const restarts = events.flatMap((e) => e.type === "watcher_restart" ? [e] : []);
        assert.ok(
          restarts.some((e) => e.fromRevision === applied),
          `the resumed consumer starts at the applied revision ${applied}: ${
            JSON.stringify(restarts)
          }`,
        );
        // The cache holds exactly the bucket.
        const keys: string[] = [];
        for await (const k of await kv.keys()) keys.push(k);
        for (const k of keys) {
          const e = await kv.get(k);
          assert.equal(c.peek(k), JSON.parse(e!.string()), `key ${k}`);
          assert.equal((await c.getEntry(k))?.revision, e!.revision, `revision of ${k}`);
        }
        assert.equal(keys.length, 26);
        // Every revision after the changes() reader started, once and in order.
        assert.equal(new Set(seen).size, seen.length, `a revision delivered twice: ${seen}`);
        assert.deepEqual(seen, [...seen].sort((a, b) => a - b));
        assert.deepEqual(seen, Array.from({ length: seen.length }, (_, i) => seen[0]! + i));
        assert.equal(seen.at(-1), last);
        assert.equal(c.stats().resyncs, 0, "agreeing replicas must not resync");
      },
    );
  }
});

Deno.test("R3 cluster: every acknowledged write reaches the replica across a leader kill", async () => {
  await using cluster = await startCluster();
  const nc = await connectTo(cluster.url);
  const stopReceiving = new AbortController();
  try {
    await leaderKill(cluster, nc, stopReceiving);
  } finally {
    stopReceiving.abort();
    await nc.close();
  }
});

/** The R3 leader-kill test on `cluster`; `stopReceiving` ends its change recorder. */
async function leaderKill(
  cluster: ClusterHandle,
  nc: NatsConnection,
  stopReceiving: AbortController,
): Promise<void> {
  const bucket = uniqueBucket();
  const stream = `KV_${bucket}`;
  await createReplicatedBucket(nc, bucket, { replicas: 3, history: 1 });
  const restarts: string[] = [];
  // Opening is set-up here, not what is judged: right after the bucket is
  // created a busy machine may not answer the first stream info within the
  // open's deadline (seen: "Cannot open cache …: timed out" after 2 s with four
  // clusters running), and a failed open leaves nothing behind, so retry it.
  await using c = await waitFor(() =>
    openCache<number>({
      ...fast,
      connectOptions: { reconnectTimeWait: 100, reconnectJitter: 50 },
      servers: cluster.urls,
      bucket,
      mode: "replica",
      local: { maxItems: 10_000 },
      onEvent: (e) => {
        if (e.type === "watcher_restart") restarts.push(`from ${e.fromRevision}: ${e.reason}`);
      },
    }), { timeoutMs: 60_000, message: "the cache opened" });
  await c.ready();
  // Every change the cache's watcher delivers, by revision: for a missing
  // write, whether the cache received its sequence with other content.
  const received = new Map<number, string>();
  let receiveError = "";
  const receiving = (async () => {
    for await (const ch of c.changes({ signal: stopReceiving.signal, bufferSize: 100_000 })) {
      received.set(ch.revision, `${ch.key}=${JSON.stringify(ch.value)}`);
    }
  })().catch((err) => receiveError = String(err));
  const js = jetstream(nc, { timeout: 2000 });
  const probe = await jetstreamManager(nc, { timeout: 1_000, checkAPI: false });
  const acked = new Map<string, number>();
  /** Stream sequence each write was acknowledged at. */
  const ackSeq = new Map<string, number>();
  let failed = 0;
  /** Why writes failed: message → count. */
  const failures = new Map<string, number>();
  let killedAt = -1;
  let killed = "";
  // Awaited puts with unique values; after 200 the stream leader is killed and
  // restarted, and writing goes on until 200 more are acknowledged.
  const deadline = Date.now() + 30_000;
  for (let i = 0; acked.size < 400; i++) {
    if (i === 200) {
      const leader = await cluster.leaderOf(stream);
      assert.ok(leader, "no stream leader found");
      await leader.kill();
      killedAt = i;
      killed = leader.name;
      leader.restart().catch(() => {}); // comes back while writes go on
    }
    try {
      const ack = await js.publish(`$KV.${bucket}.w.${i}`, JSON.stringify(i));
      acked.set(`w.${i}`, i);
      ackSeq.set(`w.${i}`, ack.seq);
    } catch (err) {
      failed++; // not acknowledged: may or may not be stored
      const what = String((err as Error)?.message ?? err).slice(0, 60);
      failures.set(what, (failures.get(what) ?? 0) + 1);
      if (Date.now() > deadline) break;
      // Retry once the stream answers again (only its leader answers a stream
      // info), not after a fixed pause: "no responders" comes back at once
      // while the stream has no leader.
      await waitFor(() => probe.streams.info(stream).then((info) => info.cluster?.leader), {
        timeoutMs: Math.max(1, deadline - Date.now()),
      }).catch(() => {});
    }
  }
  assert.equal(killedAt, 200);
  assert.equal(acked.size, 400, "the cluster never recovered for writes");
  console.log(
    `R3 leader kill (${killed}): ${acked.size} writes acknowledged, ${failed} not acknowledged (${
      [...failures].map(([m, n]) => `${n}× ${m}`).join("; ")
    })`,
  );
  const missing = () => [...acked].filter(([k, v]) => c.peek(k) !== v);
  const converged = await waitFor(() => missing().length === 0, { timeoutMs: 30_000 })
    .then(() => true, () => false);
  if (converged) {
    // A 2.9.10 replica out of step, caught by the watcher's resume check
    // (docs/nats-versions.md): the cache resynced instead of missing a write.
    const why = c.status().lastResyncReason;
    if (why?.startsWith("replicas disagree")) console.log(`R3 leader kill: resynced: ${why}`);
    return;
  }
  // Not converged: judge the cache against what the stream leader holds once
  // every replica is current (a consumer on a replica still catching up may
  // lag, and the checker judges data, not latency), and say which side lost
  // each write.
  const settled = await streamSettled(nc, stream, Date.now() + 120_000);
  const jsm = await jetstreamManager(nc, { timeout: 10_000, checkAPI: false });
  /** What the stream leader holds for `key` (a leader-answered get, never a direct get). */
  const held = (key: string) =>
    jsm.streams.getMessage(stream, { last_by_subj: `$KV.${bucket}.${key}` }).then(
      (m) => m?.json<number>(),
      (err) => err?.message?.includes("no message found") ? undefined : Promise.reject(err),
    );
  const leaderHas = new Map<string, number | undefined>();
  for (const [k] of missing()) leaderHas.set(k, await held(k));
  // The same freshness bound again, now against the leader's content.
  const differs = () => [...leaderHas].filter(([k, v]) => c.peek(k) !== v);
  await waitFor(() => differs().length === 0, { timeoutMs: 30_000 }).catch(() => {});
  stopReceiving.abort();
  await receiving;
  const gone = missing();
  if (gone.length === 0) {
    // Caught up once the stream settled: slow, not wrong (data is judged here).
    console.log(`R3 leader kill: the cache converged after the stream settled`);
    return;
  }
  const why = await explainMissing(
    nc,
    bucket,
    gone.map(([key, value]) => ({ key, value, seq: ackSeq.get(key) })),
  );
  /** `key=value` of the leader's message at `seq` ("-" if none). */
  const leaderAt = (seq: number) =>
    jsm.streams.getMessage(stream, { seq }).then(
      (m) => m ? `${m.subject.slice(`$KV.${bucket}.`.length)}=${m.string()}` : "-",
      (err) => err?.message?.includes("no message found") ? "-" : `error ${err?.message}`,
    );
  // Where what the cache's consumer delivered differs from the leader's
  // stream at the same sequence: replicas that diverged, if anywhere.
  const diverged: string[] = [];
  for (const seq of [...received.keys()].sort((a, b) => a - b)) {
    const want = await leaderAt(seq);
    if (want !== received.get(seq)) {
      diverged.push(`seq ${seq}: cache received ${received.get(seq)}, leader holds ${want}`);
    }
  }
  const firstDiverged = Number(/^seq (\d+)/.exec(diverged[0] ?? "")?.[1] ?? 0);
  const around = firstDiverged > 0
    ? [firstDiverged - 1, firstDiverged, firstDiverged + 1]
    : gone.slice(0, 3).map(([k]) => ackSeq.get(k)!);
  const replicas = await replicaViews(
    cluster.servers,
    stream,
    around,
  );
  const report = [
    ...why,
    ...gone.slice(0, 10).map(([k, v]) =>
      `${k}=${v}: cache ${JSON.stringify(c.peek(k))}, leader ${
        JSON.stringify(leaderHas.get(k))
      }, cache received at seq ${ackSeq.get(k)}: ${received.get(ackSeq.get(k)!) ?? "nothing"}`
    ),
    `cache received ${received.size} changes, revisions ${Math.min(...received.keys())}..${
      Math.max(...received.keys())
    }${receiveError ? `, then failed: ${receiveError}` : ""}`,
    `received vs leader: ${diverged.length} sequences differ${
      diverged.length > 0 ? `, first ${diverged.slice(0, 3).join("; ")}` : ""
    }`,
    ...replicas,
    `stream ${stream} once settled: first ${settled.state.first_seq} last ${settled.state.last_seq} ` +
    `msgs ${settled.state.messages}, leader ${settled.cluster?.leader}, replicas ${
      (settled.cluster?.replicas ?? []).map((r) => `${r.name}:${r.current}/${r.lag ?? 0}`).join(
        " ",
      )
    }`,
    `cache status ${JSON.stringify(c.status())}`,
    `watcher restarts (${restarts.length}): ${restarts.slice(-5).join(" | ")}`,
    `killed ${killed}; acknowledged at seqs ${Math.min(...ackSeq.values())}..${
      Math.max(...ackSeq.values())
    }`,
  ].join("\n");
  console.log(`R3 leader kill, not converged within 30 s:\n${report}`);
  // A missing write whose acknowledged sequence the cache's consumer delivered
  // with other content: the replica it read holds other messages at the
  // leader's sequences (nats-server 2.9.10, see docs/nats-versions.md).
  const fromDiverged = gone.filter(([k, v]) => {
    const got = received.get(ackSeq.get(k)!);
    return got !== undefined && got !== `${k}=${v}`;
  });
  // kvedge is judged against the leader: what the leader holds, the cache
  // holds (rule 5), unless the consumer NATS gave it delivered something else
  // at that sequence.
  const kvedgeMissed = differs().filter(([k]) => !fromDiverged.some(([d]) => d === k));
  assert.deepEqual(
    kvedgeMissed.map(([k, v]) => `${k}: cache ${c.peek(k)}, leader ${v}`),
    [],
    `the cache does not hold what the stream leader holds:\n${report}`,
  );
  // The server's own faults, as in chaos/leader_kill_test.ts: reported as
  // such and never passed over.
  assert.deepEqual(
    fromDiverged.map(([k]) => k),
    [],
    `nats-server replicas diverged: the cache's consumer delivered other messages at the ` +
      `sequences of ${fromDiverged.length} acknowledged writes:\n${report}`,
  );
  assert.fail(
    `nats-server lost ${gone.length} acknowledged writes (the cache holds what the leader ` +
      `holds):\n${report}`,
  );
}

Deno.test("R1 fill helper sanity: the seeding used by tests stores what it says", async () => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const bucket = uniqueBucket();
  await new Kvm(nc).create(bucket);
  const last = await fill(nc, bucket, 1000, (i) => i);
  assert.equal(last, 1000);
  await nc.close();
});

Deno.test("close() returns promptly while NATS is unreachable", async () => {
  await using srv = await startServer();
  await using proxy = startProxy(srv.port);
  const nc = await connectTo(srv);
  const bucket = uniqueBucket();
  await new Kvm(nc).create(bucket);
  const c = await openCache<number>({
    ...fast,
    servers: proxy.url,
    bucket,
    local: { maxItems: 10 },
  });
  proxy.cut();
  await waitFor(() => !c.status().connected);
  await settlesWithin(c.close(), 3000, "close() during an outage");
  assert.equal(c.status().state, "closed");
  await nc.close();
});

Deno.test({
  name: "a consumer that goes silent while the connection stays up is noticed and replaced",
  // The proxy reads NATS frames over TCP only (nats.js has one transport per process).
  ignore: suiteTransport() === "websocket",
  fn: async () => {
    // Everything the server sends to the watcher's delivery subject (changes
    // and heartbeats) is held back; pings, replies and the connection itself
    // go on, so only the watcher's own freshness check can tell.
    await using t = await serverBehindProxy();
    const { proxy, kv, bucket } = t;
    await kv.put("a", "1");
    let watcherInbox = "";
    let silenced = "";
    let held = 0;
    proxy.hold((f) => {
      if (f.from === "client" && f.op === "SUB" && f.subject.startsWith("_INBOX.kvedge_")) {
        watcherInbox = f.subject;
      }
      const hold = f.from === "server" && silenced !== "" && f.subscription === silenced;
      if (hold) held++;
      return hold;
    });
    const events: CacheEvent[] = [];
    await using c = await openCache<number>({
      servers: proxy.url,
      bucket,
      local: { maxItems: 100 },
      heartbeatMs: 1_000, // the watchdog fires after 2.5 s of silence
      onEvent: (e) => events.push(e),
    });
    await c.ready({ timeoutMs: 5_000 });
    assert.equal(await c.get("a"), 1);
    assert.notEqual(watcherInbox, "", "the watcher's subscription was seen");
    silenced = watcherInbox;
    const rev = await kv.put("a", "2");
    await waitFor(() => c.peek("a") === 2, {
      timeoutMs: 15_000,
      message: "the change reached the edge through a new consumer",
    });
    assert.ok(held > 0, "nothing was held: the consumer never went silent");
    assert.ok(c.stats().lastRevision >= rev);
    // Its deliveries may overtake the answer to its create, after which the
    // event is emitted.
    const restart = await waitFor(() => events.find((e) => e.type === "watcher_restart"), {
      message: "a watcher_restart event",
    });
    assert.match(
      restart?.type === "watcher_restart" ? restart.reason : "",
      /no message or heartbeat for \d+ ms/,
      `events: ${JSON.stringify(events.map((e) => e.type))}; held ${held}`,
    );
    assert.ok(!events.some((e) => e.type === "disconnected"), "the connection never dropped");
    assert.equal(c.stats().resyncs, 0);
    await waitFor(() => c.status().state === "synced", { message: "synced again" });
  },
});
