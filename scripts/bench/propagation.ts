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
import { Kvm } from "@nats-io/kv";
import { openCache } from "../../mod.ts";
import { absRow, infoRow, type Row, type Scenario, stat } from "./_harness.ts";
import { benchBucket, connectRaw } from "./_helpers.ts";
import { benchCluster, benchServer } from "./_processes.ts";
import {
  changesReceiver,
  figures,
  KEYS,
  measureRep,
  putId,
  type Receiver,
  record,
  seedIds,
  turn,
  visibleRows,
  watchReceiver,
} from "./_propagation.ts";

const RATE_PER_S = 1_000;

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
  return changesReceiver(cache, total, { restarts: () => restarts });
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
    await seedIds(kv);
    const warm = Math.min(200, n);
    const rep = { warm, n, ratePerS: RATE_PER_S, timeoutMs: 15_000 };
    const figure = () => figures("p50", "p99", "max", "lost", "restarts");
    const fig = { raw: figure(), kvedge: figure() };
    for (let r = 0; r < reps; r++) {
      for (const v of turn(r)) {
        const total = warm + n;
        const rx = v === "raw"
          ? await watchReceiver(await connectRaw(url), bucket, total)
          : await kvedgeReceiver(url, bucket, total);
        record(fig[v], await measureRep(rx, putId(kv), rep));
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
        ...visibleRows(`${R} put→visible`, fig.kvedge, "raw kv.watch()", fig.raw),
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
