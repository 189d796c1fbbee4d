/**
 * Local hits: `cache.get()`, `cache.getEntry()` and `cache.peek()` on resident
 * keys of a bounded cache, against raw `lru-cache` `get` with the same bound
 * and a plain `Map`, in one fresh process, variants interleaved per
 * repetition, keys read in a pre-shuffled order.
 *
 * @module
 */
import { LRUCache } from "lru-cache";
import { openCache } from "../../mod.ts";
import { infoRow, ratioRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw, fillBucket, shuffle } from "./_helpers.ts";
import { benchServer, childArgs, emit, runChild } from "./_processes.ts";

const enc = new TextEncoder();

/** The JSON value stored under key number `i` (about 60 bytes). */
function valueJson(i: number): string {
  return JSON.stringify({ id: i, one: 1, name: `user-${i}`, plan: i % 3 === 0 ? "pro" : "free" });
}

interface Value {
  id: number;
  one: number;
  name: string;
  plan: string;
}

function keyOf(i: number): string {
  return `user.${i}`;
}

const VARIANTS = [
  "map",
  "lru",
  "lru_await",
  "kvedge_get",
  "kvedge_getEntry",
  "kvedge_peek",
] as const;
type Variant = typeof VARIANTS[number];

/** Results of the child: ns/op per variant per repetition. */
type ChildResult = Record<Variant, number[]>;

/** The local-hit scenario. */
export const scenario: Scenario = {
  name: "local_hit",
  title: "get()/getEntry() of a resident key vs raw lru-cache get and Map.get",
  async run(ctx) {
    const keys = ctx.quick ? 5_000 : 100_000;
    const iters = ctx.quick ? 50_000 : 1_000_000;
    const server = await benchServer();
    try {
      const nc = await connectRaw(server.url);
      const bucket = benchBucket("bench_hit");
      ctx.log(`local_hit: loading ${keys} keys`);
      await fillBucket(nc, bucket, keys, keyOf, (i) => enc.encode(valueJson(i)));
      await nc.close();
      ctx.log(`local_hit: measuring ${iters} gets × ${ctx.reps} reps per variant`);
      const r = await runChild<ChildResult>(import.meta.filename!, [
        "--child",
        "--url",
        server.url,
        "--bucket",
        bucket,
        "--keys",
        String(keys),
        "--iters",
        String(iters),
        "--reps",
        String(ctx.reps),
      ]);
      const s = (v: Variant) => stat(r[v]);
      return {
        name: "local_hit",
        title: this.title,
        params: {
          keys,
          itersPerRep: iters,
          reps: ctx.reps,
          bounds: { maxItems: keys },
          mode: "replica (all keys resident and decoded before timing)",
          order: "1M lookups = pre-shuffled sequence over all keys; fresh lookup strings",
        },
        rows: [
          // A promise-returning get() pays one await wherever it is used: it
          // is measured against lru-cache's get awaited the same way; the
          // synchronous peek() against the raw get.
          ratioRow(
            "get() hit",
            "ns/op",
            s("kvedge_get"),
            "lru-cache get + await",
            s("lru_await"),
            "le",
            1.2,
          ),
          ratioRow(
            "getEntry() hit",
            "ns/op",
            s("kvedge_getEntry"),
            "lru-cache get + await",
            s("lru_await"),
            "le",
            1.5,
          ),
          ratioRow(
            "peek() hit (sync)",
            "ns/op",
            s("kvedge_peek"),
            "lru-cache get",
            s("lru"),
            "le",
            1.3,
          ),
          ratioRow(
            "get() hit",
            "ns/op",
            s("kvedge_get"),
            "lru-cache get",
            s("lru"),
            undefined,
            undefined,
            "info: the await is most of it",
          ),
          infoRow("Map.get", "ns/op", s("map"), { note: "info: the floor" }),
        ],
        raw: { nsPerOp: r },
      };
    } finally {
      await server.stop();
    }
  },
};

// ---- child -------------------------------------------------------------------------------

type Lookup = string[];

// Every loop reads a field of the value it got, as a caller would: a loop
// that only compares with undefined would let raw lru-cache skip a memory
// access that kvedge (slot → value) cannot.

function timeMap(m: Map<string, Value>, order: Lookup): number {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += m.get(order[i]!)!.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`Map: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

function timeLru(c: LRUCache<string, Value>, order: Lookup): number {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += c.get(order[i]!)!.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`lru-cache: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

async function timeLruAwait(c: LRUCache<string, Value>, order: Lookup): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += (await c.get(order[i]!))!.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`lru-cache+await: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

interface KvCache {
  get(key: string): Promise<Value | undefined>;
  getEntry(key: string): Promise<{ value: Value } | undefined>;
  peek(key: string): Value | undefined;
}

async function timeKvGet(c: KvCache, order: Lookup): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += (await c.get(order[i]!))!.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`kvedge get: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

async function timeKvGetEntry(c: KvCache, order: Lookup): Promise<number> {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += (await c.getEntry(order[i]!))!.value.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`kvedge getEntry: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

function timeKvPeek(c: KvCache, order: Lookup): number {
  let n = 0;
  const t0 = performance.now();
  for (let i = 0; i < order.length; i++) n += c.peek(order[i]!)!.one;
  const dt = performance.now() - t0;
  if (n !== order.length) throw new Error(`kvedge peek: ${order.length - n} lookups missed`);
  return (dt * 1e6) / order.length;
}

async function child(args: Record<string, string>): Promise<void> {
  const keys = Number(args.keys);
  const iters = Number(args.iters);
  const reps = Number(args.reps);
  // Stored keys and lookup keys are distinct string objects, as in a server
  // where the key arrives in a request.
  const map = new Map<string, Value>();
  const lru = new LRUCache<string, Value>({ max: keys });
  for (let i = 0; i < keys; i++) {
    const v = JSON.parse(valueJson(i));
    map.set(keyOf(i), v);
    lru.set(keyOf(i), v);
  }
  const cache = await openCache<Value>({
    servers: args.url!,
    bucket: args.bucket!,
    mode: "replica",
    local: { maxItems: keys },
  });
  await cache.ready({ timeoutMs: 120_000 });
  const lookups = Array.from({ length: keys }, (_, i) => `${"user."}${String(i)}`);
  const order: Lookup = [];
  for (let seed = 1; order.length < iters; seed++) {
    order.push(...shuffle([...lookups], seed * 0x9e3779b1));
  }
  order.length = iters;
  // Every key read once: decoded, and the JIT warmed on every path.
  for (let i = 0; i < keys; i++) {
    if ((await cache.get(lookups[i]!)) === undefined) throw new Error(`missing ${lookups[i]}`);
  }
  const run = async (v: Variant): Promise<number> => {
    switch (v) {
      case "map":
        return timeMap(map, order);
      case "lru":
        return timeLru(lru, order);
      case "lru_await":
        return await timeLruAwait(lru, order);
      case "kvedge_get":
        return await timeKvGet(cache, order);
      case "kvedge_getEntry":
        return await timeKvGetEntry(cache, order);
      case "kvedge_peek":
        return timeKvPeek(cache, order);
    }
  };
  for (const v of VARIANTS) await run(v); // warm-up round, not recorded
  const out = Object.fromEntries(VARIANTS.map((v) => [v, [] as number[]])) as ChildResult;
  for (let r = 0; r < reps; r++) {
    // Rotate the order so no variant always runs right after the same other one.
    for (let j = 0; j < VARIANTS.length; j++) {
      const v = VARIANTS[(j + r) % VARIANTS.length]!;
      out[v].push(await run(v));
    }
  }
  await cache.close();
  emit(out);
}

if (import.meta.main) {
  await child(childArgs(Deno.args));
}
