/**
 * docs/regions-quickstart.md, run as written: every command of the page, in
 * order, from the committed config files, as the restricted `edge` identity
 * with a write token. Only the ports (to free loopback ports) and the store
 * directory differ. The quick start's configs must be docs/topologies/'s
 * hub.conf and leaf.conf below their host-specific sections.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { natsCliBinary } from "../../host/nats_binary.ts";
import { connect } from "@nats-io/transport-node";
import {
  assertSameBody,
  freePorts,
  remapPorts,
  runProcedure,
  sectionCommands,
  shCommands,
} from "../_doc_procedure.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const PAGE = `${ROOT}/docs/regions-quickstart.md`;

Deno.test("the quick start's configs are docs/topologies' hub.conf and leaf.conf", () => {
  for (const [quick, topo] of [["hub.conf", "hub.conf"], ["leaf-eu.conf", "leaf.conf"]]) {
    assertSameBody(
      Deno.readTextFileSync(`${ROOT}/docs/quickstart/${quick}`),
      Deno.readTextFileSync(`${ROOT}/docs/topologies/${topo}`),
      `docs/quickstart/${quick} vs docs/topologies/${topo}`,
    );
  }
});

Deno.test("topologies.md's regional serve line sets what the quick start's (tested) one sets", () => {
  const vars = (page: string) => {
    const text = Deno.readTextFileSync(`${ROOT}/docs/${page}`);
    // topologies.md's regional set-up, not its other sections' serve lines.
    const commands = page === "topologies.md"
      ? sectionCommands(text, "### Setting it up")
      : shCommands(text);
    const serve = commands.find((c) => c.command.endsWith("deno task serve"));
    assert.ok(serve, `${page} shows a deno task serve line`);
    return [...serve.command.matchAll(/\b([A-Z_]+)=/g)].map((m) => m[1]).filter((v) => v !== "PORT")
      .sort();
  };
  assert.deepEqual(vars("topologies.md"), vars("regions-quickstart.md"));
});

Deno.test({
  name: "docs/regions-quickstart.md runs as written: hub, leaf, mirror, restricted regional edge",
  ignore: natsCliBinary() === undefined,
  async fn(t) {
    const commands = shCommands(Deno.readTextFileSync(PAGE));
    assert.ok(commands.length >= 8, `the page has its commands (${commands.length})`);
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_quickstart_" });
    try {
      const ports = freePorts([4222, 4223, 7422, 8222, 8223, 8080]);
      for (const f of ["hub.conf", "leaf-eu.conf"]) {
        const text = Deno.readTextFileSync(`${ROOT}/docs/quickstart/${f}`);
        assert.match(text, /"\.data\/quickstart\//, `${f} keeps its store under .data/quickstart`);
        await Deno.writeTextFile(
          `${tmp}/${f}`,
          remapPorts(text, ports).replaceAll('".data/quickstart/', `"${tmp}/store/`),
        );
      }
      const started = performance.now();
      await using run = await runProcedure(commands, {
        cwd: ROOT,
        tmp,
        rewrite: (c) => remapPorts(c.replaceAll("docs/quickstart/", `${tmp}/`), ports),
      });
      const seconds = (performance.now() - started) / 1000;
      // What the page claims, checked from outside: the mirror keeps the hub's history, the
      // edge's write is in the hub's bucket.
      const hub = await connect({ servers: `127.0.0.1:${ports.get(4222)}` });
      try {
        const kv = await new Kvm(hub).open("cfg");
        assert.equal((await kv.get("greeting"))?.string(), '"hej"');
      } finally {
        await hub.close();
      }
      const leaf = await connect({
        servers: `127.0.0.1:${ports.get(4223)}`,
        user: "admin",
        pass: "kvedge-admin-test-only",
      });
      try {
        const info = await (await jetstreamManager(leaf)).streams.info("KV_cfg");
        assert.equal(info.config.max_msgs_per_subject, 10, "the mirror keeps 10 revisions");
        assert.ok(info.config.mirror, "KV_cfg in the region is a mirror");
      } finally {
        await leaf.close();
      }
      await t.step(
        "topologies.md's natscli mirror: without --history kv mirror refuses it",
        async () => {
          const line = shCommands(Deno.readTextFileSync(`${ROOT}/docs/topologies.md`))
            .map((c) => c.command).find((c) => c.startsWith("nats kv add cfg --mirror"));
          assert.ok(line, "topologies.md shows the natscli mirror command");
          assert.match(line, /--history 10$/);
          const hubUrl = `nats://127.0.0.1:${ports.get(4222)}`;
          const asAdmin = `NATS_URL=nats://127.0.0.1:${ports.get(4223)} NATS_USER=admin ` +
            "NATS_PASSWORD=kvedge-admin-test-only";
          for (
            const [bucket, cmd, ok] of [
              ["short", line.replace(/ --history 10$/, ""), false],
              ["full", line, true],
            ] as const
          ) {
            const add = await run.sh(`nats --server ${hubUrl} kv add ${bucket} --history 10`);
            assert.equal(add.code, 0, add.out);
            const mirror = await run.sh(`${asAdmin} ${cmd.replaceAll("cfg", bucket)}`);
            assert.equal(mirror.code, 0, mirror.out);
            const check = await run.sh(`${asAdmin} deno task kv mirror ${bucket} --hub-domain hub`);
            if (ok) {
              assert.equal(check.code, 0, check.out);
            } else {
              assert.equal(check.code, 1, check.out);
              assert.match(check.out, /keeps 1 revision\(s\) per key, the hub's bucket 10/);
            }
          }
        },
      );
      const edgeLog = [...run.background].find(([k]) => k.includes("deno task serve"))![1]();
      assert.doesNotMatch(edgeLog, /Permissions Violation|superseded|"level":"error"/);
      console.log(`quick start: ${commands.length} commands in ${seconds.toFixed(1)} s`);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
