/**
 * The child of the `runtimes` bench scenario, run by Deno, Node and Bun alike
 * (no Deno API): prints `{"first": true}` as soon as a cold
 * `createFetchHandler()` has answered its first request (a miss from KV), then
 * measures `get()` misses and hits of a lazy cache and put → visible (a raw
 * client's put until `cache.changes()` yields it), and prints the figures as
 * its last line.
 *
 * Usage: <runtime> scripts/bench/_runtime_child.ts <nats url> <bucket> <first miss key index> <misses> <writes>
 */
import { argv, exit } from "node:process";
import { Kvm } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import { createFetchHandler } from "../../http.ts";
import { connectNats } from "../../src/connect.ts";

const [url, bucket, fromArg, missesArg, writesArg] = argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];
const from = Number(fromArg);
const misses = Number(missesArg);
const writes = Number(writesArg);

function p50(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.max(0, Math.ceil(s.length / 2) - 1)]!;
}

// Cold start: the handler of an isolate, its first answer a miss from KV.
const t0 = performance.now();
const handler = createFetchHandler({
  servers: url,
  buckets: { [bucket]: { mode: "lazy" } },
  local: { maxItems: 1_000 },
});
const first = await handler.fetch(new Request(`http://edge/v1/buckets/${bucket}/keys/k.0`));
const openToFirstMs = performance.now() - t0;
if (first.status !== 200) throw new Error(`first answer ${first.status}`);
await first.body?.cancel();
console.log(JSON.stringify({ first: true }));
const t1 = performance.now();
const second = await handler.fetch(new Request(`http://edge/v1/buckets/${bucket}/keys/k.0`));
const hitRequestMs = performance.now() - t1;
if (second.headers.get("x-cache") !== "hit") throw new Error("second answer is not a hit");
await second.body?.cancel();
await handler.close();

const cache = await openCache<number>({
  servers: url,
  bucket,
  mode: "lazy",
  local: { maxItems: 100_000 },
});
const nc = await connectNats({ servers: [url] });
try {
  const missUs: number[] = [];
  for (let i = from; i < from + misses; i++) {
    const t = performance.now();
    if (await cache.get(`k.${i}`) === undefined) throw new Error(`k.${i} missing`);
    missUs.push((performance.now() - t) * 1000);
  }
  const rounds = 200;
  const h0 = performance.now();
  for (let r = 0; r < rounds; r++) {
    for (let i = from; i < from + misses; i++) await cache.get(`k.${i}`);
  }
  const hitNs = ((performance.now() - h0) * 1e6) / (rounds * misses);

  // Put → visible, one write at a time on a resident key.
  await cache.get("p.0");
  const kv = await new Kvm(nc).open(bucket);
  const changes = cache.changes({ filter: "p.0" })[Symbol.asyncIterator]();
  const visibleMs: number[] = [];
  for (let i = 1; i <= writes; i++) {
    const t = performance.now();
    const revision = await kv.put("p.0", String(i));
    for (;;) {
      const next = await changes.next();
      if (next.done) throw new Error("changes() ended");
      if (next.value.revision >= revision) break;
    }
    visibleMs.push(performance.now() - t);
  }
  await changes.return?.();
  console.log(JSON.stringify({
    openToFirstMs,
    hitRequestMs,
    missP50Us: p50(missUs),
    hitNs,
    visibleP50Ms: p50(visibleMs),
  }));
} finally {
  await cache.close();
  await nc.close();
}
exit(0);
