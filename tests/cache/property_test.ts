/**
 * Model-based property test of the rules of freshness over a real
 * nats-server: random raw writes, own writes, misses racing writes, evictions
 * and network cuts; every read is checked against the bucket's history
 * (monotonic reads, no invented values) and, after every sync, against its
 * latest state (convergence). The local store's own properties (no server)
 * are in tests/unit/local_store_property_test.ts.
 *
 * Seeded and reproducible: the seed is printed; `KVEDGE_FC_SEED=<n>` replays
 * it, `KVEDGE_FC_RUNS=<n>` multiplies the runs. A failure prints fast-check's
 * shrunk counterexample.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Kvm } from "@nats-io/kv";
import { type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { type Cache, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { startProxy } from "../_proxy.ts";

const SEED = Number(Deno.env.get("KVEDGE_FC_SEED") ?? Date.now() % 2 ** 31);
const RUNS_FACTOR = Math.max(1, Number(Deno.env.get("KVEDGE_FC_RUNS") ?? 1));

/** fast-check parameters for one property; prints what replays it. */
function params(name: string, numRuns: number): fc.Parameters<unknown> {
  const runs = Math.round(numRuns * RUNS_FACTOR);
  console.log(`  ${name}: seed ${SEED}, ${runs} runs (replay: KVEDGE_FC_SEED=${SEED})`);
  return { seed: SEED, numRuns: runs, endOnFailure: false, interruptAfterTimeLimit: 120_000 };
}

// ---- 3. the cache over a real nats-server -----------------------------------------

type CacheOp =
  | { op: "rawPut" | "ownSet"; key: string; value: number }
  | { op: "rawDelete" | "rawPurge" | "ownDelete" | "read"; key: string }
  | { op: "raceMiss"; key: string; value: number }
  | { op: "sync" }
  | { op: "cut"; writes: number };

const CACHE_KEYS = ["k1", "k2", "k3", "k4", "k5", "k6"] as const;

const cacheOp = (): fc.Arbitrary<CacheOp> => {
  const key = fc.constantFrom(...CACHE_KEYS);
  const value = fc.integer({ min: 0, max: 1_000_000 });
  return fc.oneof(
    {
      weight: 5,
      arbitrary: fc.record({
        op: fc.constantFrom("rawPut", "ownSet") as fc.Arbitrary<"rawPut" | "ownSet">,
        key,
        value,
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        op: fc.constantFrom("rawDelete", "rawPurge", "ownDelete") as fc.Arbitrary<
          "rawDelete" | "rawPurge" | "ownDelete"
        >,
        key,
      }),
    },
    { weight: 6, arbitrary: fc.record({ op: fc.constant("read" as const), key }) },
    { weight: 3, arbitrary: fc.record({ op: fc.constant("raceMiss" as const), key, value }) },
    { weight: 1, arbitrary: fc.constant({ op: "sync" as const }) },
    {
      weight: 1,
      arbitrary: fc.record({
        op: fc.constant("cut" as const),
        writes: fc.integer({ min: 0, max: 3 }),
      }),
    },
  );
};

/** The bucket as the test knows it: every key's states by revision (undefined = absent). */
class BucketModel {
  readonly states = new Map<string, { rev: number; value: number | undefined }[]>();
  lastSeq = 0;
  /** Hears every applied state (the run's trace). */
  onApply: (key: string, rev: number, value: number | undefined) => void = () => {};
  apply(key: string, rev: number, value: number | undefined): void {
    this.onApply(key, rev, value);
    if (rev > this.lastSeq) this.lastSeq = rev;
    const list = this.states.get(key) ?? [{ rev: 0, value: undefined }];
    list.push({ rev, value });
    list.sort((a, b) => a.rev - b.rev);
    this.states.set(key, list);
  }
  latest(key: string): { rev: number; value: number | undefined } {
    const list = this.states.get(key);
    return list ? list[list.length - 1]! : { rev: 0, value: undefined };
  }
  /** The state at exactly `rev`, if the key had one. */
  at(key: string, rev: number) {
    return (this.states.get(key) ?? []).find((s) => s.rev === rev);
  }
  /** Whether the key was absent at some revision >= `rev` (0: initially absent). */
  absentSince(key: string, rev: number): boolean {
    const list = this.states.get(key) ?? [{ rev: 0, value: undefined }];
    return list.some((s) => s.rev >= rev && s.value === undefined) ||
      (rev === 0 && list[0]!.value === undefined);
  }
}

/** What one run saw, for the failure message: the operations, the cache's events and changes. */
class RunTrace {
  readonly #t0 = Date.now();
  readonly lines: string[] = [];
  add(what: string): void {
    this.lines.push(`${String(Date.now() - this.#t0).padStart(5)} ms ${what}`);
  }
}

/** Every message the bucket's stream holds now, one line each: `seq op key value`. */
async function streamDump(jsm: JetStreamManager, bucket: string): Promise<string[]> {
  const stream = `KV_${bucket}`;
  const info = await jsm.streams.info(stream);
  const out = [
    `stream ${stream}: first ${info.state.first_seq}, last ${info.state.last_seq}, ` +
    `${info.state.messages} messages`,
  ];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq }).catch(() => null);
    if (m === null) continue;
    const op = m.header?.get("KV-Operation") || "PUT";
    out.push(`  ${seq} ${op} ${m.subject.split(".").slice(2).join(".")} ${m.string()}`);
  }
  return out;
}

/** The failure message of a run: why, what the cache and the bucket hold, what happened. */
async function diagnose(
  why: unknown,
  run: { c: Cache<number>; model: BucketModel; trace: RunTrace; jsm: JetStreamManager },
  params: { bucket: string; mode: string; maxItems: number; ops: CacheOp[] },
): Promise<Error> {
  const { c, model, trace, jsm } = run;
  const lines = [
    `${why instanceof Error ? why.message : String(why)}`,
    `-- run: ${params.mode}, maxItems ${params.maxItems}, bucket ${params.bucket}`,
    `-- ops: ${JSON.stringify(params.ops)}`,
    `-- status: ${JSON.stringify(c.status())}`,
    `-- stats: ${JSON.stringify(c.stats())}`,
    `-- model last ${model.lastSeq}; per key: latest (model) / peek (store):`,
  ];
  for (const key of CACHE_KEYS) {
    const want = model.latest(key);
    const states = (model.states.get(key) ?? []).map((s) => `${s.rev}:${s.value ?? "-"}`);
    lines.push(`  ${key}: ${want.rev}:${want.value ?? "-"} / ${c.peek(key) ?? "-"}  [${states}]`);
  }
  lines.push(...(await streamDump(jsm, params.bucket).catch((e) => [`stream: ${e}`])));
  lines.push("-- trace:", ...trace.lines);
  return new Error(lines.join("\n"), { cause: why });
}

Deno.test("property: the cache over a real nats-server keeps reads monotonic and converges", async () => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  const jsm = await jetstreamManager(nc);
  let runs = 0;
  let steps = 0;
  let reads = 0;
  let cuts = 0;
  // Consumers replaced at a purge marker (nats-server < 2.9.12), and how many
  // of them then delivered a revision the marker had jumped over (a skip).
  let purgeRestarts = 0;
  let skipsRepaired = 0;
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("lazy" as const, "replica" as const),
        fc.integer({ min: 2, max: 6 }),
        fc.array(cacheOp(), { minLength: 5, maxLength: 30 }),
        async (mode, maxItems, ops) => {
          runs++;
          const bucket = uniqueBucket("p");
          const kv = await kvm.create(bucket, { history: 5 }).catch(async (err) => {
            // The server logs why it could not make the stream (a full disk, say).
            const log = await Deno.readTextFile(srv.logFile).catch(() => "");
            const why = log.split("\n").filter((l) => /\[(WRN|ERR)\]/.test(l)).slice(-5);
            throw new Error(`create bucket ${bucket}: ${err}\n${why.join("\n")}`, { cause: err });
          });
          await using proxy = startProxy(srv.port);
          const model = new BucketModel();
          const seen = new Map<string, number>(); // highest revision each key was read at
          const trace = new RunTrace();
          const jumps: { marker: number; after: number }[] = [];
          const applied: number[] = []; // revisions changes() got (the watcher's, in order)
          model.onApply = (key, rev, value) => trace.add(`  wrote ${key}@${rev} = ${value ?? "-"}`);
          const c: Cache<number> = await openCache<number>({
            onEvent: (e) => {
              const jump = e.type === "watcher_restart" &&
                /^purge marker (\d+) jumps over revisions after (\d+)/.exec(e.reason);
              if (jump) {
                purgeRestarts++;
                jumps.push({ marker: Number(jump[1]), after: Number(jump[2]) });
              }
              const { type, at: _, ...rest } = e;
              trace.add(`event ${type} ${JSON.stringify(rest)}`);
            },
            servers: proxy.url,
            bucket,
            mode,
            local: { maxItems },
            missTimeoutMs: 2_000,
            writeTimeoutMs: 2_000,
            heartbeatMs: 500,
            connectOptions: { reconnectTimeWait: 50, reconnectJitter: 20 },
          });
          const follow = (async () => {
            for await (const ch of c.changes()) {
              applied.push(ch.revision);
              trace.add(`change ${ch.revision} ${ch.operation} ${ch.key} ${ch.value ?? "-"}`);
            }
          })().catch((e) => trace.add(`changes() ended: ${e}`));
          try {
            await c.ready({ timeoutMs: 10_000 });
            const check = (
              key: string,
              e: { revision: number; value: number; source?: string } | undefined,
            ) => {
              reads++;
              trace.add(
                `  read ${key}: ${e ? `${e.revision}:${e.value} (${e.source})` : "absent"}`,
              );
              const last = seen.get(key) ?? 0;
              if (e === undefined) {
                assert.ok(
                  model.absentSince(key, last),
                  `${key} read as absent, but it was present at every revision since ${last}`,
                );
                return;
              }
              assert.ok(e.revision >= last, `${key} read at ${e.revision} after ${last} (rule 4)`);
              const state = model.at(key, e.revision);
              assert.ok(state, `${key} read at revision ${e.revision}, which never held it`);
              assert.equal(e.value, state.value, `${key}@${e.revision} has another value`);
              seen.set(key, e.revision);
            };
            const sync = async () => {
              await waitFor(
                () => c.status().connected && c.stats().lastRevision >= model.lastSeq,
                { timeoutMs: 15_000, message: `watcher reached revision ${model.lastSeq}` },
              );
              // Applied everything, so it must say "synced" — nats-server 2.9.10
              // sometimes over-counts num_pending of a "$KV.<b>.>" consumer, and
              // the watcher must not wait for a pending 0 that never comes.
              await waitFor(() => c.status().state === "synced", {
                timeoutMs: 5_000,
                message: "caught up, yet the state stays " + c.status().state,
              });
              for (const key of CACHE_KEYS) {
                const e = await c.getEntry(key);
                const want = model.latest(key);
                check(key, e);
                assert.equal(e?.value, want.value, `${key} did not converge (rule 5)`);
                if (e) assert.equal(e.revision, want.rev);
              }
              assert.ok(c.stats().entries <= maxItems);
            };
            const step = async (o: CacheOp) => {
              steps++;
              trace.add(`op ${JSON.stringify(o)}`);
              switch (o.op) {
                case "rawPut":
                  model.apply(o.key, await kv.put(o.key, JSON.stringify(o.value)), o.value);
                  break;
                case "ownSet":
                  model.apply(o.key, await c.set(o.key, o.value), o.value);
                  break;
                case "rawDelete":
                case "rawPurge": {
                  if (o.op === "rawDelete") await kv.delete(o.key);
                  else await kv.purge(o.key);
                  const e = await kv.get(o.key);
                  if (e) model.apply(o.key, e.revision, undefined);
                  break;
                }
                case "ownDelete":
                  model.apply(o.key, await c.delete(o.key), undefined);
                  break;
                case "read":
                  check(o.key, await c.getEntry(o.key));
                  break;
                case "raceMiss": {
                  // A miss fetch racing a write of the same key (rule 3).
                  const [e, rev] = await Promise.all([
                    c.getEntry(o.key),
                    kv.put(o.key, JSON.stringify(o.value)),
                  ]);
                  model.apply(o.key, rev, o.value);
                  check(o.key, e);
                  break;
                }
                case "sync":
                  await sync();
                  break;
                case "cut": {
                  cuts++;
                  proxy.cut();
                  await waitFor(() => !c.status().connected, { message: "disconnect noticed" });
                  for (let i = 0; i < o.writes; i++) {
                    const key = CACHE_KEYS[i]!;
                    model.apply(key, await kv.put(key, JSON.stringify(-1 - i)), -1 - i);
                  }
                  // Resident entries are served stale meanwhile, still never older.
                  for (const key of CACHE_KEYS) {
                    const v = c.peek(key);
                    if (v !== undefined) {
                      assert.ok(
                        (model.states.get(key) ?? []).some((s) => s.value === v),
                        `${key} served ${v} while cut off, a value it never had`,
                      );
                    }
                  }
                  proxy.restore();
                  await waitFor(() => c.status().connected, { message: "reconnected" });
                  break;
                }
              }
            };
            try {
              for (const o of ops) await step(o);
              trace.add("op final sync");
              await sync();
              assert.equal(c.stats().resyncs, 0, "nothing was lost, yet the cache resynced");
            } catch (err) {
              throw await diagnose(err, { c, model, trace, jsm }, { bucket, mode, maxItems, ops });
            }
          } finally {
            await c.close();
            await follow;
            // A revision between is one the replaced consumer had skipped (the
            // watcher never applied it before: it had passed only `after`).
            skipsRepaired += jumps.filter((j) =>
              applied.some((r) => r > j.after && r < j.marker)
            ).length;
            await kv.destroy().catch(() => {});
          }
        },
      ),
      params("cache over nats-server", 60),
    );
  } finally {
    console.log(
      `  cache over nats-server: ${runs} runs, ${steps} operations, ${reads} checked reads, ${cuts} network cuts, ` +
        `${purgeRestarts} consumers replaced at a purge marker (${skipsRepaired} of them then ` +
        `delivered a revision the marker had jumped over)`,
    );
    await nc.close();
  }
});
