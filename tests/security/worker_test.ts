/**
 * The edge worker (workers/edge.ts) authenticates to NATS from its
 * environment (password, NKey seed) and never prints a secret, neither in its
 * logs nor in its answers.
 *
 * @module
 */
import assert from "node:assert/strict";
import { nkeys } from "@nats-io/nats-core";
import { startServer, waitFor } from "../_setup.ts";
import { assertNoSecret } from "../_security.ts";

const WORKER = new URL("../../workers/edge.ts", import.meta.url).pathname;

/** Runs `deno task serve`'s worker with `env`; collects its output for the secret checks. */
function spawnWorker(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER],
    env: { PORT: "0", KVEDGE_LOG_REQUESTS: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
  };
  const exited = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => child.status);
  return {
    output: () => output,
    exited,
    /** The URL the worker listens on, once it says so. */
    listening: () =>
      waitFor(() => /"msg":"listening"[^\n]*"url":"(http:[^"]+)"/.exec(output)?.[1], {
        timeoutMs: 60_000,
        message: `the worker listens; output: ${output}`,
      }),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await exited;
    },
  };
}

Deno.test("the edge worker authenticates to NATS from its environment and never prints a secret", async (t) => {
  const pass = "pw-" + crypto.randomUUID();
  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  await using srv = await startServer({
    config:
      `authorization { users: [ { user: alice, password: "${pass}" }, { nkey: ${user.getPublicKey()} } ] }`,
  });
  const readToken = "read-" + crypto.randomUUID();
  const writeToken = "write-" + crypto.randomUUID();
  const secrets = [pass, seed, readToken, writeToken];
  const base = {
    NATS_URL: srv.url,
    KVEDGE_BUCKETS: "wsec",
    KVEDGE_CREATE_BUCKETS: "1",
    KVEDGE_READ_TOKEN: readToken,
    KVEDGE_WRITE_TOKEN: writeToken,
  };
  for (
    const [what, env] of [
      ["user and password", { NATS_USER: "alice", NATS_PASS: pass }],
      ["NKey seed", { NATS_NKEY_SEED: seed }],
    ] as const
  ) {
    await t.step(`${what}: serves, and its output holds no secret`, async () => {
      await using worker = spawnWorker({ ...base, ...env });
      const url = await worker.listening();
      const put = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        method: "PUT",
        body: "1",
        headers: { authorization: `Bearer ${writeToken}` },
      });
      assert.ok(put.status === 200 || put.status === 201, `PUT answered ${put.status}`);
      await put.body?.cancel();
      const bad = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        headers: { authorization: `Bearer ${readToken}x` },
      });
      assert.equal(bad.status, 401);
      assertNoSecret(await bad.text(), secrets, "a 401 body");
      const get = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        headers: { authorization: `Bearer ${readToken}` },
      });
      assert.equal(await get.text(), "1");
      for (const path of ["/metrics", "/v1/stats"]) {
        const res = await fetch(`${url}${path}`, {
          headers: { authorization: `Bearer ${readToken}` },
        });
        assertNoSecret(await res.text(), secrets, `GET ${path}`);
      }
      await worker[Symbol.asyncDispose]();
      assert.match(worker.output(), /"msg":"request"/, "requests are logged");
      assertNoSecret(worker.output(), secrets, "the worker's output");
    });
  }

  await t.step(
    "a wrong password: the worker exits with an error that names no secret",
    async () => {
      const wrong = "pw-" + crypto.randomUUID();
      await using worker = spawnWorker({ ...base, NATS_USER: "alice", NATS_PASS: wrong });
      const status = await worker.exited;
      assert.notEqual(status.code, 0);
      assert.match(worker.output(), /"level":"error"/);
      assertNoSecret(worker.output(), [...secrets, wrong], "the worker's output");
    },
  );
});
