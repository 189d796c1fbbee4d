/**
 * docs/topologies.md's one-cluster set-up, run as written ("One cluster",
 * "A cluster on one machine"): three nodes from the committed
 * docs/quickstart/cluster-n*.conf, an R3 bucket made by `admin`, a writer edge
 * and a read-only replica edge as the restricted identities of nats-edge.conf,
 * a write through the writer that the read-only edge serves, and an update it
 * receives from its watcher. Only ports and store directories differ. The test
 * waits, with deadlines, for what the page tells the operator to wait for: the
 * meta leader before `kv add`, the stream's leader and current replicas before
 * the edges start.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { connect } from "@nats-io/transport-node";
import { natsCliBinary } from "../../host/nats_binary.ts";
import {
  assertSameBody,
  freePorts,
  remapPorts,
  runProcedure,
  sectionCommands,
} from "../_doc_procedure.ts";
import { streamSettled } from "../_chaos.ts";
import { waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const read = (path: string) => Deno.readTextFileSync(`${ROOT}/${path}`);
const NODES = ["cluster-n1.conf", "cluster-n2.conf", "cluster-n3.conf"];

interface Jsz {
  meta_cluster?: { leader?: string; replicas?: { name: string; current: boolean }[] };
}

Deno.test("quickstart/cluster-n*.conf are docs/nats-edge.conf below their host-specific section", () => {
  for (const node of NODES) {
    assertSameBody(read(`docs/quickstart/${node}`), read("docs/nats-edge.conf"), node);
  }
});

Deno.test({
  name: "topologies.md's one-cluster set-up runs as written: R3 bucket, writer and read-only edge",
  ignore: natsCliBinary() === undefined,
  async fn() {
    const commands = sectionCommands(read("docs/topologies.md"), "### A cluster on one machine");
    assert.ok(commands.length >= 10, `the section has its commands (${commands.length})`);
    assert.equal(
      commands.filter((c) => c.background && c.command.startsWith("nats-server -c")).length,
      3,
      "the section starts three nodes",
    );
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_cluster_qs_" });
    try {
      const ports = freePorts([4222, 4223, 4224, 6222, 6223, 6224, 8222, 8223, 8224, 8080, 8081]);
      for (const node of NODES) {
        const text = read(`docs/quickstart/${node}`);
        assert.match(
          text,
          /"\.data\/quickstart\//,
          `${node} keeps its store under .data/quickstart`,
        );
        await Deno.writeTextFile(
          `${tmp}/${node}`,
          remapPorts(text, ports).replaceAll('".data/quickstart/', `"${tmp}/store/`),
        );
      }
      const monitor = [8222, 8223, 8224].map((p) => `http://127.0.0.1:${ports.get(p)}/jsz`);
      const admin = () =>
        connect({
          servers: `127.0.0.1:${ports.get(4222)}`,
          user: "admin",
          pass: "kvedge-admin-test-only",
        });
      let metaWaited = false;
      let streamWaited = false;
      await using run = await runProcedure(commands, {
        cwd: ROOT,
        tmp,
        rewrite: (c) => remapPorts(c.replaceAll("docs/quickstart/", `${tmp}/`), ports),
        before: async (c) => {
          if (!metaWaited && c.command.includes(" kv add ")) {
            // One meta leader that all three nodes agree on, seeing both other peers current.
            await waitFor(async () => {
              const reports = await Promise.all(
                monitor.map((url) =>
                  fetch(url).then((r) => r.json() as Promise<Jsz>).catch(() => undefined)
                ),
              );
              const leaders = new Set(reports.map((r) => r?.meta_cluster?.leader));
              const [leader] = leaders;
              if (leaders.size !== 1 || leader === undefined) return false;
              // The configs name the nodes n1, n2, n3, in the order of `monitor`.
              const seen = reports[Number(leader.slice(1)) - 1]?.meta_cluster?.replicas ?? [];
              return seen.length === 2 && seen.every((p) => p.current);
            }, { timeoutMs: 60_000, message: "the cluster has a JetStream meta leader" });
            metaWaited = true;
          }
          if (!streamWaited && c.command.endsWith("deno task serve")) {
            const nc = await admin();
            try {
              await streamSettled(nc, "KV_cfg", Date.now() + 60_000);
            } finally {
              await nc.close();
            }
            streamWaited = true;
          }
        },
      });
      assert.ok(metaWaited && streamWaited, "the waits ran before kv add and the edges");

      // What the page claims, checked from outside: an R3 stream with a leader, the writer's
      // value in it, and the read-only edge answering the update from its own replica.
      const nc = await admin();
      try {
        const info = await streamSettled(nc, "KV_cfg", Date.now() + 60_000);
        assert.equal(info.config.num_replicas, 3);
        assert.ok(info.cluster?.leader, "KV_cfg has a leader");
        assert.equal(info.cluster?.replicas?.length, 2, "and two replicas");
        assert.equal(info.config.max_msgs_per_subject, 10);
      } finally {
        await nc.close();
      }
      const r = await fetch(`http://127.0.0.1:${ports.get(8080)}/v1/buckets/cfg/keys/greeting`);
      assert.equal(await r.text(), '"hej"');
      assert.equal(r.headers.get("x-cache"), "hit", "the update came from the edge's replica");
      for (const [cmd, out] of run.background) {
        if (cmd.includes("deno task serve")) {
          assert.doesNotMatch(out(), /Permissions Violation|superseded|"level":"error"/, cmd);
        }
      }
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
