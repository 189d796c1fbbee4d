import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { openCache, openReadonlyCache } from "../../mod.ts";
import { connectNats, transportOf } from "../../src/connect.ts";
import { freePort } from "../../host/free_port.ts";
import { connectTo, spawnEdge, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const WS_CONF = new URL("../../docs/topologies/websocket.conf", import.meta.url);
const EDGE_CONF = new URL("../../docs/nats-edge.conf", import.meta.url);
const WORKER = fileURLToPath(new URL("../../workers/edge.ts", import.meta.url));
/** Test-only passwords whose bcrypt hashes are in docs/nats-edge.conf (as in security_test.ts). */
const PASSWORDS = { admin: "kvedge-admin-test-only", edge: "kvedge-edge-test-only" } as const;
const HOST_SECTION = /# >>> host-specific[\s\S]*?# <<< host-specific\n/;

Deno.test("the transport follows the URLs; a mixed list is a TypeError before any I/O", async () => {
  assert.equal(transportOf("nats://a:4222,tls://b:4222"), "tcp");
  assert.equal(transportOf(["ws://a:8080", "WSS://b"]), "websocket");
  await assert.rejects(
    openCache({
      servers: ["ws://127.0.0.1:1", "nats://127.0.0.1:2"],
      bucket: "b",
      local: { maxItems: 1 },
    }),
    (e: unknown) =>
      e instanceof TypeError &&
      e.message.startsWith('Cannot connect to NATS: "servers" mixes WebSocket (ws://127.0.0.1:1)'),
  );
});

Deno.test(
  "a WebSocket connection is refused while a TCP one is open (nats.js has one transport per process)",
  async () => {
    await using srv = await startServer({ websocket: true });
    const tcp = await connectTo(srv.tcpUrl);
    try {
      await assert.rejects(
        connectNats({ servers: [srv.wsUrl!] }),
        (e: unknown) => e instanceof TypeError && /1 TCP connection\(s\) are open/.test(e.message),
      );
    } finally {
      await tcp.close();
    }
    // Once the TCP connection is closed, WebSocket is free to use.
    const ws = await connectNats({ servers: [srv.wsUrl!] });
    assert.ok(ws.info?.server_name);
    await ws.close();
  },
);

Deno.test("docs/topologies/websocket.conf with docs/nats-edge.conf: the edge identity over WebSocket", async () => {
  const wsPort = freePort();
  const conf = Deno.readTextFileSync(WS_CONF);
  assert.match(conf, HOST_SECTION, "docs/topologies/websocket.conf lost its host-specific markers");
  const listen = 'listen: "0.0.0.0:8080"';
  assert.ok(conf.includes(listen), "docs/topologies/websocket.conf listens on 0.0.0.0:8080");
  const edge = Deno.readTextFileSync(EDGE_CONF);
  assert.match(edge, HOST_SECTION);
  // The file brings its own websocket block (no generated one).
  await using _srv = await startServer({
    websocket: false,
    config: edge.replace(HOST_SECTION, "") + "\n" +
      conf.replace(HOST_SECTION, "").replace(listen, `listen: "127.0.0.1:${wsPort}"`),
  });
  const url = `ws://127.0.0.1:${wsPort}`;
  const admin = await connectNats({ servers: [url], user: "admin", pass: PASSWORDS.admin });
  try {
    const kv = await new Kvm(admin).create("cfg", { history: 5 });
    await kv.put("feature.x", JSON.stringify(true));
    await using cfg = await openReadonlyCache<boolean>({
      servers: url,
      bucket: "cfg",
      mode: "replica",
      local: { maxItems: 100 },
      connectOptions: { user: "edge", pass: PASSWORDS.edge, inboxPrefix: "_INBOX_edge" },
    });
    await cfg.ready({ timeoutMs: 30_000 });
    assert.equal(await cfg.get("feature.x"), true);
    await kv.put("feature.x", JSON.stringify(false));
    await waitFor(() => cfg.peek("feature.x") === false, { message: "update over WebSocket" });
  } finally {
    await admin.close();
  }
});

/** Runs workers/edge.ts (as `deno task serve` does) in `cwd` until its `listening` line. */
async function startWorker(env: Record<string, string>, cwd: string) {
  const edge = spawnEdge(cwd, env);
  try {
    const { line } = await edge.listening();
    return { listening: line, [Symbol.asyncDispose]: () => edge[Symbol.asyncDispose]() };
  } catch (err) {
    await edge[Symbol.asyncDispose]();
    throw err;
  }
}

Deno.test("deno task serve over WebSocket: NATS_URL=ws://… and the embedded server's ws URL", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_ws_edge_" });
  try {
    await t.step("NATS_URL with a ws:// URL connects over WebSocket", async () => {
      await using srv = await startServer({ websocket: true });
      const bucket = uniqueBucket();
      await using worker = await startWorker({
        NATS_URL: srv.wsUrl!,
        KVEDGE_BUCKETS: `${bucket}:lazy`,
        KVEDGE_CREATE_BUCKETS: "1",
      }, dir);
      assert.deepEqual(worker.listening.nats, [srv.wsUrl]);
      const nc = await connectTo(srv.wsUrl!);
      try {
        await (await new Kvm(nc).open(bucket)).put("a", JSON.stringify("via ws"));
      } finally {
        await nc.close();
      }
      const res = await fetch(`${worker.listening.url}/v1/buckets/${bucket}/keys/a`);
      assert.equal(await res.json(), "via ws");
    });

    await t.step("a mixed NATS_URL is a configuration error (exit 2)", async () => {
      const out = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--no-check", WORKER],
        cwd: dir,
        env: { NATS_URL: "ws://127.0.0.1:1,nats://127.0.0.1:2", KVEDGE_BUCKETS: "a" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 2);
      assert.match(new TextDecoder().decode(out.stderr), /mixes WebSocket/);
    });

    await t.step("the embedded server opens a WebSocket port and logs its URL", async () => {
      const bucket = uniqueBucket();
      await using worker = await startWorker({
        NATS_URL: "",
        KVEDGE_BUCKETS: `${bucket}:lazy`,
        KVEDGE_DATA_DIR: `${dir}/data`,
      }, dir);
      const natsWs = String(worker.listening.natsWs);
      assert.match(natsWs, /^ws:\/\/127\.0\.0\.1:\d+$/);
      // A WebSocket client (as an isolate would be) reads and writes through it.
      await using cache = await openCache<string>({
        servers: natsWs,
        bucket,
        local: { maxItems: 10 },
      });
      await cache.set("k", "from ws");
      const res = await fetch(`${worker.listening.url}/v1/buckets/${bucket}/keys/k`);
      assert.equal(await res.json(), "from ws");
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a cache over WebSocket works without the Deno global (Workers, browsers)", async () => {
  await using srv = await startServer({ websocket: true });
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--no-check",
      fileURLToPath(new URL("../_no_deno_child.ts", import.meta.url)),
      srv.wsUrl!,
      uniqueBucket(),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success && text.trim().endsWith("ok"), text.slice(-3000));
});
