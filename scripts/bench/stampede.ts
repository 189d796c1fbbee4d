/**
 * Stampede: 1000 concurrent `get()`s of one key absent from KV, with a
 * loader that takes 20 ms, against a naive cache-aside (Map + loader, no
 * single-flight). Counts origin calls; reports the wall time too.
 *
 * @module
 */
import { openCache } from "../../mod.ts";
import { absRow, infoRow, type Scenario, stat } from "./_harness.ts";
import { benchBucket } from "./_helpers.ts";
import { delay } from "../../src/async.ts";
import { benchServer } from "./_processes.ts";

const CONCURRENCY = 1_000;
const LOADER_MS = 20;

/** The stampede scenario. */
export const scenario: Scenario = {
  name: "stampede",
  title: "1000 concurrent gets of one missing key, 20 ms loader: origin calls",
  async run(ctx) {
    const server = await benchServer();
    try {
      let kvedgeCalls = 0;
      const cache = await openCache<{ key: string }>({
        servers: server.url,
        bucket: benchBucket("bench_stampede"),
        create: true,
        local: { maxItems: 10_000 },
        loader: async (key) => {
          kvedgeCalls++;
          await delay(LOADER_MS);
          return { key };
        },
      });
      await cache.ready();

      let naiveCalls = 0;
      const naiveStore = new Map<string, { key: string }>();
      const naiveGet = async (key: string) => {
        const hit = naiveStore.get(key);
        if (hit !== undefined) return hit;
        naiveCalls++;
        await delay(LOADER_MS);
        const v = { key };
        naiveStore.set(key, v);
        return v;
      };

      const calls = { kvedge: [] as number[], naive: [] as number[] };
      const wallMs = { kvedge: [] as number[], naive: [] as number[] };
      // One warm-up round of each, not recorded.
      for (let r = -1; r < ctx.reps; r++) {
        const key = `stampede.k${r + 1}`;
        kvedgeCalls = 0;
        let t0 = performance.now();
        const got = await Promise.all(
          Array.from({ length: CONCURRENCY }, () => cache.get(key)),
        );
        const kMs = performance.now() - t0;
        if (got.some((v) => v?.key !== key)) throw new Error("kvedge returned a wrong value");
        naiveCalls = 0;
        t0 = performance.now();
        await Promise.all(Array.from({ length: CONCURRENCY }, () => naiveGet(key)));
        const nMs = performance.now() - t0;
        if (r < 0) continue;
        calls.kvedge.push(kvedgeCalls);
        calls.naive.push(naiveCalls);
        wallMs.kvedge.push(kMs);
        wallMs.naive.push(nMs);
      }
      await cache.close();
      return {
        name: "stampede",
        title: this.title,
        params: { concurrency: CONCURRENCY, loaderMs: LOADER_MS, reps: ctx.reps },
        rows: [
          absRow(
            `origin calls for ${CONCURRENCY} concurrent get()`,
            "calls",
            stat(calls.kvedge),
            "eq",
            1,
            {
              baselineName: "naive cache-aside",
              baseline: stat(calls.naive),
            },
          ),
          infoRow(`wall time of ${CONCURRENCY} concurrent get()`, "ms", stat(wallMs.kvedge), {
            baselineName: "naive cache-aside",
            baseline: stat(wallMs.naive),
            note: "info: includes one KV miss fetch before the loader",
          }),
        ],
        raw: { calls, wallMs },
      };
    } finally {
      await server.stop();
    }
  },
};
