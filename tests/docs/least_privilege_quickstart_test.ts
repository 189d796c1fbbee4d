/**
 * docs/security.md's least-privilege set-up, run as written: "Try it on one
 * machine" (the identities of nats-edge.conf, a writer edge with a write
 * token, a read-only edge, a refused anonymous write), and the NKey commands
 * it gives, whose key then runs the edge worker as a restricted identity.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { natsCliBinary } from "../../host/nats_binary.ts";
import {
  assertSameBody,
  freePorts,
  remapPorts,
  runProcedure,
  shCommands,
} from "../_doc_procedure.ts";
import { docConfig, PASSWORDS } from "../_security.ts";
import { connectTo, spawnEdge, startServer, waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url)).replace(/\/$/, "");
const read = (path: string) => Deno.readTextFileSync(`${ROOT}/${path}`);

/** The commands of security.md below `heading`, up to the next heading. */
function section(heading: string) {
  const page = read("docs/security.md");
  const at = page.indexOf(heading);
  assert.ok(at >= 0, `security.md has ${heading}`);
  const next = page.slice(at + heading.length).search(/\n#{2,3} /);
  return shCommands(page.slice(at, next < 0 ? undefined : at + heading.length + next));
}

Deno.test("quickstart/edge.conf is docs/nats-edge.conf below its host-specific section", () => {
  assertSameBody(read("docs/quickstart/edge.conf"), read("docs/nats-edge.conf"), "edge.conf");
});

Deno.test({
  name: "security.md's least-privilege set-up runs as written: writer with token, read-only edge",
  ignore: natsCliBinary() === undefined,
  async fn() {
    const commands = section("### Try it on one machine");
    assert.ok(commands.length >= 6, `the section has its commands (${commands.length})`);
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_lp_qs_" });
    try {
      const ports = freePorts([4222, 8222, 8080, 8081]);
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

Deno.test({
  name: "security.md's NKey commands make a key the edge worker runs with as the edge identity",
  ignore: natsCliBinary() === undefined,
  async fn() {
    const nkey = section("**Per-identity secrets.**").filter((c) =>
      c.command.startsWith("nats auth nkey")
    );
    assert.equal(nkey.length, 2, "security.md gives the two NKey commands");
    const tmp = await Deno.makeTempDir({ prefix: "kvedge_nkey_" });
    try {
      const run = async (command: string) => {
        const out = await new Deno.Command("bash", {
          args: ["-c", command.replace(/^nats /, `${natsCliBinary()} `)],
          cwd: tmp,
          env: { HOME: tmp },
          stdout: "piped",
          stderr: "piped",
        }).output();
        assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
        return new TextDecoder().decode(out.stdout).trim();
      };
      await run(nkey[0]!.command);
      const pub = await run(nkey[1]!.command);
      assert.match(pub, /^U[A-Z0-9]{55}$/, "the second command prints the public key");
      const seedFile = /--output (\S+)/.exec(nkey[0]!.command)![1]!;
      const seed = (await Deno.readTextFile(`${tmp}/${seedFile}`)).trim();
      assert.match(seed, /^SU/);
      // The user security.md describes: the edge's permissions, its NKey instead of a password.
      const grant = "permissions: $EDGE_CFG_PERMISSIONS }";
      const config = docConfig();
      assert.equal(config.split(grant).length, 2, "nats-edge.conf grants the edge once");
      await using srv = await startServer({
        config: config.replace(grant, `${grant}\n      { nkey: ${pub}, ${grant}`),
      });
      const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
      const kv = await new Kvm(admin).create("cfg", { history: 10 });
      await kv.put("greeting", '"hello"');
      await using edge = spawnEdge(tmp, {
        NATS_URL: srv.tcpUrl,
        NATS_NKEY: seed,
        NATS_INBOX_PREFIX: "_INBOX_edge",
        KVEDGE_BUCKETS: "cfg:replica:ro",
      });
      const { url } = await edge.listening();
      const get = () => fetch(`${url}/v1/buckets/cfg/keys/greeting`).then((r) => r.text());
      assert.equal(await get(), '"hello"');
      await kv.put("greeting", '"hej"');
      await waitFor(async () => (await get()) === '"hej"', { message: "the update reaches it" });
      await admin.close();
    } finally {
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
    }
  },
});
