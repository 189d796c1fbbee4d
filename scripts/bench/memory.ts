/**
 * Memory: bytes per resident entry for N keys with 200-byte JSON values, as
 * the growth of V8 heap + external memory (`Deno.memoryUsage()`, after forced
 * GCs), against raw `lru-cache` holding the same decoded values. Every
 * measurement runs in its own process (`--expose-gc`) so figures do not mix.
 *
 * kvedge is measured twice in the same process: right after a replica
 * bootstrap (values held as encoded bytes until first read) and after every
 * key was read once (decoded values).
 *
 * @module
 */
import { LRUCache } from "lru-cache";
import { openCache } from "../../mod.ts";
import { ratioRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket, usedAfterGc as used } from "./_helpers.ts";
import { benchServer, childArgs, emit, runChild } from "./_processes.ts";

const VALUE_BYTES = 200;
const enc = new TextEncoder();

/** A JSON object of exactly `VALUE_BYTES` bytes for key number `i`. */
function valueJson(i: number): string {
  const head = `{"id":${i},"pad":"`;
  const pad = (i.toString(36) + "abcdefghijklmnopqrstuvwxyz").repeat(20);
  return head + pad.slice(0, VALUE_BYTES - head.length - 2) + '"}';
}

function keyOf(i: number): string {
  return `mem.${i}`;
}

/** The memory scenario. */
export const scenario: Scenario = {
  name: "memory",
  title: "resident bytes per entry, N × 200-byte values, vs raw lru-cache holding the same",
  async run(ctx) {
    const n = ctx.quick ? 2_000 : 100_000;
    const server = await benchServer();
    try {
      const nc = await connectRaw(server.url);
      const bucket = benchBucket("bench_mem");
      const empty = benchBucket("bench_mem_empty");
      await fillBucket(nc, bucket, n, keyOf, (i) => enc.encode(valueJson(i)));
      await fillBucket(nc, empty, 1, keyOf, (i) => enc.encode(valueJson(i)));
      await nc.close();
      const fresh: number[] = [];
      const read: number[] = [];
      const lru: number[] = [];
      const rss: number[] = [];
      for (let r = 0; r < ctx.reps; r++) {
        ctx.log(`memory: rep ${r + 1}/${ctx.reps}`);
        const k = await runChild<{ fresh: number; read: number; rss: number }>(
          import.meta.filename!,
          [
            "--child",
            "kvedge",
            "--url",
            server.url,
            "--bucket",
            bucket,
            "--empty",
            empty,
            "--n",
            String(n),
          ],
          { v8Flags: ["--expose-gc"] },
        );
        fresh.push(k.fresh);
        read.push(k.read);
        rss.push(k.rss);
        const l = await runChild<{ read: number }>(
          import.meta.filename!,
          ["--child", "lru", "--n", String(n)],
          { v8Flags: ["--expose-gc"] },
        );
        lru.push(l.read);
      }
      return {
        name: "memory",
        title: this.title,
        params: {
          entries: n,
          valueBytes: VALUE_BYTES,
          reps: ctx.reps,
          measure: "Δ(heapUsed + external) after gc, per entry; one process per measurement",
          bounds: { maxItems: n },
        },
        rows: [
          ratioRow(
            "bytes/entry, every key read",
            "B",
            stat(read),
            "raw lru-cache",
            stat(lru),
            "le",
            1.5,
          ),
          ratioRow(
            "bytes/entry, replica just bootstrapped (not decoded)",
            "B",
            stat(fresh),
            "raw lru-cache",
            stat(lru),
            "le",
            0.8,
          ),
        ],
        raw: {
          kvedgeReadBytesPerEntry: read,
          kvedgeFreshBytesPerEntry: fresh,
          lruBytesPerEntry: lru,
          kvedgeRss: rss,
        },
      };
    } finally {
      await server.stop();
    }
  },
};

// ---- child ---------------------------------------------------------------------------------

async function childKvedge(a: Record<string, string>): Promise<void> {
  const n = Number(a.n);
  const nc = await connectRaw(a.url!);
  // A first cache on a one-key bucket loads and warms every code path, so
  // the baseline below already contains them.
  const warm = await openCache<unknown>({
    connection: nc,
    bucket: a.empty!,
    mode: "replica",
    local: { maxItems: 10 },
  });
  await warm.ready();
  await warm.get(keyOf(0));
  const m0 = used();
  const cache = await openCache<{ id: number }>({
    connection: nc,
    bucket: a.bucket!,
    mode: "replica",
    local: { maxItems: n },
  });
  await cache.ready({ timeoutMs: 120_000 });
  if (cache.stats().entries !== n) throw new Error(`${cache.stats().entries} of ${n} resident`);
  const m1 = used();
  for (let i = 0; i < n; i++) {
    const v = await cache.get(keyOf(i));
    if (v?.id !== i) throw new Error(`wrong value for ${keyOf(i)}`);
  }
  const m2 = used();
  const rss = Deno.memoryUsage().rss;
  emit({ fresh: (m1 - m0) / n, read: (m2 - m0) / n, rss });
  await cache.close();
  await warm.close();
  await nc.close();
}

function childLru(a: Record<string, string>): void {
  const n = Number(a.n);
  // Same warm-up as kvedge: the code paths exist before the baseline.
  const warm = new LRUCache<string, { id: number }>({ max: 10 });
  warm.set("warm", JSON.parse(valueJson(0)));
  warm.delete("warm");
  const m0 = used();
  // Built after the baseline, as kvedge's cache is: lru-cache allocates its
  // per-entry arrays (links, free list) up front, and they are part of its cost.
  const lru = new LRUCache<string, { id: number }>({ max: n });
  for (let i = 0; i < n; i++) lru.set(keyOf(i), JSON.parse(valueJson(i)));
  const m1 = used();
  if (lru.size !== n) throw new Error("lru-cache lost entries");
  emit({ read: (m1 - m0) / n });
}

if (import.meta.main) {
  const a = childArgs(Deno.args);
  if (a.child === "kvedge") await childKvedge(a);
  else childLru(a);
  Deno.exit(0);
}
