import assert from "node:assert/strict";
import { UnavailableError } from "../../src/errors.ts";
import { freePort } from "../../host/free_port.ts";
import { startNatsServer } from "../../host/nats_server.ts";

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_ns_test_" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("startNatsServer() rejects bad options before spawning anything", async () => {
  await assert.rejects(() => startNatsServer({ storeDir: "" }), TypeError);
  await assert.rejects(
    () => startNatsServer({ storeDir: "/tmp/x", port: 70_000 }),
    (err: Error) => err instanceof RangeError && /^Cannot start nats-server/.test(err.message),
  );
  await assert.rejects(
    () => startNatsServer({ storeDir: "/tmp/x", readyTimeoutMs: 0 }),
    RangeError,
  );
});

Deno.test("startNatsServer() reports a port that is taken, with the server's log", async () => {
  await withTempDir(async (dir) => {
    const port = freePort();
    using _listener = Deno.listen({ hostname: "127.0.0.1", port });
    await assert.rejects(
      () => startNatsServer({ storeDir: dir, port }),
      (err: Error) => err instanceof UnavailableError && /address already in use/.test(err.message),
    );
  });
});

Deno.test("startNatsServer() reports a config error that never reaches the log", async () => {
  await withTempDir(async (dir) => {
    await assert.rejects(
      () => startNatsServer({ storeDir: dir, configText: "accounts { broken" }),
      (err: Error) =>
        err instanceof UnavailableError && /exited with code 1[^]*Parse error/.test(err.message),
    );
  });
});

Deno.test("startNatsServer() stops waiting when its signal is aborted", async () => {
  await withTempDir(async (dir) => {
    const controller = new AbortController();
    controller.abort(new Error("test is over"));
    await assert.rejects(
      () => startNatsServer({ storeDir: dir, signal: controller.signal }),
      /aborted/,
    );
  });
});

Deno.test("startNatsServer() writes its config, log and store under storeDir", async () => {
  await withTempDir(async (dir) => {
    await using server = await startNatsServer({ storeDir: dir, serverName: "solo" });
    assert.equal(server.serverName, "solo");
    assert.equal(server.configFile, `${dir}/nats-server.conf`);
    assert.match(await Deno.readTextFile(server.configFile), /server_name: "solo"/);
    assert.match(await server.logTail(), /Server is ready/);
    assert.ok((await Deno.stat(`${dir}/jetstream`)).isDirectory);
    const varz = await fetch(`${server.monitorUrl}/varz`).then((r) => r.json());
    assert.equal(varz.port, server.port);
    assert.equal(varz.server_name, "solo");
  });
});
