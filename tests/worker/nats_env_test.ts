/**
 * One environment → NATS connection options parser (host/nats_env.ts) for the
 * edge worker, the projector and the CLI (issue #11 item 13, issue #12):
 * credentials in `NATS_URL` are used as credentials and never printed.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import {
  describeNatsEnv,
  natsConnectionOptions,
  parseNatsEnv,
  redactSecrets,
} from "../../host/nats_env.ts";
import { parseEdgeConfig } from "../../host/edge_config.ts";
import { startServer, waitFor } from "../_setup.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CONFIG = `${ROOT}deno.json`;

Deno.test("parseNatsEnv reads one set of variables", async (t) => {
  await t.step("credentials in NATS_URL become credentials and leave the URL", () => {
    const n = parseNatsEnv({
      NATS_URL: "nats://ops:s%40cret@127.0.0.1:4222, tls://ops:s%40cret@b",
    });
    assert.deepEqual(n.servers, ["nats://127.0.0.1:4222", "tls://b"]);
    assert.deepEqual(n.auth, { kind: "user", user: "ops", pass: "s@cret" });
    const t1 = parseNatsEnv({ NATS_URL: "nats://t0ken@h:4222" });
    assert.deepEqual([t1.servers, t1.auth], [["nats://h:4222"], { kind: "token", token: "t0ken" }]);
    assert.ok(!JSON.stringify(describeNatsEnv(n)).includes("cret"));
  });

  await t.step("one set of names; the old ones still work, reported as deprecated", () => {
    const n = parseNatsEnv({ NATS_URL: "nats://h", NATS_USER: "u", NATS_PASSWORD: "p" });
    assert.deepEqual([n.auth, n.deprecated], [{ kind: "user", user: "u", pass: "p" }, []]);
    const old = parseNatsEnv({ NATS_URL: "nats://h", NATS_USER: "u", NATS_PASS: "p" });
    assert.deepEqual([old.auth, old.deprecated], [
      { kind: "user", user: "u", pass: "p" },
      ["NATS_PASS"],
    ]);
    const flags = parseNatsEnv({ NATS_URL: "nats://h", NATS_TOKEN: "env" }, {
      overrides: { server: "nats://x:1", token: "flag" },
    });
    assert.deepEqual([flags.servers, flags.auth], [["nats://x:1"], {
      kind: "token",
      token: "flag",
    }]);
    const edge = parseEdgeConfig({
      NATS_URL: "nats://u:p@h:4222",
      KVEDGE_BUCKETS: "a",
      NATS_TLS_CA: "/ca.pem",
    });
    assert.deepEqual([edge.natsServers, edge.natsAuth.kind, edge.natsTls], [
      ["nats://h:4222"],
      "user",
      { caFile: "/ca.pem" },
    ]);
  });

  await t.step("bad settings name the variable, never the value", () => {
    const bad: [Record<string, string>, RegExp][] = [
      [
        { NATS_URL: "nats://u:s3cret@h", NATS_TOKEN: "s3cret" },
        /only one way.*NATS_URL.*NATS_TOKEN/,
      ],
      [{ NATS_URL: "nats://u:s3cret@a,nats://v:s3cret@b" }, /same credentials/],
      [{ NATS_URL: "nats://u:s3cret@a b" }, /NATS_URL: every entry/],
      [{ NATS_URL: "nats://u:%zzs3cret@a" }, /percent-encoded/],
      [{ NATS_USER: "u" }, /NATS_USER and NATS_PASSWORD go together/],
      [{ NATS_NKEY: "s3cret" }, /NATS_NKEY: must be a user nkey seed/],
      [{ NATS_TLS_CERT: "c" }, /NATS_TLS_KEY/],
    ];
    for (const [env, pattern] of bad) {
      assert.throws(() => parseNatsEnv(env), (e: Error) => {
        assert.ok(e instanceof TypeError);
        assert.match(e.message, /^Cannot connect to NATS: /);
        assert.match(e.message, pattern, JSON.stringify(env));
        assert.ok(!e.message.includes("s3cret"), e.message);
        return true;
      });
    }
  });

  await t.step("connection options carry the credentials; redactSecrets hides them", async () => {
    const o = await natsConnectionOptions(parseNatsEnv({ NATS_URL: "nats://a:b@h:1" }));
    assert.deepEqual([o.servers, o.user, o.pass], [["nats://h:1"], "a", "b"]);
    assert.equal(
      redactSecrets("to nats://ops:pw@h:1,tls://tok@h2 failed"),
      "to nats://***@h:1,tls://***@h2 failed",
    );
  });
});

/** Runs a program to its end (or until `until` sees its output), returning its output. */
async function run(
  args: string[],
  env: Record<string, string>,
  until?: (out: string) => boolean,
): Promise<{ code: number | undefined; out: string }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, ...args],
    cwd: await Deno.makeTempDir({ prefix: "kvedge_natsenv_" }),
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const dec = new TextDecoder();
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const c of s) out += dec.decode(c, { stream: true });
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  if (until !== undefined) {
    try {
      await waitFor(() => until(out), { timeoutMs: 60_000, message: `output; got: ${out}` });
    } finally {
      try {
        child.kill("SIGKILL");
      } catch { /* exited */ }
    }
    await pumps;
    await child.status;
    return { code: undefined, out };
  }
  await pumps;
  return { code: (await child.status).code, out };
}

Deno.test("worker, projector and CLI use credentials from NATS_URL and never print them", async (t) => {
  const pass = "pw-" + crypto.randomUUID();
  await using srv = await startServer({
    config: `authorization { users: [ { user: alice, password: "${pass}" } ] }`,
  });
  const port = new URL(srv.url).port;
  const good = `nats://alice:${encodeURIComponent(pass)}@127.0.0.1:${port}`;
  const wrong = `nats://alice:${encodeURIComponent(pass)}x@127.0.0.1:${port}`;

  await t.step("edge worker: serves with URL credentials, prints none", async () => {
    const { out } = await run([`${ROOT}workers/edge.ts`], {
      NATS_URL: good,
      KVEDGE_BUCKETS: "envb",
      KVEDGE_CREATE_BUCKETS: "1",
      PORT: "0",
    }, (o) => o.includes('"msg":"listening"') || o.includes('"level":"error"'));
    assert.match(out, /"msg":"listening"/, out);
    assert.ok(!out.includes(pass), "the password is never printed");
    assert.match(out, /"msg":"starting"/);
  });

  await t.step("edge worker: wrong URL credentials fail without printing them", async () => {
    const { code, out } = await run([`${ROOT}workers/edge.ts`], {
      NATS_URL: wrong,
      KVEDGE_BUCKETS: "envb",
      PORT: "0",
    });
    assert.equal(code, 1, out);
    assert.ok(!out.includes(pass), out);
  });

  await t.step("projector: connects with URL credentials, prints none", async () => {
    const { out } = await run(
      [`${ROOT}workers/projector.ts`, `${ROOT}examples/orders/projection.ts`],
      { NATS_URL: good },
      (o) => o.includes('"msg":"connected"') || o.includes('"msg":"cannot connect"'),
    );
    assert.match(out, /"msg":"connected"/, out);
    assert.ok(!out.includes(pass), out);
    const bad = await run(
      [`${ROOT}workers/projector.ts`, `${ROOT}examples/orders/projection.ts`],
      { NATS_URL: wrong },
    );
    assert.equal(bad.code, 1, bad.out);
    assert.ok(!bad.out.includes(pass), bad.out);
  });

  await t.step("kv CLI: connects with URL credentials, errors print none", async () => {
    const ok = await run([`${ROOT}scripts/kv.ts`, "ls"], { NATS_URL: good });
    assert.equal(ok.code, 0, ok.out);
    assert.match(ok.out, /envb/);
    const bad = await run([`${ROOT}scripts/kv.ts`, "ls"], { NATS_URL: wrong });
    assert.equal(bad.code, 1, bad.out);
    assert.ok(!bad.out.includes(pass), bad.out);
    const flag = await run([`${ROOT}scripts/kv.ts`, "-s", wrong, "ls"], {});
    assert.equal(flag.code, 1, flag.out);
    assert.ok(!flag.out.includes(pass), flag.out);
    const env = await run([`${ROOT}scripts/kv.ts`, "ls"], {
      NATS_URL: `nats://127.0.0.1:${port}`,
      NATS_USER: "alice",
      NATS_PASS: pass,
    });
    assert.equal(env.code, 0, `the deprecated NATS_PASS still works: ${env.out}`);
  });
});
