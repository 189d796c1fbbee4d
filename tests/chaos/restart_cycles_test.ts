import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { type Cache, type CacheOptions, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { figures, scale } from "../_chaos.ts";

const KEYS = Array.from({ length: 20 }, (_, i) => `k.${i}`);

/** Watches one edge: per-key revisions read, and the revisions `changes()` yields. */
class Monitor {
  readonly lastRead = new Map<string, number>();
  readonly violations: string[] = [];
  reads = 0;
  readErrors = 0;
  changes = 0;
  #lastChange = 0;
  #epochResyncs = 0;
  #stop = new AbortController();
  #done: Promise<unknown>;

  constructor(readonly edge: Cache<number>) {
    this.#done = Promise.all([this.#readLoop(), this.#changeLoop()]);
  }

  async #readLoop(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      for (const k of KEYS) {
        try {
          const e = await this.edge.getEntry(k);
          this.reads++;
          if (e === undefined) continue;
          const last = this.lastRead.get(k) ?? 0;
          // A full resync may legitimately restart revisions; none is expected here.
          if (e.revision < last && this.edge.stats().resyncs === 0) {
            this.violations.push(`${this.edge.mode}: ${k} read at ${e.revision} after ${last}`);
          }
          this.lastRead.set(k, Math.max(last, e.revision));
        } catch {
          this.readErrors++; // a miss while the server is down: fails fast, allowed
        }
      }
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  async #changeLoop(): Promise<void> {
    for await (const c of this.edge.changes({ signal: this.#stop.signal })) {
      this.changes++;
      const resyncs = this.edge.stats().resyncs;
      if (resyncs !== this.#epochResyncs) {
        this.#epochResyncs = resyncs; // a new epoch: revisions start over
        this.#lastChange = 0;
      }
      if (c.revision <= this.#lastChange) {
        this.violations.push(`${this.edge.mode}: change ${c.revision} after ${this.#lastChange}`);
      }
      this.#lastChange = c.revision;
    }
  }

  async stop(): Promise<void> {
    this.#stop.abort();
    await this.#done.catch(() => {});
  }
}

Deno.test("chaos: nats-server restarted over and over during a watch: monotonic, no flush, ends equal", async () => {
  await using srv = await startServer();
  const admin = await connectTo(srv);
  const bucket = uniqueBucket("chaos");
  const kv = await new Kvm(admin).create(bucket, { history: 5 });
  for (const k of KEYS) await kv.put(k, JSON.stringify(0));
  const common: Partial<CacheOptions<number>> = {
    servers: srv.url,
    bucket,
    local: { maxItems: 1_000 },
    heartbeatMs: 500,
    missTimeoutMs: 500,
    writeTimeoutMs: 1_000,
    connectOptions: { reconnectTimeWait: 50, reconnectJitter: 20 },
  };
  const edges = [
    await openCache<number>({ ...common, mode: "lazy" } as CacheOptions<number>),
    await openCache<number>({ ...common, mode: "replica" } as CacheOptions<number>),
  ];
  const monitors: Monitor[] = [];
  // The writer has its own connection, so its acknowledgements are independent of the edges'.
  const wnc = await connectTo(srv);
  const js = jetstream(wnc, { timeout: 1_000 });
  let acked = 0;
  let unacked = 0;
  let maxAckedRev = 0;
  let stopWriting = false;
  const writing = (async () => {
    for (let i = 1; !stopWriting; i++) {
      try {
        const ack = await js.publish(`$KV.${bucket}.${KEYS[i % KEYS.length]}`, JSON.stringify(i));
        acked++;
        maxAckedRev = Math.max(maxAckedRev, ack.seq);
      } catch {
        unacked++;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  })();
  const cycles = scale(10, 40);
  const kinds: string[] = [];
  try {
    for (const e of edges) {
      await e.ready({ timeoutMs: 10_000 });
      monitors.push(new Monitor(e));
    }
    for (let cycle = 0; cycle < cycles; cycle++) {
      const before = acked;
      await waitFor(() => acked >= before + 20, { timeoutMs: 20_000, message: "writes go on" });
      // Alternate a clean restart (SIGTERM) and a crash (SIGKILL) before starting again.
      if (cycle % 2 === 0) {
        kinds.push("term");
        await srv.restart();
      } else {
        kinds.push("kill");
        await srv.kill();
        await srv.restart();
      }
      await waitFor(() => edges.every((e) => e.status().state === "synced"), {
        timeoutMs: 20_000,
        message: `both edges synced again after restart ${cycle + 1}`,
      });
    }
    stopWriting = true;
    await writing;
    const jsm = await jetstreamManager(admin);
    const lastSeq = (await jsm.streams.info(`KV_${bucket}`)).state.last_seq;
    for (const e of edges) {
      await waitFor(() => e.stats().lastRevision >= lastSeq && e.status().state === "synced", {
        timeoutMs: 20_000,
        message: `the ${e.mode} edge applied everything`,
      });
    }
    for (const m of monitors) await m.stop();
    // Ends equal to the bucket, key by key.
    const lost = lastSeq < maxAckedRev;
    const mismatches: string[] = [];
    for (const k of KEYS) {
      const truth = await kv.get(k);
      const want = truth?.operation === "PUT" ? truth.json<number>() : undefined;
      for (const e of edges) {
        const got = await e.getEntry(k);
        if (got?.value !== want || (got && got.revision !== truth?.revision)) {
          mismatches.push(
            `${e.mode} ${k}: ${got?.value}@${got?.revision} != ${want}@${truth?.revision}`,
          );
        }
      }
    }
    figures("restart-cycles", {
      cycles,
      restarts: kinds.join(","),
      writesAcked: acked,
      writesUnacked: unacked,
      streamLastSeq: lastSeq,
      highestAckedRev: maxAckedRev,
      serverLostAckedTail: lost,
      reads: monitors.map((m) => m.reads).join("/"),
      readErrorsWhileDown: monitors.map((m) => m.readErrors).join("/"),
      changesSeen: monitors.map((m) => m.changes).join("/"),
      monotonicViolations: monitors.reduce((n, m) => n + m.violations.length, 0),
      resyncs: edges.map((e) => e.stats().resyncs).join("/"),
    });
    for (const m of monitors) {
      assert.deepEqual(m.violations, [], "an edge went back to an older revision");
    }
    assert.deepEqual(mismatches, [], "an edge does not end equal to the bucket");
    if (!lost) {
      for (const e of edges) {
        assert.equal(e.stats().resyncs, 0, `the ${e.mode} edge flushed without reason`);
      }
    } else {
      // The server lost acknowledged writes in a crash: a resync is the right answer.
      for (const e of edges) assert.ok(e.status().lastResyncReason, "a lost tail went unreported");
    }
  } finally {
    stopWriting = true;
    await writing.catch(() => {});
    for (const m of monitors) await m.stop();
    await Promise.all(edges.map((e) => e.close()));
    await wnc.close();
    await admin.close();
  }
});
