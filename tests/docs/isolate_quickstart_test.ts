/**
 * docs/topologies.md "Try it on one machine" (WebSocket for isolates), run
 * as written: the combined server config of the quick start, the `admin`
 * making the bucket with natscli, examples/isolate/main.ts under `deno serve`
 * as the restricted `edge` identity, curl. Then the example's failure path:
 * a bucket the identity may not read answers an error and is logged.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { natsCliBinary } from "../../host/nats_binary.ts";
import { freePort } from "../../host/free_port.ts";
import { freePorts, remapPorts, runProcedure, shCommands } from "../_doc_procedure.ts";
import { waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const read = (path: string) => Deno.readTextFileSync(`${ROOT}/${path}`);
const body = (text: string) => text.slice(text.indexOf("# <<< host-specific\n") + 20);

/** The commands of topologies.md's "Try it on one machine". */
function tryItCommands() {
  const page = read("docs/topologies.md");
  const at = page.indexOf("### Try it on one machine");
  assert.ok(at >= 0, "topologies.md has its isolate quick start");
  return shCommands(page.slice(at, page.indexOf("\n### ", at + 10)));
}

Deno.test("quickstart/isolate.conf is nats-edge.conf then websocket.conf, WebSocket on loopback", () => {
  const text = read("docs/quickstart/isolate.conf");
  const edge = body(read("docs/nats-edge.conf"));
  const ws = body(read("docs/topologies/websocket.conf"));
  const rest = body(text);
  assert.ok(rest.startsWith(edge), "nats-edge.conf's body comes first, verbatim");
  assert.equal(
    rest.slice(edge.length).replace(/^\n# ---- docs\/topologies\/websocket.conf\n/, ""),
    ws.replace('listen: "0.0.0.0:8080"', 'listen: "127.0.0.1:8080"'),
    "then websocket.conf's body, its listen address on loopback",
  );
});

Deno.test("examples/isolate/main.ts documents the command topologies.md runs", () => {
  const serve = tryItCommands().find((c) => c.command.includes("deno serve"));
  assert.ok(serve, "topologies.md starts the example with deno serve");
  assert.ok(
    read("examples/isolate/main.ts").includes(` * ${serve.command}\n`),
    `the example's header shows: ${serve.command}`,
  );
  assert.match(serve.command, /--host 127\.0\.0\.1 /, "on loopback");
});

Deno.test({
  name: "topologies.md's isolate quick start runs as written, as the edge identity",
  ignore: natsCliBinary() === undefined,
  async fn() {
    const commands = tryItCommands();
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_isolate_qs_" });
    try {
      const ports = freePorts([4222, 8222, 8080, 8000]);
      const conf = read("docs/quickstart/isolate.conf");
      await Deno.writeTextFile(
        `${tmp}/isolate.conf`,
        remapPorts(conf, ports).replaceAll('".data/quickstart/', `"${tmp}/store/`),
      );
      await using run = await runProcedure(commands, {
        cwd: ROOT,
        tmp,
        rewrite: (c) => remapPorts(c.replaceAll("docs/quickstart/", `${tmp}/`), ports),
      });
      const exampleLog = [...run.background].find(([k]) => k.includes("deno serve"))![1]();
      assert.doesNotMatch(exampleLog, /cannot open|NotCapable/);

      // The old default bucket, which the edge identity may not read: an error, and a log line.
      const port = freePort();
      const serve = remapPorts(
        commands.find((c) => c.command.includes("deno serve"))!.command,
        ports,
      ).replace("KVEDGE_BUCKETS=cfg", "KVEDGE_BUCKETS=config")
        .replace(`--port ${ports.get(8000)}`, `--port ${port}`);
      const tmp2 = `${tmp}/second`;
      await Deno.mkdir(tmp2);
      let log = "";
      {
        await using second = await runProcedure([{ command: serve, background: true }], {
          cwd: ROOT,
          tmp: tmp2,
          rewrite: (c) => c,
        });
        const res = await waitFor(
          () => fetch(`http://127.0.0.1:${port}/v1/buckets/config/keys/greeting`),
          { timeoutMs: 60_000, message: "the example answers" },
        );
        await res.body?.cancel();
        assert.equal(res.status, 403, "the identity may not read bucket config");
        log = await waitFor(() => {
          const text = [...second.background.values()][0]!();
          return text.includes("cannot open") ? text : undefined;
        }, { timeoutMs: 10_000, message: "the example logs why" });
      }
      assert.match(log, /"msg":"cannot open the caches"/);
      assert.match(log, /PermissionError/);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
