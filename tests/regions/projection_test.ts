/**
 * Projections in a region over leaf nodes: a runner connected to a region's
 * leaf node reads the hub's source and writes the hub's target through the
 * hub's JetStream domain (`RunProjectionOptions.region`, `KVEDGE_HUB_DOMAIN`).
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { defineProjection, type ProjectionStatus, runProjection } from "../../projection.ts";
import { SOURCE_SEQ_HEADER } from "../../src/projection/target.ts";
import { connectHub, regionalBucket } from "../_regions.ts";
import { HUB_DOMAIN, LEAF_PASSWORDS, startRegions, uniqueBucket } from "../_setup.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Total {
  sum: number;
  count: number;
}

/** A fold: any event applied twice (or lost) shows in `sum` and `count`. */
function totals(name: string, source: string, target: string) {
  return defineProjection<Total>({
    name,
    source: { bucket: source },
    target,
    map: async (event, ctx) => {
      if (event.operation !== "PUT") return null;
      const prev = (await ctx.get("total"))?.value ?? { sum: 0, count: 0 };
      const n = event.json<number>();
      return { key: "total", value: { sum: prev.sum + n, count: prev.count + 1 } };
    },
  });
}

Deno.test("projections in a region: source and target on the hub, runner on a leaf", async (t) => {
  await using topo = await startRegions({ regions: ["eu"] });
  const eu = topo.regions[0]!;
  const hubNc = await connectHub(topo);
  const leafNc = await eu.connect();
  try {
    // The source is mirrored into the region, as a regional edge would need it.
    const src = await regionalBucket(topo, hubNc);
    const target = uniqueBucket("tgt");
    const name = uniqueBucket("p");
    const p = totals(name, src.name, target);
    let want = 0;
    for (let i = 1; i <= 20; i++) {
      await src.hubKv.put(`e.${i}`, JSON.stringify(i));
      want += i;
    }

    await t.step("region is validated like the other options", async () => {
      for (const region of [{ hubDomain: "no such" }, { hubDomain: "" }, { domain: "hub" }]) {
        await assert.rejects(
          () => runProjection(leafNc, p, { region } as never),
          TypeError,
          JSON.stringify(region),
        );
      }
    });

    await t.step("each event is applied once; the output is in the hub's target", async () => {
      const run = await runProjection(leafNc, p, {
        region: { hubDomain: HUB_DOMAIN },
        statusIntervalMs: 200,
      });
      try {
        const s = await run.caughtUp({ signal: AbortSignal.timeout(60_000) });
        assert.equal(s.applied, 20);
        assert.equal(s.lag, 0);
        // More events while it runs: the CAS fence holds across them.
        for (let i = 21; i <= 30; i++) {
          await src.hubKv.put(`e.${i}`, JSON.stringify(i));
          want += i;
        }
        await run.caughtUp({ signal: AbortSignal.timeout(60_000) });
      } finally {
        await run.stop();
      }
      const hubTarget = await new Kvm(hubNc).open(target);
      const e = await hubTarget.get("total");
      assert.deepEqual(e?.json(), { sum: want, count: 30 });
      // The checkpoint is the hub source's consumer; the leaf holds neither it nor a target.
      const hubJsm = await jetstreamManager(hubNc);
      const ci = await hubJsm.consumers.info(`KV_${src.name}`, `projection_${name}`);
      assert.equal(ci.num_pending, 0);
      const leafJsm = await jetstreamManager(leafNc);
      await assert.rejects(() => leafJsm.streams.info(`KV_${target}`));
      await assert.rejects(() => leafJsm.consumers.info(`KV_${src.name}`, `projection_${name}`));
      const sm = await hubJsm.streams.getMessage(`KV_${target}`, {
        last_by_subj: `$KV.${target}.total`,
      });
      assert.equal(sm?.header?.get(SOURCE_SEQ_HEADER), String(30));
    });

    await t.step("a restart resumes at the checkpoint; a replay changes nothing", async () => {
      for (let i = 31; i <= 35; i++) {
        await src.hubKv.put(`e.${i}`, JSON.stringify(i));
        want += i;
      }
      const run = await runProjection(leafNc, p, { region: { hubDomain: HUB_DOMAIN } });
      let s: ProjectionStatus;
      try {
        s = await run.caughtUp({ signal: AbortSignal.timeout(60_000) });
      } finally {
        await run.stop();
      }
      assert.equal(s.applied, 5);
      const replay = await runProjection(leafNc, p, {
        region: { hubDomain: HUB_DOMAIN },
        fromStart: true,
      });
      try {
        s = await replay.caughtUp({ signal: AbortSignal.timeout(60_000) });
      } finally {
        await replay.stop();
      }
      assert.equal(s.applied, 0);
      assert.equal(s.skipped, 35);
      const e = await (await new Kvm(hubNc).open(target)).get("total");
      assert.deepEqual(e?.json(), { sum: want, count: 35 });
    });

    await t.step("deno task project with KVEDGE_HUB_DOMAIN, on the leaf", async () => {
      const dir = await Deno.makeTempDir({ prefix: "kvedge_regproj_" });
      try {
        const target2 = uniqueBucket("tgt");
        const module = `${dir}/projection.ts`;
        await Deno.writeTextFile(
          module,
          `import { defineProjection } from ${
            JSON.stringify(`${ROOT}src/projection/define.ts`)
          };\n` +
            `export default defineProjection({ name: ${JSON.stringify(uniqueBucket("w"))}, ` +
            `source: { bucket: ${JSON.stringify(src.name)} }, target: ${
              JSON.stringify(target2)
            }, ` +
            `map: (e) => e.operation === "PUT" ? { key: e.key, value: e.json() } : null });\n`,
        );
        const url = new URL(eu.url);
        url.username = "admin";
        url.password = LEAF_PASSWORDS.admin;
        const out = await new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--config",
            `${ROOT}deno.json`,
            `${ROOT}workers/projector.ts`,
            "--until-caught-up",
            module,
          ],
          cwd: dir,
          env: { NATS_URL: url.href, KVEDGE_HUB_DOMAIN: HUB_DOMAIN, NO_COLOR: "1" },
          stdin: "null",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        const kv = await new Kvm(hubNc).open(target2);
        assert.equal((await kv.get("e.35"))?.json(), 35);
        const leafJsm = await jetstreamManager(leafNc);
        await assert.rejects(() => leafJsm.streams.info(`KV_${target2}`));
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  } finally {
    await leafNc.close();
    await hubNc.close();
  }
});
