import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { headers } from "@nats-io/nats-core";
import { type Cache, type CacheOptions, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { figures, scale } from "../_chaos.ts";

const KEYS = Array.from({ length: 20 }, (_, i) => `k.${i}`);
/**
 * The writer goes round the keys in order; in every third round it deletes
 * k.0 … k.9 instead of putting them (they are put again in the next round),
 * while k.10 … k.19 are never deleted and so must never read absent.
 */
function opOf(i: number): "PUT" | "DEL" {
  const round = Math.floor(i / KEYS.length);
  return round % 3 === 2 && i % KEYS.length < 10 ? "DEL" : "PUT";
}

/** What a read saw: a revision, or ABSENT. */
const ABSENT = -1;

/**
 * One write of the writer. An acknowledged one has its exact revision; one
 * whose acknowledgement was lost (a restart) may or may not be stored, and if
 * it is, its revision lies strictly between the writer's acknowledged
 * revisions before and after it (one writer, one connection: in order).
 */
interface Write {
  key: string;
  op: "PUT" | "DEL";
  /** Exact revision, if acknowledged. */
  rev?: number;
  /** Highest acknowledged revision before this write was sent. */
  after: number;
  /** Lowest acknowledged revision after it (Infinity until one is known). */
  before: number;
}

/**
 * Judges one key's reads, in the order one edge made them, against the
 * writes: every read must be at or after the position of the one before it
 * (rule 4, monotonic reads), an absence counting as the revision of a DEL
 * that can explain it (rule 2: no read of a put older than a delete already
 * served). Lenient only where a lost acknowledgement leaves a revision
 * unknown: there the earliest revision it could have is taken.
 */
function judgeReads(key: string, reads: number[], writes: Write[]): string[] {
  const dels = writes.filter((w) => w.key === key && w.op === "DEL");
  const delRevs = new Set(dels.map((d) => d.rev));
  const out: string[] = [];
  let pos = 0; // the lowest revision the edge's view of `key` can be at
  let what = "the first read";
  for (const r of reads) {
    if (r !== ABSENT) {
      if (r < pos) out.push(`${key} read at ${r} after ${what}`);
      else if (delRevs.has(r)) out.push(`${key} read a value at ${r}, which is a delete`);
      pos = Math.max(pos, r);
      what = `a read at ${r}`;
      continue;
    }
    // The earliest delete that can lie at or after `pos`.
    let best = Infinity;
    for (const d of dels) {
      const at = d.rev ?? Math.max(pos, d.after + 1);
      if (at >= pos && at < best && (d.rev !== undefined || at < d.before)) best = at;
    }
    if (best === Infinity) {
      out.push(`${key} read absent after ${what}, and no delete of it lies at or after ${pos}`);
    } else {
      pos = best;
      what = `an absence explained by the delete at ${best}`;
    }
  }
  return out;
}

/** Watches one edge: per-key revisions read, and the revisions `changes()` yields. */
class Monitor {
  /** Per key, what each read saw, in order (a revision or ABSENT). */
  readonly reads = new Map<string, number[]>(KEYS.map((k) => [k, []]));
  readonly violations: string[] = [];
  readCount = 0;
  absentReads = 0;
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
          this.readCount++;
          if (e === undefined) this.absentReads++;
          // Judged after the run against every write (judgeReads), resyncs
          // included: a resync of the same bucket keeps revisions comparable.
          // Reads after a flush for a lost tail are not kept: the server reused
          // revisions, so they no longer name one write (see `lost` below).
          if (
            this.edge.stats().resyncs === 0 ||
            !this.edge.status().lastResyncReason?.includes("backwards")
          ) {
            this.reads.get(k)!.push(e === undefined ? ABSENT : e.revision);
          }
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
  const writes: Write[] = [];
  const unknown: Write[] = []; // sent, acknowledgement lost, no later acknowledgement yet
  const writing = (async () => {
    for (let i = 1; !stopWriting; i++) {
      const key = KEYS[i % KEYS.length]!;
      const op = opOf(i);
      const w: Write = { key, op, after: maxAckedRev, before: Infinity };
      writes.push(w);
      try {
        const subject = `$KV.${bucket}.${key}`;
        let ack;
        if (op === "DEL") {
          const h = headers();
          h.set("KV-Operation", "DEL");
          ack = await js.publish(subject, undefined, { headers: h });
        } else {
          ack = await js.publish(subject, JSON.stringify(i));
        }
        acked++;
        w.rev = ack.seq;
        maxAckedRev = Math.max(maxAckedRev, ack.seq);
        for (const u of unknown.splice(0)) u.before = ack.seq;
      } catch {
        unacked++;
        unknown.push(w);
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
      reads: monitors.map((m) => m.readCount).join("/"),
      absentReads: monitors.map((m) => m.absentReads).join("/"),
      deletes: writes.filter((w) => w.op === "DEL").length,
      readErrorsWhileDown: monitors.map((m) => m.readErrors).join("/"),
      changesSeen: monitors.map((m) => m.changes).join("/"),
      changesViolations: monitors.reduce((n, m) => n + m.violations.length, 0),
      resyncs: edges.map((e) => e.stats().resyncs).join("/"),
    });
    for (const m of monitors) {
      assert.deepEqual(m.violations, [], "an edge's changes() went back to an older revision");
      // If the server lost its acknowledged tail (a crash), revisions after it
      // name other writes: the reads until the edge's flush are judged
      // against the writes the stream kept.
      const kept = lost ? writes.filter((w) => w.rev === undefined || w.rev <= lastSeq) : writes;
      const bad = KEYS.flatMap((k) => judgeReads(k, m.reads.get(k)!, kept));
      assert.deepEqual(bad.slice(0, 20), [], `the ${m.edge.mode} edge read out of order`);
    }
    assert.deepEqual(mismatches, [], "an edge does not end equal to the bucket");
    for (const m of monitors) {
      // k.0–k.9 are deleted for a whole round in every three: an edge that
      // never reads one absent serves deleted values (or the check saw none).
      assert.ok(m.absentReads > 0, `the ${m.edge.mode} edge never read a deleted key as absent`);
    }
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
