/**
 * The keys axis of the scale scenario, per key count: replica `ready()` time,
 * peak RSS and bytes per entry just bootstrapped, kvedge against the raw
 * `kv.watch()` + Map, each bootstrap in a fresh process (the bootstrap
 * scenario's measurement); then the warm start of the same bucket (the
 * warm_start scenario's: reopen from the snapshot after 1 % of the keys
 * changed) against kvedge's cold `ready()`.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { keyOf, measureBootstrap, valueOf } from "./bootstrap.ts";
import { primeSnapshot, type SnapshotPlace, warmOpen } from "./warm_start.ts";
import { type BenchContext, infoRow, type Row, skippedRow, stat } from "./_harness.ts";
import { benchBucket, fillBucket } from "./_helpers.ts";
import { label, lineChart } from "./_chart.ts";

/** What the scenario collects across both axes: its rows, raw figures and SVG plots by file name. */
export interface Collected {
  rows: Row[];
  raw: Record<string, unknown>;
  plots: Record<string, string>;
}

/** Per rep, for one variant: bootstrap seconds, peak RSS (MB), bytes per entry at ready. */
interface KeyFigures {
  s: number[];
  mb: number[];
  bytes: number[];
}

/** The warm starts of one key count. */
interface WarmFigures {
  /** ready() from the snapshot, s, one per rep (each after another 1 % changed). */
  s: number[];
  /** close() of each warm open (it writes the whole file again), s. */
  closeS: number[];
  /** The first open with the snapshot path (cold; its close() writes the file), s. */
  primeS: number;
  /** Size of the snapshot file after the last warm open. */
  snapshotBytes: number;
  /** Every warm open reported loading the snapshot. */
  loaded: boolean;
  /** Snapshot events of each warm open. */
  events: string[][];
}

/** The cold bootstraps: `reps` of each variant, alternating, each reporting its heap growth. */
async function coldReps(
  ctx: BenchContext,
  where: { url: string; bucket: string; n: number },
): Promise<{ k: KeyFigures; w: KeyFigures }> {
  const n = where.n;
  const k: KeyFigures = { s: [], mb: [], bytes: [] };
  const w: KeyFigures = { s: [], mb: [], bytes: [] };
  for (let r = 0; r < ctx.reps; r++) {
    ctx.log(`scale: keys ${label(n)} rep ${r + 1}/${ctx.reps}`);
    for (const v of r % 2 === 0 ? ["raw", "kvedge"] as const : ["kvedge", "raw"] as const) {
      const f = await measureBootstrap(v, where, { heap: true });
      if (f.entries !== n) throw new Error(`${v} held ${f.entries} of ${n} keys`);
      const into = v === "kvedge" ? k : w;
      into.s.push(f.ms / 1000);
      into.mb.push(f.peakRss / 2 ** 20);
      into.bytes.push(f.heapBytes! / n);
    }
  }
  return { k, w };
}

/** The warm starts: one open writes the snapshot, then `reps` warm opens, 1 % changed before each. */
async function warmReps(ctx: BenchContext, kv: KV, at: SnapshotPlace): Promise<WarmFigures> {
  ctx.log(`scale: keys ${label(at.n)}, first open writes the snapshot`);
  const prime = await primeSnapshot(at);
  const out: WarmFigures = {
    s: [],
    closeS: [],
    primeS: prime.ms / 1000,
    snapshotBytes: 0,
    loaded: true,
    events: [],
  };
  for (let r = 0; r < ctx.reps; r++) {
    ctx.log(`scale: keys ${label(at.n)} warm start ${r + 1}/${ctx.reps}`);
    const w = await warmOpen(kv, at, r);
    out.s.push(w.ms / 1000);
    out.closeS.push((w.closeMs ?? NaN) / 1000);
    out.events.push(w.snapshot ?? []);
    out.loaded &&= w.loaded;
  }
  out.snapshotBytes = (await Deno.stat(at.path)).size;
  return out;
}

/** What one key count measured; `warm` is the error's message when the warm starts failed. */
interface Measured {
  k: KeyFigures;
  w: KeyFigures;
  warm: WarmFigures | string;
}

/**
 * One key count: fill a bucket with `n` keys, measure cold then warm opens,
 * destroy it. A failed warm start is reported as such, not the whole run lost.
 */
async function measureKeys(
  ctx: BenchContext,
  options: { nc: NatsConnection; url: string; n: number },
): Promise<Measured> {
  const { nc, url, n } = options;
  const bucket = benchBucket("bench_scale_keys");
  ctx.log(`scale: loading ${n} keys`);
  await fillBucket(nc, bucket, n, keyOf, valueOf);
  const kv = await new Kvm(nc).open(bucket);
  const dir = await Deno.makeTempDir({ prefix: "kvedge_bench_scale_snap_" });
  try {
    const { k, w } = await coldReps(ctx, { url, bucket, n });
    const at = { url, bucket, n, path: `${dir}/replica.snapshot` };
    const warm = await warmReps(ctx, kv, at).catch((err: Error) => {
      ctx.log(`scale: keys ${label(n)} warm start failed: ${err.message}`);
      return err.message.slice(0, 500);
    });
    return { k, w, warm };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await kv.destroy(); // frees the server for the next size
  }
}

const RAW = "raw kv.watch() + Map";

/** The rows of one key count. */
function keyRows(n: number, m: Measured): Row[] {
  const { k, w, warm } = m;
  const warmMetric = `keys ${label(n)}: ready() from snapshot, 1% changed`;
  return [
    infoRow(`keys ${label(n)}: ready()`, "s", stat(k.s), {
      baselineName: RAW,
      baseline: stat(w.s),
    }),
    infoRow(`keys ${label(n)}: peak RSS`, "MB", stat(k.mb), {
      baselineName: RAW,
      baseline: stat(w.mb),
    }),
    typeof warm === "string"
      ? skippedRow(warmMetric, `failed: ${warm}`)
      : infoRow(warmMetric, "s", stat(warm.s), {
        baselineName: "cold bootstrap (kvedge ready() above)",
        baseline: stat(k.s),
        ...(warm.loaded ? {} : { note: "no 'snapshot loaded' event seen" }),
      }),
    infoRow(`keys ${label(n)}: bytes/entry just bootstrapped (not decoded)`, "B", stat(k.bytes), {
      baselineName: RAW,
      baseline: stat(w.bytes),
      note: "Δ(heap + external) after GC, connect → ready",
    }),
  ];
}

/** The keys axis: rows, raw figures and the four plots over `keySizes`. */
export async function keysAxis(
  ctx: BenchContext,
  options: { nc: NatsConnection; url: string; keySizes: number[]; into: Collected },
): Promise<void> {
  const { keySizes, into } = options;
  const curve: Record<string, number[]> = {};
  const add = (name: string, values: number[]) => (curve[name] ??= []).push(stat(values).median);
  for (const n of keySizes) {
    const m = await measureKeys(ctx, { nc: options.nc, url: options.url, n });
    into.rows.push(...keyRows(n, m));
    add("kvedgeS", m.k.s);
    add("rawS", m.w.s);
    add("kvedgeMB", m.k.mb);
    add("rawMB", m.w.mb);
    add("warmS", typeof m.warm === "string" ? [NaN] : m.warm.s);
    add("kvedgeB", m.k.bytes);
    add("rawB", m.w.bytes);
    into.raw[`keys_${n}`] = { kvedge: m.k, raw: m.w, warm: m.warm };
  }
  const kp = (name: string) =>
    keySizes.map((n, i) => [n, curve[name]![i]!] as [number, number])
      .filter(([, y]) => Number.isFinite(y)); // a size whose warm start failed has no point
  into.plots["scale_keys_ready.svg"] = lineChart("replica ready() vs keys", "keys", "seconds", [
    { name: "kvedge", points: kp("kvedgeS") },
    { name: "raw kv.watch()", points: kp("rawS") },
  ]);
  into.plots["scale_keys_rss.svg"] = lineChart("peak RSS vs keys", "keys", "MB", [
    { name: "kvedge", points: kp("kvedgeMB") },
    { name: "raw kv.watch()", points: kp("rawMB") },
  ]);
  into.plots["scale_keys_warm.svg"] = lineChart(
    "kvedge ready(): snapshot (1% changed) vs cold",
    "keys",
    "seconds",
    [{ name: "cold", points: kp("kvedgeS") }, { name: "from snapshot", points: kp("warmS") }],
  );
  into.plots["scale_keys_bytes.svg"] = lineChart("bytes/entry just bootstrapped", "keys", "B", [
    { name: "kvedge", points: kp("kvedgeB") },
    { name: "raw kv.watch()", points: kp("rawB") },
  ]);
}
