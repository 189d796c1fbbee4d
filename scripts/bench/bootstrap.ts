/**
 * Replica bootstrap: `ready()` of a `mode: "replica"` cache over buckets of
 * 100k and 1M small keys, against a raw `kv.watch()` that keeps every entry
 * in a Map until the initial snapshot is done (the entry whose `delta` is 0).
 * Each measurement is a fresh process: the time covers connect → ready, and
 * the process's peak RSS is reported.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import { jetstream } from "@nats-io/jetstream";
import { openCache } from "../../mod.ts";
import { ratioRow, type Row, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket, peakRss, usedAfterGc } from "./_helpers.ts";
import { benchServer, childArgs, emit, runChild } from "./_processes.ts";

const enc = new TextEncoder();

/** Key number `i` of a bootstrap bucket. */
export function keyOf(i: number): string {
  return `k.${i}`;
}

/** A small JSON value (about 40 bytes) for key number `i`. */
export function valueOf(i: number): Uint8Array {
  return enc.encode(JSON.stringify({ id: i, v: "value-" + i.toString(36) }));
}

/** What a bootstrap child reports. */
export interface BootstrapFigures {
  /** Connect → ready, in ms. */
  ms: number;
  /** Peak RSS of the process, bytes. */
  peakRss: number;
  /** Entries held at ready. */
  entries: number;
  /** Snapshot events seen (warm start). */
  snapshot?: string[];
  /** Duration of close(), ms (it writes the snapshot file when one is configured). */
  closeMs?: number;
  /**
   * With `heap`: growth of V8 heap + external memory after forced GCs
   * ({@link usedAfterGc}) from before connecting to ready, bytes. It includes
   * the connection and the code the open compiled, a fixed few MB.
   */
  heapBytes?: number;
}

/** What else a bootstrap child does besides timing `ready()`. */
export interface BootstrapOptions {
  /** kvedge: open with `snapshot: { path }` (loaded at open, written on close). */
  snapshotPath?: string;
  /** Also report {@link BootstrapFigures.heapBytes} (the child runs with `--expose-gc`). */
  heap?: boolean;
}

/** Runs one bootstrap measurement in a fresh process. */
export function measureBootstrap(
  variant: "kvedge" | "raw",
  where: { url: string; bucket: string; n: number },
  options: BootstrapOptions = {},
): Promise<BootstrapFigures> {
  const { url, bucket, n } = where;
  const args = ["--child", variant, "--url", url, "--bucket", bucket, "--n", String(n)];
  if (options.snapshotPath) args.push("--snapshot", options.snapshotPath);
  if (options.heap) args.push("--heap");
  const v8Flags = options.heap ? ["--expose-gc"] : [];
  return runChild<BootstrapFigures>(import.meta.filename!, args, { v8Flags });
}

/** Key of `ctx.shared` holding the cold kvedge ready() times (s) of the largest size. */
export const COLD_TIMES = "bootstrap.coldSeconds";

async function sizeRows(
  n: number,
  reps: number,
  url: string,
  bucket: string,
): Promise<{ rows: Row[]; raw: Record<"kvedge" | "raw", { ms: number[]; rss: number[] }> }> {
  const k = { ms: [] as number[], rss: [] as number[] };
  const w = { ms: [] as number[], rss: [] as number[] };
  for (let r = 0; r < reps; r++) {
    const order = r % 2 === 0 ? ["raw", "kvedge"] as const : ["kvedge", "raw"] as const;
    for (const v of order) {
      const f = await measureBootstrap(v, { url, bucket, n });
      if (f.entries !== n) throw new Error(`${v} held ${f.entries} of ${n} keys at ready`);
      const into = v === "kvedge" ? k : w;
      into.ms.push(f.ms / 1000);
      into.rss.push(f.peakRss / 2 ** 20);
    }
  }
  const label = n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`;
  const rows: Row[] = [
    ratioRow(
      `ready() ${label} keys`,
      "s",
      stat(k.ms),
      "raw kv.watch() snapshot",
      stat(w.ms),
      "le",
      n >= 1_000_000 ? 0.8 : 1.0,
    ),
  ];
  if (n >= 1_000_000) {
    rows.push(
      ratioRow(
        `peak RSS at ${label} keys`,
        "MB",
        stat(k.rss),
        "raw kv.watch() + Map",
        stat(w.rss),
        "le",
        0.6,
      ),
    );
  } else {
    rows.push(
      ratioRow(
        `peak RSS at ${label} keys`,
        "MB",
        stat(k.rss),
        "raw kv.watch() + Map",
        stat(w.rss),
        undefined,
        undefined,
        "info",
      ),
    );
  }
  return { rows, raw: { kvedge: k, raw: w } };
}

/** The replica-bootstrap scenario. */
export const scenario: Scenario = {
  name: "bootstrap",
  title: "replica ready() on 100k and 1M keys vs raw kv.watch() initial snapshot",
  async run(ctx) {
    const sizes = ctx.quick ? [5_000] : [100_000, 1_000_000];
    const server = await benchServer();
    const rows: Row[] = [];
    const raw: Record<string, unknown> = {};
    try {
      const nc = await connectRaw(server.url);
      for (const n of sizes) {
        const bucket = benchBucket("bench_boot");
        ctx.log(`bootstrap: loading ${n} keys`);
        await fillBucket(nc, bucket, n, keyOf, valueOf);
        ctx.log(`bootstrap: ${n} keys × ${ctx.reps} reps per variant`);
        const res = await sizeRows(n, ctx.reps, server.url, bucket);
        ctx.shared.set(COLD_TIMES, { keys: n, seconds: res.raw.kvedge.ms });
        rows.push(...res.rows);
        raw[String(n)] = res.raw;
        await new Kvm(nc).open(bucket).then((kv) => kv.destroy());
      }
      await nc.close();
    } finally {
      await server.stop();
    }
    return {
      name: "bootstrap",
      title: this.title,
      params: {
        sizes,
        valueBytes: 40,
        reps: ctx.reps,
        kvedge: "openCache({ mode: 'replica', local: { maxItems: n } }) → ready(), fresh process",
        raw:
          "connect, kvm.open(), kv.watch(), Map.set(key, value) until delta === 0, fresh process",
      },
      rows,
      raw,
    };
  },
};

// ---- child -----------------------------------------------------------------------------

async function childKvedge(a: Record<string, string>): Promise<void> {
  const n = Number(a.n);
  const snapshot: string[] = [];
  const m0 = a.heap ? usedAfterGc() : 0;
  const t0 = performance.now();
  const cache = await openCache<unknown>({
    servers: a.url!,
    bucket: a.bucket!,
    mode: "replica",
    local: { maxItems: Math.max(n, 1) },
    ...(a.snapshot ? { snapshot: { path: a.snapshot, intervalMs: 0 } } : {}),
    onEvent: (e) => {
      if (e.type === "snapshot") {
        snapshot.push(`${Math.round(performance.now() - t0)} ms ${e.action}: ${e.detail}`);
      }
    },
  });
  await cache.ready({ timeoutMs: 300_000 });
  const ms = performance.now() - t0;
  const entries = cache.stats().entries;
  const rss = peakRss();
  const heapBytes = a.heap ? usedAfterGc() - m0 : undefined;
  const c0 = performance.now();
  await cache.close();
  const closeMs = performance.now() - c0;
  emit({ ms, peakRss: rss, entries, snapshot, closeMs, heapBytes } satisfies BootstrapFigures);
}

async function childRaw(a: Record<string, string>): Promise<void> {
  const m0 = a.heap ? usedAfterGc() : 0;
  const t0 = performance.now();
  const nc = await connectRaw(a.url!);
  // A long API timeout: creating a last-per-subject consumer over 1M subjects
  // on nats-server 2.9 can take longer than the default 5 s.
  const kv = await new Kvm(jetstream(nc, { timeout: 120_000 })).open(a.bucket!);
  const held = new Map<string, Uint8Array>();
  const w = await kv.watch();
  for await (const e of w) {
    if (e.operation === "PUT") held.set(e.key, e.value);
    else held.delete(e.key);
    if (e.delta === 0) break;
  }
  const ms = performance.now() - t0;
  const rss = peakRss();
  const heapBytes = a.heap ? usedAfterGc() - m0 : undefined;
  const entries = held.size; // keeps the Map alive through the measurement
  w.stop();
  await nc.close();
  emit({ ms, peakRss: rss, entries, heapBytes } satisfies BootstrapFigures);
}

if (import.meta.main) {
  const a = childArgs(Deno.args);
  if (a.child === "kvedge") await childKvedge(a);
  else await childRaw(a);
  Deno.exit(0);
}
