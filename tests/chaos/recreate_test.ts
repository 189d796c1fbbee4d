import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheMode, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { startProxy } from "../_proxy.ts";
import { fill } from "../_seed.ts";
import { figures, scale } from "../_chaos.ts";

const OLD_KEYS = scale(300, 3_000);
/** Keys present in both generations (with other values in the new one). */
const SHARED = 50;

Deno.test("chaos: a bucket deleted and recreated with other content leaves nothing old in the edge", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  try {
    for (const mode of ["lazy", "replica"] as CacheMode[]) {
      for (const when of ["connected", "disconnected"] as const) {
        // "more": the new bucket gets more revisions than the old one had, so
        // only the stream's creation time tells the generations apart.
        for (const newRevisions of ["fewer", "more"] as const) {
          await t.step(
            `${mode} edge, recreated while ${when}, ${newRevisions} revisions`,
            async () => {
              const bucket = uniqueBucket("chaos");
              await kvm.create(bucket, { history: 2 });
              await fill(nc, bucket, OLD_KEYS, (i) => ({ gen: "old", i }), { prefix: "o." });
              await using proxy = startProxy(srv.port);
              // The revision each "synced" after the resync was declared at.
              const syncedAt: number[] = [];
              let resynced = false;
              await using edge = await openCache<{ gen: string; i: number }>({
                servers: proxy.url,
                bucket,
                mode,
                local: { maxItems: 100_000 },
                heartbeatMs: 500,
                // This test judges what is served, not how fast: a miss may wait
                // on a machine whose cores are all busy.
                missTimeoutMs: 5_000,
                connectOptions: { reconnectTimeWait: 50, reconnectJitter: 20 },
                onEvent: (e) => {
                  if (e.type === "resync") resynced = true;
                  else if (e.type === "synced" && resynced) syncedAt.push(e.revision);
                },
              });
              await edge.ready({ timeoutMs: 15_000 });
              // Lazy: make the old keys resident by reading them.
              for (let i = 0; i < OLD_KEYS; i++) {
                assert.equal((await edge.get(`o.${i}`))?.gen, "old");
              }
              if (when === "disconnected") {
                proxy.cut();
                await waitFor(() => !edge.status().connected, { message: "edge disconnected" });
              }
              await (await kvm.open(bucket)).destroy();
              await kvm.create(bucket, { history: 2 });
              const newCount = newRevisions === "more" ? OLD_KEYS + 100 : 100;
              // The first SHARED keys reuse old names ("o.<i>"); the rest are new ("n.<i>").
              await fill(nc, bucket, SHARED, (i) => ({ gen: "new", i }), { prefix: "o." });
              await fill(nc, bucket, newCount - SHARED, (i) => ({ gen: "new", i }), {
                prefix: "n.",
              });
              if (when === "disconnected") proxy.restore();
              await waitFor(
                () => edge.status().resyncs >= 1 && edge.status().state === "synced",
                { timeoutMs: 20_000, message: "the edge resynced after the recreation" },
              );
              // Synced means every revision the new bucket had at the resync is
              // applied: the new consumer's first deliveries (which may overtake
              // its create response) were once judged by the old bucket's lower
              // last revision, and "synced" came early.
              const newLast = (await (await kvm.open(bucket)).status()).streamInfo.state.last_seq;
              assert.ok(
                syncedAt[0]! >= newLast,
                `synced at revision ${syncedAt[0]} after the resync, the new bucket had ${newLast}`,
              );
              let oldServed = 0;
              for (let i = 0; i < OLD_KEYS; i++) {
                const v = await edge.get(`o.${i}`);
                if (v?.gen === "old") oldServed++;
                if (i < SHARED) assert.deepEqual(v, { gen: "new", i }, `o.${i} has its new value`);
                else assert.equal(v, undefined, `o.${i} is gone with the old bucket`);
              }
              for (let i = 0; i < newCount - SHARED; i += 7) {
                assert.deepEqual(await edge.get(`n.${i}`), { gen: "new", i });
              }
              const s = edge.status();
              figures("recreate", {
                mode,
                when,
                newRevisions,
                oldKeys: OLD_KEYS,
                oldValuesServedAfter: oldServed,
                resyncs: s.resyncs,
                reason: JSON.stringify(s.lastResyncReason),
              });
              assert.equal(oldServed, 0);
              assert.match(s.lastResyncReason ?? "", /recreated|backwards/);
            },
          );
        }
      }
    }
  } finally {
    await nc.close();
  }
});
