/**
 * The restricted `edge` identity of docs/nats-edge.conf running what the docs
 * tell an operator to run: a cache over a connection opened elsewhere, the
 * edge worker (`deno task serve` with `NATS_INBOX_PREFIX`) and the fetch
 * handler of isolates. Each hands kvedge an already open connection, so the
 * watcher must take its delivery subject's prefix from that connection. A
 * refused delivery subject is a `PermissionError` that says what to fix.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import { openCache, PermissionError } from "../../mod.ts";
import { createFetchHandler } from "../../http.ts";
import { connectNats } from "../../src/connect.ts";
import { Watcher } from "../../src/watcher.ts";
import { connectTo, type ServerHandle, spawnEdge, startServer, waitFor } from "../_setup.ts";
import { docConfig, errorText, PASSWORDS } from "../_security.ts";

const EDGE = { user: "edge", pass: PASSWORDS.edge, inboxPrefix: "_INBOX_edge" };

/** A server running docs/nats-edge.conf with bucket `cfg` (made by `admin`) holding `a` = 1. */
async function edgeServer(): Promise<
  { srv: ServerHandle; put: (k: string, v: number) => Promise<number> } & AsyncDisposable
> {
  const srv = await startServer({ config: docConfig() });
  const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
  const kv = await new Kvm(admin).create("cfg", { history: 10 });
  await kv.put("a", "1");
  return {
    srv,
    put: (k, v) => kv.put(k, JSON.stringify(v)),
    async [Symbol.asyncDispose]() {
      await admin.close();
      await srv.stop();
    },
  };
}

Deno.test("a cache given the edge identity's open connection follows the bucket under that connection's inbox prefix", async () => {
  await using s = await edgeServer();
  const nc = await connectNats({ servers: s.srv.url, ...EDGE });
  try {
    await using cfg = await openCache<number>({
      connection: nc,
      bucket: "cfg",
      mode: "replica",
      local: { maxItems: 100 },
    });
    await cfg.ready({ timeoutMs: 20_000 });
    assert.equal(await cfg.get("a"), 1);
    await s.put("a", 2);
    await waitFor(() => cfg.peek("a") === 2, { message: "the update reached the edge" });
    assert.equal(cfg.status().lastError, undefined);
  } finally {
    await nc.close();
  }
});

Deno.test("a delivery subject the identity may not subscribe to fails the watcher with PermissionError, not 'superseded'", async () => {
  await using s = await edgeServer();
  const nc = await connectNats({ servers: s.srv.url, ...EDGE });
  const errors: string[] = [];
  const watcher = new Watcher({
    nc,
    jsm: await jetstreamManager(nc, { checkAPI: false }),
    bucket: "cfg",
    filter: ">",
    heartbeatMs: 5_000,
    // What the worker and the fetch handler used to do: the default prefix on an _INBOX_edge connection.
    inboxPrefix: "_INBOX",
    handler: {
      onChange() {},
      onStarted() {},
      onCaughtUp() {},
      onRestart() {},
      onStreamInfo() {},
      onError: (m: string) => errors.push(m),
      onResync: () => ({ kind: "snapshot" }),
    } as unknown as ConstructorParameters<typeof Watcher>[0]["handler"],
  });
  try {
    let err: unknown;
    await watcher.start({ kind: "snapshot" }, "test").catch((e) => err = e);
    assert.ok(err instanceof PermissionError, `expected PermissionError, got ${errorText(err)}`);
    assert.equal(err.code, "PERMISSION");
    assert.match(err.message, /_INBOX\.kvedge_/);
    assert.match(err.message, /inbox prefix/);
    assert.doesNotMatch(errorText(err), /superseded/);
  } finally {
    await watcher.close();
    await nc.close();
  }
});

Deno.test("the edge worker runs as the edge identity of docs/nats-edge.conf with NATS_INBOX_PREFIX", async () => {
  await using s = await edgeServer();
  const dir = await Deno.makeTempDir({ prefix: "kvedge_lp_" });
  try {
    await using edge = spawnEdge(dir, {
      NATS_URL: s.srv.url,
      NATS_USER: "edge",
      NATS_PASSWORD: PASSWORDS.edge,
      NATS_INBOX_PREFIX: "_INBOX_edge",
      KVEDGE_BUCKETS: "cfg:replica:ro",
      KVEDGE_WRITE_TOKEN: "w-" + crypto.randomUUID(),
    });
    const { url } = await edge.listening();
    const read = async () => {
      const res = await fetch(`${url}/v1/buckets/cfg/keys/a`);
      return res.ok ? await res.text() : (await res.body?.cancel(), `HTTP ${res.status}`);
    };
    assert.equal(await read(), "1");
    await s.put("a", 3);
    await waitFor(async () => (await read()) === "3", { message: "the update reached the worker" });
    edge.child.kill("SIGTERM");
    const status = await edge.exited;
    assert.equal(status.code, 0, edge.output());
    assert.doesNotMatch(edge.output(), /superseded|Permissions Violation/i);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the fetch handler runs as the edge identity and reports why an opening failed", async () => {
  await using s = await edgeServer();
  const failures: unknown[] = [];
  await using handler = createFetchHandler({
    servers: s.srv.url,
    connectOptions: EDGE,
    buckets: { cfg: { mode: "lazy", readOnly: true } },
    local: { maxItems: 100 },
    onOpenError: (err) => failures.push(err),
  });
  const res = await handler.fetch(new Request("http://edge/v1/buckets/cfg/keys/a"));
  assert.equal(res.status, 200, await res.clone().text());
  assert.equal(await res.text(), "1");
  await s.put("a", 4);
  await waitFor(async () => {
    const r = await handler.fetch(new Request("http://edge/v1/buckets/cfg/keys/a"));
    return (await r.text()) === "4";
  }, { message: "the update reached the handler" });
  assert.equal(failures.length, 0);
  assert.equal(handler.lastOpenError(), undefined);

  // A bucket the identity may not read: the answer names no cause, the callback does.
  await using denied = createFetchHandler({
    servers: s.srv.url,
    connectOptions: EDGE,
    buckets: { secret: { mode: "lazy", readOnly: true } },
    local: { maxItems: 100 },
    onOpenError: (err) => failures.push(err),
  });
  const refused = await denied.fetch(new Request("http://edge/v1/buckets/secret/keys/a"));
  await refused.body?.cancel();
  assert.ok(refused.status >= 400, `answered ${refused.status}`);
  assert.equal(failures.length, 1);
  assert.ok(failures[0] instanceof PermissionError, errorText(failures[0]));
  assert.equal(denied.lastOpenError(), failures[0]);
});
