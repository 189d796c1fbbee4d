/**
 * The keys axis of the scale scenario: replica `ready()` time and peak RSS
 * per key count, kvedge against the raw `kv.watch()` + Map, each bootstrap in
 * a fresh process (the bootstrap scenario's measurement).
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { keyOf, measureBootstrap, valueOf } from "./bootstrap.ts";
import { type BenchContext, infoRow, type Row, stat } from "./_harness.ts";
import { benchBucket, fillBucket } from "./_helpers.ts";
import { label, lineChart } from "./_chart.ts";

/** What the scenario collects across both axes: its rows, raw figures and SVG plots by file name. */
export interface Collected {
  rows: Row[];
  raw: Record<string, unknown>;
  plots: Record<string, string>;
}

/** Bootstrap seconds and peak RSS (MB) per rep, for one variant. */
interface KeyFigures {
  s: number[];
  mb: number[];
}

/** One key count: fill a bucket with `n` keys, bootstrap each variant `reps` times, destroy it. */
async function measureKeys(
  ctx: BenchContext,
  options: { nc: NatsConnection; url: string; n: number },
): Promise<{ k: KeyFigures; w: KeyFigures }> {
  const { nc, url, n } = options;
  const bucket = benchBucket("bench_scale_keys");
  ctx.log(`scale: loading ${n} keys`);
  await fillBucket(nc, bucket, n, keyOf, valueOf);
  const k: KeyFigures = { s: [], mb: [] };
  const w: KeyFigures = { s: [], mb: [] };
  for (let r = 0; r < ctx.reps; r++) {
    ctx.log(`scale: keys ${label(n)} rep ${r + 1}/${ctx.reps}`);
    for (const v of r % 2 === 0 ? ["raw", "kvedge"] as const : ["kvedge", "raw"] as const) {
      const f = await measureBootstrap(v, url, bucket, n);
      if (f.entries !== n) throw new Error(`${v} held ${f.entries} of ${n} keys`);
      (v === "kvedge" ? k : w).s.push(f.ms / 1000);
      (v === "kvedge" ? k : w).mb.push(f.peakRss / 2 ** 20);
    }
  }
  await (await new Kvm(nc).open(bucket)).destroy(); // frees the server for the next size
  return { k, w };
}

/** The keys axis: rows, raw figures and the ready() and RSS plots over `keySizes`. */
export async function keysAxis(
  ctx: BenchContext,
  options: { nc: NatsConnection; url: string; keySizes: number[]; into: Collected },
): Promise<void> {
  const { keySizes, into } = options;
  const keyCurve = {
    kvedgeS: [] as number[],
    rawS: [] as number[],
    kvedgeMB: [] as number[],
    rawMB: [] as number[],
  };
  for (const n of keySizes) {
    const { k, w } = await measureKeys(ctx, { nc: options.nc, url: options.url, n });
    into.rows.push(
      infoRow(`keys ${label(n)}: ready()`, "s", stat(k.s), {
        baselineName: "raw kv.watch() + Map",
        baseline: stat(w.s),
      }),
      infoRow(`keys ${label(n)}: peak RSS`, "MB", stat(k.mb), {
        baselineName: "raw kv.watch() + Map",
        baseline: stat(w.mb),
      }),
    );
    keyCurve.kvedgeS.push(stat(k.s).median);
    keyCurve.rawS.push(stat(w.s).median);
    keyCurve.kvedgeMB.push(stat(k.mb).median);
    keyCurve.rawMB.push(stat(w.mb).median);
    into.raw[`keys_${n}`] = { kvedge: k, raw: w };
  }
  const kp = (ys: number[]) => keySizes.map((n, i) => [n, ys[i]!] as [number, number]);
  into.plots["scale_keys_ready.svg"] = lineChart("replica ready() vs keys", "keys", "seconds", [
    { name: "kvedge", points: kp(keyCurve.kvedgeS) },
    { name: "raw kv.watch()", points: kp(keyCurve.rawS) },
  ]);
  into.plots["scale_keys_rss.svg"] = lineChart("peak RSS vs keys", "keys", "MB", [
    { name: "kvedge", points: kp(keyCurve.kvedgeMB) },
    { name: "raw kv.watch()", points: kp(keyCurve.rawMB) },
  ]);
}
