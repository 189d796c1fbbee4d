/**
 * Warm start: reopen a 1M-key replica from its snapshot file after 1% of
 * the keys changed, against a cold bootstrap of the same bucket. Each open
 * is a fresh process (see `bootstrap.ts`); every repetition changes another
 * 1% of the keys before the warm open.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import {
  type BootstrapFigures,
  COLD_TIMES,
  keyOf,
  measureBootstrap,
  valueOf,
} from "./bootstrap.ts";
import { absRow, infoRow, ratioRow, type Scenario, type ScenarioResult, stat } from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket } from "./_helpers.ts";
import { benchServer } from "./_processes.ts";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Rewrites `count` keys starting at a rotating offset, pipelined. */
async function change(kv: KV, n: number, count: number, round: number): Promise<void> {
  const enc = new TextEncoder();
  const start = (round * count) % n;
  const pending = new Set<Promise<unknown>>();
  for (let j = 0; j < count; j++) {
    const i = (start + j) % n;
    const p = kv.put(keyOf(i), enc.encode(JSON.stringify({ id: i, v: `changed-${round}` })));
    pending.add(p);
    p.finally(() => pending.delete(p));
    if (pending.size >= 256) await Promise.race(pending);
  }
  await Promise.all(pending);
}

/** Where a replica's snapshot lives: the bucket of `n` keys and the file. */
export interface SnapshotPlace {
  url: string;
  bucket: string;
  n: number;
  path: string;
}

/** The first open with a snapshot path, in a fresh process: its close() writes the file. */
export async function primeSnapshot(at: SnapshotPlace): Promise<BootstrapFigures> {
  const prime = await measureBootstrap("kvedge", at, { snapshotPath: at.path });
  if (!(await exists(at.path))) throw new Error("the snapshot file was not written");
  return prime;
}

/** A warm open's figures, and whether it said it loaded the snapshot. */
export interface WarmFigures extends BootstrapFigures {
  /** A "snapshot loaded" event was seen. */
  loaded: boolean;
}

/**
 * One warm start: rewrites 1 % of the keys (another 1 % each `round`), then
 * reopens the replica from its snapshot in a fresh process; its close()
 * writes the whole file again.
 */
export async function warmOpen(kv: KV, at: SnapshotPlace, round: number): Promise<WarmFigures> {
  await change(kv, at.n, Math.max(1, Math.round(at.n / 100)), round);
  const w = await measureBootstrap("kvedge", at, { snapshotPath: at.path });
  if (w.entries !== at.n) throw new Error(`warm start held ${w.entries} of ${at.n}`);
  return { ...w, loaded: (w.snapshot ?? []).some((e) => e.includes(" loaded: ")) };
}

/** The warm-start scenario. */
export const scenario: Scenario = {
  name: "warm_start",
  title: "reopen a 1M-key replica from its snapshot after 1% changed vs cold bootstrap",
  async run(ctx): Promise<ScenarioResult> {
    const n = ctx.quick ? 5_000 : 1_000_000;
    const changed = Math.max(1, Math.round(n / 100));
    const dir = await Deno.makeTempDir({ prefix: "kvedge_bench_snap_" });
    const server = await benchServer();
    const base = {
      name: "warm_start",
      title: this.title,
      params: { keys: n, changedPerRep: changed, reps: ctx.reps },
    };
    try {
      const nc = await connectRaw(server.url);
      // Probe on a tiny bucket: does `snapshot: { path }` write a file at all?
      const probeBucket = benchBucket("bench_snap_probe");
      await fillBucket(nc, probeBucket, 10, keyOf, valueOf);
      const probePath = `${dir}/probe.snapshot`;
      const probe = await measureBootstrap(
        "kvedge",
        { url: server.url, bucket: probeBucket, n: 10 },
        { snapshotPath: probePath },
      );
      if (!(await exists(probePath))) {
        await nc.close();
        return {
          ...base,
          rows: [],
          skipped: "not implemented (the snapshot option wrote no file on close)",
          raw: { probeEvents: probe.snapshot ?? [] },
        };
      }
      const bucket = benchBucket("bench_warm");
      ctx.log(`warm_start: loading ${n} keys`);
      await fillBucket(nc, bucket, n, keyOf, valueOf);
      const kv = await new Kvm(nc).open(bucket);
      const at = { url: server.url, bucket, n, path: `${dir}/replica.snapshot` };
      ctx.log("warm_start: first open writes the snapshot");
      const prime = await primeSnapshot(at);
      // The bootstrap scenario of this run already measured cold opens of a
      // bucket of the same size and content: reuse them rather than spend
      // another minute; measure them here when this scenario runs alone.
      const shared = ctx.shared.get(COLD_TIMES) as { keys: number; seconds: number[] } | undefined;
      const reuse = shared !== undefined && shared.keys === n;
      const cold: number[] = reuse ? shared.seconds : [];
      const warm: number[] = [];
      const closes: number[] = [];
      const events: string[][] = [];
      let loaded = true;
      for (let r = 0; r < ctx.reps; r++) {
        ctx.log(`warm_start: rep ${r + 1}/${ctx.reps}`);
        if (!reuse) {
          const c = await measureBootstrap("kvedge", at);
          cold.push(c.ms / 1000);
        }
        const w = await warmOpen(kv, at, r);
        warm.push(w.ms / 1000);
        // Each warm open read 1% changes, so its close() writes the whole file again.
        if (w.closeMs !== undefined) closes.push(w.closeMs / 1000);
        events.push(w.snapshot ?? []);
        loaded &&= w.loaded;
      }
      const size = (await Deno.stat(at.path)).size;
      await nc.close();
      return {
        ...base,
        params: {
          ...base.params,
          snapshotBytes: size,
          cold: reuse
            ? "kvedge cold ready() times of the bootstrap scenario of this run (same size and values)"
            : "measured here, alternating with the warm opens",
        },
        rows: [
          ratioRow(
            `ready() from snapshot, ${n >= 1e6 ? `${n / 1e6}M` : `${n / 1000}k`} keys, 1% changed`,
            "s",
            stat(warm),
            "cold bootstrap",
            stat(cold),
            "le",
            0.1,
            loaded ? undefined : "no 'snapshot loaded' event seen",
          ),
          absRow(
            `snapshot written on close(), ${n >= 1e6 ? `${n / 1e6}M` : `${n / 1000}k`} keys`,
            "s",
            stat(closes),
            "le",
            1.5,
            { note: "whole close(): snapshot file (write, fsync, rename), watcher, connection" },
          ),
          infoRow("first open with snapshot (writes it)", "s", stat([prime.ms / 1000]), {
            note: "info",
          }),
        ],
        raw: { warmS: warm, coldS: cold, closeS: closes, snapshotEvents: events },
      };
    } finally {
      await server.stop();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    }
  },
};
