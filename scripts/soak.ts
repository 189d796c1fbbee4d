/**
 * Soak test: a lazy cache bounded to 100k entries under steady writes and
 * skewed reads over 1M distinct keys, against its own nats-server, for a
 * given time. Every `--report-every-s` seconds it prints RSS, hit ratio and
 * lag; at the end the RSS trend (slope of the last half) and a verdict,
 * PLATEAU or GROWING. Run with `--v8-flags=--expose-gc` (as `deno task soak`
 * does) it also samples the live heap after a full GC each second and judges
 * the verdict on it: RSS follows the collector's pace, the live heap a leak.
 *
 * ```sh
 * deno task soak --minutes 30
 * deno task soak --minutes 0.5 --report-every-s 5 --max-rss-mib 1536
 * ```
 *
 * Exit code 0 when the run completed (and RSS stayed under `--max-rss-mib`,
 * if given), 1 on a failure, 2 on a bad command line. The verdict does not
 * set the exit code; `tests/cli/soak_test.ts` asserts it.
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";
import { jetstream } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { openCache, UnavailableError } from "../mod.ts";
import { startNatsServer } from "../host/nats_server.ts";
import { delay } from "../src/async.ts";
import { type FlagSpec, parseArgs } from "./cli/args.ts";
import { UsageError } from "./cli/errors.ts";

/** Command-line settings, with their defaults. */
interface SoakOptions {
  /** Duration of the run, minutes (fractional allowed). */
  minutes: number;
  /** Interval of the report lines, seconds. */
  reportEveryS: number;
  /** Distinct keys written and read. */
  keys: number;
  /** `local.maxItems` of the cache. */
  maxItems: number;
  /** Target writes per second. */
  writesPerS: number;
  /** Target reads per second. */
  readsPerS: number;
  /** Skew of reads: key index = keys * u^skew (u uniform in [0,1)); 1 is uniform. */
  skew: number;
  /** Fail (exit 1) if RSS ever exceeds this, MiB; 0 disables. */
  maxRssMiB: number;
}

const USAGE = `usage: deno task soak [--minutes N] [--report-every-s S] [--keys N] [--max-items N]
                       [--writes-per-s N] [--reads-per-s N] [--skew X] [--max-rss-mib N]`;

const FLAGS: Record<string, FlagSpec> = {
  minutes: { type: "number", help: "duration of the run", default: 10, min: 0 },
  "report-every-s": { type: "number", help: "interval of the reports", default: 10, min: 0 },
  keys: { type: "number", help: "distinct keys", default: 1_000_000, min: 0 },
  "max-items": { type: "number", help: "local.maxItems", default: 100_000, min: 0 },
  "writes-per-s": { type: "number", help: "target writes per second", default: 2_000, min: 0 },
  "reads-per-s": { type: "number", help: "target reads per second", default: 5_000, min: 0 },
  skew: { type: "number", help: "skew of reads", default: 8, min: 0 },
  "max-rss-mib": { type: "number", help: "RSS limit, MiB; 0: none", default: 0, min: 0 },
};

function parseSoakArgs(args: string[]): SoakOptions {
  let parsed;
  try {
    parsed = parseArgs(args, [FLAGS]);
  } catch (err) {
    if (err instanceof UsageError) usage(err.message);
    throw err;
  }
  if (parsed.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  if (parsed.positionals.length > 0) usage(`unknown option "${parsed.positionals[0]}"`);
  const f = parsed.flags as Record<keyof typeof FLAGS, number>;
  const o: SoakOptions = {
    minutes: f["minutes"]!,
    reportEveryS: f["report-every-s"]!,
    keys: f["keys"]!,
    maxItems: f["max-items"]!,
    writesPerS: f["writes-per-s"]!,
    readsPerS: f["reads-per-s"]!,
    skew: f["skew"]!,
    maxRssMiB: f["max-rss-mib"]!,
  };
  if (o.minutes <= 0 || o.reportEveryS <= 0 || o.keys < 1 || o.maxItems < 1 || o.skew < 1) {
    usage("--minutes, --report-every-s, --keys, --max-items must be positive and --skew >= 1");
  }
  return o;
}

function usage(problem: string): never {
  console.error(`soak: ${problem}\n${USAGE}`);
  Deno.exit(2);
}

const mib = (bytes: number) => bytes / 1024 / 1024;
const fmt = (n: number, digits = 1) => n.toFixed(digits);

/** Least-squares slope of `ys` over `xs`. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length;
  if (n < 2) return 0;
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  for (let i = 0; i < n; i++) {
    num += (xs[i]! - mx) * (ys[i]! - my);
    den += (xs[i]! - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

async function main(): Promise<number> {
  const o = parseSoakArgs(Deno.args);
  const durationMs = o.minutes * 60_000;
  const dir = await Deno.makeTempDir({ prefix: "kvedge_soak_" });
  const server = await startNatsServer({ storeDir: dir });
  const bucket = "soak";
  console.log(
    `soak: ${o.minutes} min, ${o.keys} keys, maxItems ${o.maxItems}, ` +
      `${o.writesPerS} writes/s, ${o.readsPerS} reads/s (skew ${o.skew}), server ${server.url}`,
  );
  const nc = await connect({ servers: server.url });
  let failed = false;
  try {
    await new Kvm(nc).create(bucket, { history: 1 });
    const cache = await openCache<{ i: number; at: number }>({
      servers: server.url,
      bucket,
      mode: "lazy",
      local: { maxItems: o.maxItems },
    });
    await cache.ready({ timeoutMs: 10_000 });
    const js = jetstream(nc, { timeout: 5_000 });
    const started = performance.now();
    const deadline = started + durationMs;
    let writes = 0;
    let writeErrors = 0;
    let lastAcked = 0;
    let reads = 0;
    let readErrors = 0;
    let stop = false;

    // Steady writes, paced in 50 ms slices, uniformly over the key space.
    const writer = (async () => {
      const perSlice = Math.max(1, Math.round(o.writesPerS / 20));
      while (!stop) {
        const t0 = performance.now();
        const batch: Promise<unknown>[] = [];
        for (let j = 0; j < perSlice; j++) {
          const k = Math.floor(Math.random() * o.keys);
          batch.push(
            js.publish(`$KV.${bucket}.k.${k}`, JSON.stringify({ i: writes + j, at: Date.now() }))
              .then((a) => {
                if (a.seq > lastAcked) lastAcked = a.seq;
              }, () => writeErrors++),
          );
        }
        await Promise.all(batch);
        writes += perSlice;
        await delay(Math.max(0, 50 - (performance.now() - t0)));
      }
    })();

    // Skewed reads (a few hot keys, a long tail), paced in 50 ms slices.
    const reader = (async () => {
      const perSlice = Math.max(1, Math.round(o.readsPerS / 20));
      while (!stop) {
        const t0 = performance.now();
        const batch: Promise<unknown>[] = [];
        for (let j = 0; j < perSlice; j++) {
          const k = Math.floor(o.keys * Math.random() ** o.skew);
          batch.push(
            cache.get(`k.${k}`).then(() => reads++, (err) => {
              readErrors++;
              if (!(err instanceof UnavailableError)) throw err;
            }),
          );
        }
        await Promise.all(batch);
        await delay(Math.max(0, 50 - (performance.now() - t0)));
      }
    })();

    // RSS every second for the trend; a report line every reportEveryS.
    const rssAt: number[] = [];
    const rssMiB: number[] = [];
    /** Live heap after a full GC, MiB, with the samples of `rssAt` (empty without --expose-gc). */
    const liveMiB: number[] = [];
    const gc = (globalThis as { gc?: () => void }).gc;
    let maxRss = 0;
    let nextReport = started + o.reportEveryS * 1_000;
    let lastReads = 0;
    let lastWrites = 0;
    let lastReportAt = started;
    let filledAtSample = -1; // first RSS sample taken with the store at its bound
    while (performance.now() < deadline) {
      await delay(Math.min(1_000, deadline - performance.now()));
      const now = performance.now();
      const rss = mib(Deno.memoryUsage().rss);
      rssAt.push((now - started) / 60_000);
      rssMiB.push(rss);
      if (gc) {
        gc();
        liveMiB.push(mib(Deno.memoryUsage().heapUsed));
      }
      maxRss = Math.max(maxRss, rss);
      if (filledAtSample < 0 && cache.stats().entries >= o.maxItems) {
        filledAtSample = rssMiB.length - 1;
        console.log(`t=${fmt((now - started) / 1_000, 0)}s the store reached its bound`);
      }
      if (o.maxRssMiB > 0 && rss > o.maxRssMiB) {
        console.log(`soak: RSS ${fmt(rss)} MiB exceeds --max-rss-mib ${o.maxRssMiB}`);
        failed = true;
        break;
      }
      if (now >= nextReport || now >= deadline) {
        const s = cache.stats();
        const dt = (now - lastReportAt) / 1_000;
        console.log(
          `t=${fmt((now - started) / 1_000, 0)}s rss=${fmt(rss)}MiB ` +
            `heap=${fmt(mib(Deno.memoryUsage().heapUsed))}MiB ` +
            `${liveMiB.length ? `liveHeap=${fmt(liveMiB[liveMiB.length - 1]!)}MiB ` : ""}` +
            `entries=${s.entries} ` +
            `hitRatio=${fmt(s.hitRatio, 3)} reads/s=${fmt((reads - lastReads) / dt, 0)} ` +
            `writes/s=${fmt((writes - lastWrites) / dt, 0)} lagRevisions=${
              Math.max(0, lastAcked - s.lastRevision)
            } lagMs=${s.lagMs} evictions=${s.evictions} state=${cache.status().state}`,
        );
        lastReads = reads;
        lastWrites = writes;
        lastReportAt = now;
        nextReport += o.reportEveryS * 1_000;
      }
    }
    stop = true;
    await Promise.all([writer, reader]);
    const s = cache.stats();
    const st = cache.status();
    await cache.close();

    // The trend over the last half of the run, once the store is full (before
    // that, growth is the cache filling up): a leak shows as a steady slope.
    const from = Math.max(
      Math.floor(rssMiB.length / 2),
      filledAtSample < 0 ? Infinity : filledAtSample,
    );
    // Judged on the live heap when it was sampled, else on RSS.
    const judged = liveMiB.length > 0 ? liveMiB : rssMiB;
    const tail = judged.slice(from);
    const slopeMiBPerMin = slope(rssAt.slice(from), tail);
    const meanTail = tail.reduce((a, b) => a + b, 0) / Math.max(1, tail.length);
    // Growth of more than 2% of the level per minute (RSS), sustained, is a
    // trend. The live heap is small (tens of MiB) and moves by about 1 MiB
    // with the values held, so a one-minute run fits a slope of up to about
    // 2 MiB/min to a flat one: there, 3 MiB/min or 10% of the level per
    // minute (a leak of 50 bytes per eviction at the soak's default rates).
    const limit = liveMiB.length > 0 ? Math.max(3, meanTail * 0.1) : Math.max(1, meanTail * 0.02);
    const verdict = tail.length < 10
      ? "UNDECIDED (too few samples after the store filled; run longer)"
      : slopeMiBPerMin > limit
      ? "GROWING"
      : "PLATEAU";
    console.log(
      `soak result: minutes=${fmt((performance.now() - started) / 60_000, 2)} reads=${reads} ` +
        `readErrors=${readErrors} writes=${writes} writeErrors=${writeErrors} ` +
        `hitRatio=${fmt(s.hitRatio, 3)} entries=${s.entries} evictions=${s.evictions} ` +
        `resyncs=${s.resyncs} lastRevision=${s.lastRevision} lastAcked=${lastAcked} ` +
        `state=${st.state}`,
    );
    console.log(
      `soak rss: start=${fmt(rssMiB[0] ?? 0)}MiB max=${fmt(maxRss)}MiB ` +
        `end=${fmt(rssMiB[rssMiB.length - 1] ?? 0)}MiB ` +
        `liveHeapEnd=${liveMiB.length ? fmt(liveMiB[liveMiB.length - 1]!) + "MiB" : "n/a"} ` +
        `judged=${liveMiB.length > 0 ? "liveHeap" : "rss"} ` +
        `slopeLastHalf=${tail.length < 2 ? "n/a" : fmt(slopeMiBPerMin, 2) + "MiB/min"} ` +
        `limit=${fmt(limit, 2)}MiB/min ` +
        `trendSamples=${tail.length} samples=${rssMiB.length} ` +
        `verdict=${verdict}`,
    );
    if (writes === 0 || reads === 0) {
      console.log("soak: no load was generated");
      failed = true;
    }
  } catch (err) {
    console.error(`soak: failed: ${err instanceof Error ? err.message : String(err)}`);
    failed = true;
  } finally {
    await nc.close().catch(() => {});
    await server.stop();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
  return failed ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
