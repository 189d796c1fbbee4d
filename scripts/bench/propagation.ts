/**
 * Propagation: a raw client `put` → the change visible in an edge cache
 * (`cache.changes()` yields it after the local store is updated), at 1 000
 * writes/s, on one server (R1) and on a 3-node cluster (R3), against a raw
 * ordered `kv.watch()` of @nats-io/kv receiving the same kind of writes.
 *
 * Writer and watcher share this process's clock (`performance.now()` at the
 * put call and at the iterator's receipt). Variants alternate per repetition
 * and only one watcher runs at a time.
 *
 * @module
 */
import { Kvm, KvWatchInclude } from "@nats-io/kv";
import type { KV } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import {
  absRow,
  infoRow,
  percentile,
  ratioRow,
  type Row,
  type Scenario,
  stat,
} from "./_harness.ts";
import { benchBucket, connectRaw, sleep, until } from "./_helpers.ts";
import { benchCluster, benchServer } from "./_processes.ts";

const RATE_PER_S = 1_000;
const KEYS = 100;
const enc = new TextEncoder();
const dec = new TextDecoder();

type Variant = "raw" | "kvedge";

interface Receiver {
  /** Receipt time per write id (NaN until received). */
  recv: Float64Array;
  received: () => number;
  /** Watcher restarts and resyncs seen (kvedge only; kv.watch() hides its own). */
  restarts: () => number;
  close(): Promise<void>;
}

async function rawReceiver(url: string, bucket: string, total: number): Promise<Receiver> {
  const nc = await connectRaw(url);
  const kv = await new Kvm(nc).open(bucket);
  const w = await kv.watch({ include: KvWatchInclude.UpdatesOnly });
  const recv = new Float64Array(total).fill(NaN);
  let n = 0;
  const loop = (async () => {
    for await (const e of w) {
      const t = performance.now();
      if (e.operation !== "PUT") continue;
      const id = JSON.parse(dec.decode(e.value)) as number;
      if (id < total && Number.isNaN(recv[id]!)) {
        recv[id] = t;
        n++;
      }
    }
  })();
  return {
    recv,
    received: () => n,
    restarts: () => 0,
    async close() {
      w.stop();
      await loop.catch(() => {});
      await nc.close();
    },
  };
}

async function kvedgeReceiver(url: string, bucket: string, total: number): Promise<Receiver> {
  let restarts = 0;
  const cache = await openCache<number>({
    servers: url,
    bucket,
    mode: "replica",
    local: { maxItems: 10_000 },
    onEvent: (e) => {
      if (e.type === "watcher_restart" || e.type === "resync") restarts++;
    },
  });
  await cache.ready({ timeoutMs: 30_000 });
  const it = cache.changes();
  const recv = new Float64Array(total).fill(NaN);
  let n = 0;
  const loop = (async () => {
    for await (const c of it) {
      const t = performance.now();
      const id = c.value;
      if (typeof id === "number" && id < total && Number.isNaN(recv[id]!)) {
        recv[id] = t;
        n++;
      }
    }
  })();
  return {
    recv,
    received: () => n,
    restarts: () => restarts,
    async close() {
      await it.return?.();
      await loop.catch(() => {});
      await cache.close();
    },
  };
}

/** Writes ids 0..total-1 at `RATE_PER_S`, returns the put-call times. */
async function write(kv: KV, total: number): Promise<Float64Array> {
  const sent = new Float64Array(total);
  const acks: Promise<unknown>[] = [];
  const start = performance.now();
  let i = 0;
  while (i < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) * RATE_PER_S) / 1000) + 1);
    while (i < due) {
      sent[i] = performance.now();
      acks.push(kv.put(`p.${i % KEYS}`, enc.encode(String(i))));
      i++;
    }
    await sleep(1);
  }
  await Promise.all(acks);
  return sent;
}

async function oneRep(
  variant: Variant,
  url: string,
  bucket: string,
  writer: KV,
  warm: number,
  n: number,
): Promise<{ p50: number; p99: number; max: number; lost: number; restarts: number }> {
  const total = warm + n;
  const rx = variant === "raw"
    ? await rawReceiver(url, bucket, total)
    : await kvedgeReceiver(url, bucket, total);
  try {
    const sent = await write(writer, total);
    // A write never seen counts as lost (reported), not as a failure of the run.
    await until(() => rx.received() >= total, 15_000, "all writes").catch(() => {});
    const lat: number[] = [];
    let lost = 0;
    for (let i = warm; i < total; i++) {
      const t = rx.recv[i]!;
      if (Number.isNaN(t)) lost++;
      else lat.push(t - sent[i]!);
    }
    return {
      p50: percentile(lat, 0.5),
      p99: percentile(lat, 0.99),
      max: Math.max(...lat),
      lost,
      restarts: rx.restarts(),
    };
  } finally {
    await rx.close();
  }
}

async function measure(
  replicas: number,
  url: string,
  reps: number,
  n: number,
): Promise<{ rows: Row[]; raw: unknown }> {
  const nc = await connectRaw(url);
  try {
    const bucket = benchBucket(`bench_prop_r${replicas}`);
    // History 64: a watcher that restarts after a gap still finds every
    // intermediate value (with history 1, values overwritten meanwhile would
    // be gone, and the rep could never see all its writes).
    const kv = await new Kvm(nc).create(bucket, { replicas, history: 64 });
    for (let k = 0; k < KEYS; k++) await kv.put(`p.${k}`, enc.encode("-1"));
    const warm = Math.min(200, n);
    const figure = () => ({
      p50: [] as number[],
      p99: [] as number[],
      max: [] as number[],
      lost: [] as number[],
      restarts: [] as number[],
    });
    const fig = { raw: figure(), kvedge: figure() };
    for (let r = 0; r < reps; r++) {
      const order: Variant[] = r % 2 === 0 ? ["raw", "kvedge"] : ["kvedge", "raw"];
      for (const v of order) {
        const res = await oneRep(v, url, bucket, kv, warm, n);
        fig[v].p50.push(res.p50);
        fig[v].p99.push(res.p99);
        fig[v].max.push(res.max);
        fig[v].lost.push(res.lost);
        fig[v].restarts.push(res.restarts);
      }
    }
    const R = `R${replicas}`;
    const limit = replicas === 1 ? 2 : 5;
    const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
    const lost = sum(fig.kvedge.lost) + sum(fig.raw.lost);
    const notes: Row[] = lost === 0 ? [] : [
      infoRow(`${R} writes never seen`, "writes", stat(fig.kvedge.lost), {
        baselineName: "raw kv.watch()",
        baseline: stat(fig.raw.lost),
        note: `of ${n} per rep; kvedge watcher restarts: ${sum(fig.kvedge.restarts)}`,
      }),
    ];
    return {
      rows: [
        ratioRow(
          `${R} put→visible p50`,
          "ms",
          stat(fig.kvedge.p50),
          "raw kv.watch()",
          stat(fig.raw.p50),
          "le",
          1.2,
        ),
        ratioRow(
          `${R} put→visible p99`,
          "ms",
          stat(fig.kvedge.p99),
          "raw kv.watch()",
          stat(fig.raw.p99),
          "le",
          1.2,
        ),
        absRow(`${R} put→visible p99`, "ms", stat(fig.kvedge.p99), "le", limit),
        ...notes,
      ],
      raw: fig,
    };
  } finally {
    await nc.close();
  }
}

/** The propagation scenario. */
export const scenario: Scenario = {
  name: "propagation",
  title: "raw put → visible in an edge cache at 1k writes/s, R1 and R3, vs raw kv.watch()",
  async run(ctx) {
    const n = ctx.quick ? 300 : 2_000;
    const rows: Row[] = [];
    const raw: Record<string, unknown> = {};
    ctx.log(`propagation: R1, ${n} writes × ${ctx.reps} reps per variant`);
    const server = await benchServer();
    try {
      const r1 = await measure(1, server.url, ctx.reps, n);
      rows.push(...r1.rows);
      raw.R1 = r1.raw;
    } finally {
      await server.stop();
    }
    ctx.log("propagation: R3 (3 local nats-server processes)");
    const cluster = await benchCluster();
    try {
      // Writer and watchers on the same node; the stream leader is wherever the cluster put it.
      const r3 = await measure(3, cluster.servers[0]!.url, ctx.reps, n);
      rows.push(...r3.rows);
      raw.R3 = r3.raw;
    } finally {
      await cluster.stop();
    }
    return {
      name: "propagation",
      title: this.title,
      params: {
        writesPerRep: n,
        warmupWrites: Math.min(200, n),
        ratePerSecond: RATE_PER_S,
        keys: KEYS,
        reps: ctx.reps,
        kvedge: "replica mode, cache.changes() receipt (store already updated)",
        raw: "kv.watch({ include: UpdatesOnly }) iterator receipt + JSON decode",
      },
      rows,
      raw,
    };
  },
};
