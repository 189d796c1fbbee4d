/**
 * docs/projections.md's worked example, run as written: the edge worker with
 * its embedded nats-server, `publish_orders.ts`, `deno task project` with
 * examples/orders/projection.ts, and the summary of order 1 through the edge
 * and through `deno task kv get`. The commands run from a directory that
 * mirrors the checkout (symbolic links to its files) so that `.data/` is the
 * test's own; the HTTP port comes from `PORT`. Then more orders are published
 * and the running projector must follow them, and stop cleanly.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { natsCliBinary } from "../../host/nats_binary.ts";
import {
  freePorts,
  remapPorts,
  runProcedure,
  sectionCommands,
  shCommands,
} from "../_doc_procedure.ts";
import { waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const read = (path: string) => Deno.readTextFileSync(`${ROOT}/${path}`);

/** The commands of projections.md's worked example (the page's only ```sh block). */
function pageCommands() {
  const page = read("docs/projections.md");
  return shCommands(page.slice(0, page.indexOf("\n## Writing one\n")));
}

Deno.test("examples/orders/README.md's 'Run it' shows projections.md's commands", () => {
  const readme = sectionCommands(
    read("examples/orders/README.md"),
    "## Run it (fresh machine, nothing else needed)",
  );
  const page = pageCommands();
  // Its first block; the second is the rebuild.
  assert.deepEqual(readme.slice(0, page.length), page);
});

Deno.test("projections.md's orders example runs as written: serve, publish, project, read", async () => {
  const commands = pageCommands();
  assert.ok(commands.length >= 5, `the page has its commands (${commands.length})`);
  const tmp = await Deno.makeTempDir({ prefix: "kvedge_orders_qs_" });
  try {
    // The checkout, without its .data/: `deno task` runs in this directory (it does not
    // resolve the deno.json link), so the embedded server's record is the test's own.
    const checkout = `${tmp}/checkout`;
    await Deno.mkdir(checkout);
    for await (const e of Deno.readDir(ROOT)) {
      if (e.name === ".data" || e.name === ".git") continue;
      await Deno.symlink(`${ROOT}/${e.name}`, `${checkout}/${e.name}`);
    }
    const port = String(
      (() => {
        const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
        const p = (l.addr as Deno.NetAddr).port;
        l.close();
        return p;
      })(),
    );
    const embedded = `${checkout}/.data/nats/embedded.json`;
    await using run = await runProcedure(commands, {
      cwd: checkout,
      tmp,
      env: { PORT: port, NATS_URL: "" },
      rewrite: (c) => c.replaceAll("127.0.0.1:8080", `127.0.0.1:${port}`),
      before: async (c, started) => {
        if (c.command.startsWith("deno run -A examples/orders/publish_orders.ts")) {
          // What the page says: wait for the worker's listening line. Before it, there is no
          // embedded server to find and the publisher would try nats://127.0.0.1:4222.
          const serve = [...started.background.values()][0]!;
          await waitFor(() => /"msg":"listening"/.test(serve()), {
            timeoutMs: 60_000,
            message: `deno task serve listens\n${serve()}`,
          });
        }
      },
    });
    // The publisher and the projector used the worker's embedded server.
    const { url } = JSON.parse(await Deno.readTextFile(embedded));
    assert.equal(
      JSON.parse(run.outputs[0]!).server,
      url,
      "publish_orders found the embedded server",
    );
    const summary =
      await (await fetch(`http://127.0.0.1:${port}/v1/buckets/order-summary/keys/order.1`))
        .json();
    assert.equal(summary.status, "shipped");
    assert.equal(summary.items, 7, "order 1's four item_added events, each applied once");

    // The projector keeps following: orders published now reach the edge.
    const more = await run.sh(
      "deno run -A examples/orders/publish_orders.ts --orders 5 --first-id 101 --seed 2",
    );
    assert.equal(more.code, 0, more.out);
    await waitFor(async () => {
      const r = await fetch(
        `http://127.0.0.1:${port}/v1/buckets/order-summary/keys?prefix=order.10`,
      );
      const keys: string[] = (await r.json()).keys ?? [];
      return keys.some((k) => /^order\.10[1-5]$/.test(k));
    }, {
      timeoutMs: 60_000,
      message: "orders published after the projector started reach the edge",
    });
    const projector = [...run.background].find(([k]) => k.startsWith("deno task project"))![1];
    assert.doesNotMatch(projector(), /"state":"failed"/);
  } finally {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test({
  name: "security.md's projector identity runs the orders projection as written",
  ignore: natsCliBinary() === undefined,
  async fn() {
    const commands = sectionCommands(read("docs/security.md"), "### A projector");
    assert.ok(commands.length >= 6, `the section has its commands (${commands.length})`);
    assert.ok(commands.some((c) => c.command.includes("NATS_USER=projector")));
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_projector_qs_" });
    try {
      const ports = freePorts([4222, 8222]);
      await Deno.writeTextFile(
        `${tmp}/edge.conf`,
        remapPorts(read("docs/quickstart/edge.conf"), ports)
          .replaceAll('".data/quickstart/', `"${tmp}/store/`),
      );
      await using run = await runProcedure(commands, {
        cwd: ROOT,
        tmp,
        rewrite: (c) => remapPorts(c.replaceAll("docs/quickstart/", `${tmp}/`), ports),
      });
      const projector = [...run.background].find(([k]) => k.includes("deno task project"))![1];
      assert.doesNotMatch(projector(), /Permissions Violation|"state":"failed"|"level":"error"/);
      assert.match(projector(), /"msg":"projection started"/);
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
