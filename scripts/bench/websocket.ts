/**
 * Edge runtimes over WebSocket, side by side with TCP on the same server:
 *
 * - cold start of a lazy isolate: a fresh `deno` process builds
 *   `createFetchHandler()` and answers its first request (a miss served from
 *   KV), then a second one (a hit); per repetition one process per transport;
 * - `get()` miss and hit latency of a lazy cache;
 * - put → visible: a raw client of the same transport puts resident keys at
 *   200 writes/s, the time until `cache.changes()` yields the change.
 *
 * Transports alternate per repetition; nats.js has one transport per process,
 * so each repetition opens and closes its own connections.
 *
 * @module
 */
import { Kvm } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import { createFetchHandler } from "../../http.ts";
import { connectNats, type NatsTransport } from "../../src/connect.ts";
import { startServer, urlFor } from "../../testing/server.ts";
import { percentile, ratioRow, type Scenario, type Stat, stat } from "./_harness.ts";
import { benchBucket } from "./_helpers.ts";
import { childArgs, emit, runChild } from "./_processes.ts";
import { changesReceiver, idKey, KEYS, measureRep, putId, seedIds } from "./_propagation.ts";

const TRANSPORTS: NatsTransport[] = ["tcp", "websocket"];
const RATE_PER_S = 200;
const enc = new TextEncoder();

interface ColdStart {
  /** Process start (time origin) → first answer, ms. */
  processToFirstMs: number;
  /** `createFetchHandler()` → first answer (connect, open, miss from KV), ms. */
  openToFirstMs: number;
  /** The second request (a hit), ms. */
  hitMs: number;
}

/** The child: one cold isolate answering two requests. */
async function child(a: Record<string, string>): Promise<void> {
  const t0 = performance.now();
  const handler = createFetchHandler({
    servers: a.url!,
    buckets: { [a.bucket!]: { mode: "lazy" } },
    local: { maxItems: 1_000 },
  });
  const req = () => new Request(`http://edge/v1/buckets/${a.bucket}/keys/k.1`);
  const first = await handler.fetch(req());
  const t1 = performance.now();
  if (first.status !== 200) throw new Error(`first answer ${first.status}`);
  await first.body?.cancel();
  const second = await handler.fetch(req());
  const t2 = performance.now();
  if (second.headers.get("x-cache") !== "hit") throw new Error("second answer is not a hit");
  await second.body?.cancel();
  await handler.close();
  emit({ processToFirstMs: t1, openToFirstMs: t1 - t0, hitMs: t2 - t1 } satisfies ColdStart);
}

interface InProcess {
  missP50Us: number;
  hitNs: number;
  propP50Ms: number;
  propP99Ms: number;
}

/** Miss, hit and put → visible over one transport, with fresh connections. */
async function inProcess(
  url: string,
  bucket: string,
  from: number,
  misses: number,
  writes: number,
): Promise<InProcess> {
  const writerNc = await connectNats({ servers: [url] });
  const cache = await openCache<number>({
    servers: url,
    bucket,
    mode: "lazy",
    local: { maxItems: 100_000 },
  });
  try {
    const lat: number[] = [];
    for (let i = from; i < from + misses; i++) {
      const t = performance.now();
      if (await cache.get(`k.${i}`) === undefined) throw new Error(`k.${i} missing`);
      lat.push((performance.now() - t) * 1000);
    }
    const rounds = 200;
    const h0 = performance.now();
    for (let r = 0; r < rounds; r++) {
      for (let i = from; i < from + misses; i++) await cache.get(`k.${i}`);
    }
    const hitNs = ((performance.now() - h0) * 1e6) / (rounds * misses);

    // Propagation to resident keys (a lazy edge applies changes of what it holds).
    for (let i = 0; i < KEYS; i++) await cache.get(idKey(i));
    // The receiver takes the cache over: closing it closes the cache too.
    const rx = changesReceiver(cache, writes);
    const kv = await new Kvm(writerNc).open(bucket);
    const prop = await measureRep(rx, putId(kv), {
      warm: 0,
      n: writes,
      ratePerS: RATE_PER_S,
      timeoutMs: 30_000,
    });
    if (prop.lost > 0) throw new Error(`${prop.lost} of ${writes} writes never visible`);
    return {
      missP50Us: percentile(lat, 0.5),
      hitNs,
      propP50Ms: prop.p50,
      propP99Ms: prop.p99,
    };
  } finally {
    await cache.close();
    await writerNc.close();
  }
}

/** The WebSocket scenario. */
export const scenario: Scenario = {
  name: "websocket",
  title: "edge runtimes over WebSocket vs TCP: cold start, miss, hit, put → visible",
  async run(ctx) {
    const misses = ctx.quick ? 50 : 500;
    const writes = ctx.quick ? 100 : 1_000;
    const server = await startServer({ websocket: true });
    try {
      const bucket = benchBucket("bench_ws");
      const total = misses * ctx.reps * 2;
      const nc = await connectNats({ servers: [server.tcpUrl] });
      try {
        const kv = await new Kvm(nc).create(bucket, { history: 1 });
        const puts: Promise<unknown>[] = [];
        for (let i = 0; i < total; i++) puts.push(kv.put(`k.${i}`, enc.encode(String(i))));
        await Promise.all(puts);
        await seedIds(kv);
      } finally {
        await nc.close();
      }
      const cold: Record<NatsTransport, ColdStart[]> = { tcp: [], websocket: [] };
      const hot: Record<NatsTransport, InProcess[]> = { tcp: [], websocket: [] };
      let from = 0;
      for (let r = 0; r < ctx.reps; r++) {
        const order = r % 2 === 0 ? TRANSPORTS : [...TRANSPORTS].reverse();
        for (const t of order) {
          const url = urlFor(server, t);
          ctx.log(`websocket: rep ${r + 1}/${ctx.reps} ${t}`);
          cold[t].push(
            await runChild<ColdStart>(new URL(import.meta.url).pathname, [
              "--child",
              "--url",
              url,
              "--bucket",
              bucket,
            ]),
          );
          hot[t].push(await inProcess(url, bucket, from, misses, writes));
          from += misses;
        }
      }
      const c = (k: keyof ColdStart) => (t: NatsTransport) => stat(cold[t].map((x) => x[k]));
      const h = (k: keyof InProcess) => (t: NatsTransport) => stat(hot[t].map((x) => x[k]));
      const row = (metric: string, unit: string, of: (t: NatsTransport) => Stat) =>
        ratioRow(
          `${metric}, WebSocket`,
          unit,
          of("websocket"),
          "TCP",
          of("tcp"),
          undefined,
          undefined,
          "info",
        );
      return {
        name: "websocket",
        title: this.title,
        params: {
          reps: ctx.reps,
          missesPerRep: misses,
          writesPerRep: writes,
          writeRatePerS: RATE_PER_S,
          server: "one nats-server, TCP and `websocket { no_tls: true }` on loopback",
        },
        rows: [
          row("cold isolate: createFetchHandler() → first answer (miss)", "ms", c("openToFirstMs")),
          row("cold isolate: process start → first answer", "ms", c("processToFirstMs")),
          row("cold isolate: second request (hit)", "ms", c("hitMs")),
          row("get() miss p50", "µs", h("missP50Us")),
          row("get() hit", "ns/op", h("hitNs")),
          row("put → visible p50", "ms", h("propP50Ms")),
          row("put → visible p99", "ms", h("propP99Ms")),
        ],
        raw: { cold, hot },
      };
    } finally {
      await server.stop();
    }
  },
};

if (import.meta.main) {
  const a = childArgs(Deno.args);
  if (a.child === "true") await child(a);
}
