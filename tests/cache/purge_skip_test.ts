/**
 * A purge right after a write of another key. nats-server before 2.9.12
 * moves a consumer whose filter covers the purged key up to the purge marker,
 * so a write stored just before the marker and not yet delivered is skipped
 * with no gap in the consumer's sequence (docs/nats-versions.md, "A purge
 * skips other keys' undelivered writes"): the watcher reached the last
 * revision and the cache said "synced" while serving the older value (the
 * property test's rare "did not converge (rule 5)"). Each round writes the
 * put and the purge back to back (pipelined, as two clients writing at once
 * would), which makes 2.9.10 skip the put in almost every round; on a newer
 * server the same rounds must converge too.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheEvent, type CacheMode, openCache } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const ROUNDS = 20;

Deno.test("a purge of one key never hides another key's write just before it", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  const version = nc.info?.version;
  try {
    for (const mode of ["replica", "lazy"] satisfies CacheMode[]) {
      await t.step(`${mode}: ${ROUNDS} rounds of put "a" then purge "p" converge`, async () => {
        const bucket = uniqueBucket("ps");
        const kv = await kvm.create(bucket, { history: 5 });
        await kv.put("a", JSON.stringify(-1));
        const events: CacheEvent[] = [];
        await using c = await openCache<number>({
          servers: srv.url,
          bucket,
          mode,
          local: { maxItems: 10 },
          onEvent: (e) => events.push(e),
        });
        await c.ready({ timeoutMs: 10_000 });
        assert.equal((await c.getEntry("a"))?.value, -1); // resident in both modes
        for (let round = 0; round < ROUNDS; round++) {
          const [put, purged] = await Promise.all([
            kv.put("a", JSON.stringify(round)),
            kv.purge("p").then(() => kv.get("p")),
          ]);
          const last = Math.max(put, purged!.revision);
          await waitFor(
            () => c.stats().lastRevision >= last && c.status().state === "synced",
            { timeoutMs: 10_000, message: `round ${round}: synced at revision ${last}` },
          );
          const e = await c.getEntry("a");
          const restarts = events.filter((e) => e.type === "watcher_restart");
          assert.deepEqual(
            { revision: e?.revision, value: e?.value },
            { revision: put, value: round },
            `round ${round} on nats-server ${version}: "a" is not its write at ${put} ` +
              `(purge at ${purged!.revision}, watcher at ${c.stats().lastRevision}, ` +
              `restarts: ${JSON.stringify(restarts)})`,
          );
        }
        const skips = events.filter((e) =>
          e.type === "watcher_restart" && e.reason.startsWith("purge marker")
        );
        console.log(
          `  ${mode} on ${version}: ${skips.length} of ${ROUNDS} purges replaced the consumer`,
        );
        await kv.destroy();
      });
    }
  } finally {
    await nc.close();
  }
});
