/**
 * Rule 8 across regions: a write at an edge in region eu returns a bookmark
 * that an edge in region us honours at once, although us's mirror is behind
 * (its WAN link delayed): the read waits for the mirror, then goes to the hub.
 * With the WAN cut, the read fails typed instead of answering older.
 */
import assert from "node:assert/strict";
import { BookmarkError, type Entry } from "../../mod.ts";
import { connectHub, regionalBucket, regionalEdge } from "../_regions.ts";
import { startRegions, waitFor } from "../_setup.ts";

const PAIRS = 1_000;
const KEYS = 100;

Deno.test("a bookmark from region eu is honoured in region us (rule 8)", async (t) => {
  await using topo = await startRegions();
  const [eu, us] = topo.regions as [typeof topo.regions[0], typeof topo.regions[0]];
  const hubNc = await connectHub(topo);
  try {
    const b = await regionalBucket(topo, hubNc);
    await using writer = await regionalEdge<number>(eu, b.name, { missTimeoutMs: 5_000 });
    await using reader = await regionalEdge<number>(us, b.name, {
      mode: "replica",
      missTimeoutMs: 5_000,
    });
    // The same with no wait: what it has not applied, it reads at once from
    // the mirror if the mirror has it, else from the hub.
    await using fetcher = await regionalEdge<number>(us, b.name, {
      mode: "replica",
      missTimeoutMs: 5_000,
      bookmarkWaitMs: 0,
    });
    await Promise.all([writer.ready(), reader.ready(), fetcher.ready()]);
    for (let k = 0; k < KEYS; k++) await writer.set(`k.${k}`, -1);
    await waitFor(
      () => reader.peek(`k.${KEYS - 1}`) === -1 && fetcher.peek(`k.${KEYS - 1}`) === -1,
      {
        timeoutMs: 20_000,
      },
    );
    // Every chunk between us's leaf and the hub 150 ms late each way: us's
    // mirror, hence its edge, learns of eu's writes well after they return.
    us.delay(150);

    const pairs = async (
      read: (key: string, rev: number) => Promise<Entry<number> | undefined>,
    ) => {
      let older = 0;
      const sources = new Map<string, number>();
      for (let done = 0; done < PAIRS; done += KEYS) {
        await Promise.all(Array.from({ length: KEYS }, async (_, k) => {
          const key = `k.${k}`;
          const rev = await writer.set(key, done + k);
          const e = await read(key, rev);
          if (e === undefined || e.revision < rev) older++;
          else assert.equal(e.value, done + k);
          sources.set(e?.source ?? "absent", (sources.get(e?.source ?? "absent") ?? 0) + 1);
        }));
      }
      return { older, sources };
    };

    await t.step("1 000 pairs eu → us: none older with the bookmark, some without", async () => {
      const plain = await pairs((key) => reader.getEntry(key));
      assert.ok(
        plain.older > 0,
        `us answered old values without a bookmark (${[...plain.sources]})`,
      );
      const bm = await pairs((key, rev) =>
        reader.getEntry(key, { atLeast: writer.bookmark().with(b.name, rev) })
      );
      assert.equal(bm.older, 0, `answers older than the bookmark (${[...bm.sources]})`);
      const fetched = await pairs((key, rev) => fetcher.getEntry(key, { atLeast: rev }));
      assert.equal(fetched.older, 0, `answers older than the bookmark (${[...fetched.sources]})`);
      assert.ok(
        (fetched.sources.get("miss") ?? 0) > 0,
        `the edge without a wait read from the hub (${[...fetched.sources]})`,
      );
    });

    await t.step("the WAN cut: a bookmarked read us cannot vouch for fails typed", async () => {
      us.delay(0);
      await waitFor(
        () => reader.status().region?.mirrorLag === 0 && reader.status().lagRevisions === 0,
        {
          timeoutMs: 30_000,
        },
      );
      us.cut();
      await waitFor(() => reader.status().region?.hubReachable === false, { timeoutMs: 20_000 });
      // Written at the hub (eu's own link is up) while us is cut off.
      const rev = await writer.set("k.0", 42);
      const err = await reader.getEntry("k.0", { atLeast: rev }).then(
        (e) => assert.fail(`answered ${JSON.stringify(e)}, older than ${rev}`),
        (e: unknown) => e,
      );
      assert.ok(err instanceof BookmarkError, `a BookmarkError, got ${err}`);
      assert.equal(err.code, "BOOKMARK_NOT_REACHED");
      const stale = await reader.getEntry("k.0", { atLeast: rev, allowStale: true });
      assert.equal(stale?.belowBookmark, true);
      us.heal();
      // Healed: the same read is answered (mirror or hub), not older.
      await waitFor(async () => {
        const e = await reader.getEntry("k.0", { atLeast: rev }).catch(() => undefined);
        return e !== undefined && e.revision >= rev && e.value === 42;
      }, { timeoutMs: 30_000, message: "us honours the bookmark after the heal" });
    });
  } finally {
    await hubNc.close();
  }
});
