/**
 * `KVEDGE_WORKERS=2` (docs/operations.md, "More than one core"): two
 * isolates serve one port, each with its own NATS connection and cache; a
 * write through one reaches the other's cache; SIGTERM drains both and the
 * worker exits 0, its embedded nats-server stopped with it.
 *
 * @module
 */
import assert from "node:assert/strict";
import { parseEdgeConfig } from "../../host/edge_config.ts";
import { spawnEdge, startServer, uniqueBucket, waitFor } from "../_setup.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const ISOLATE = "kvedge-isolate";

/** One request on a connection of its own (a pooled one would always reach the same isolate). */
async function once(url: string, init: RequestInit = {}) {
  using client = Deno.createHttpClient({});
  const res = await fetch(url, { ...init, client });
  const body = await res.text();
  return {
    status: res.status,
    isolate: res.headers.get(ISOLATE),
    cache: res.headers.get("x-cache"),
    body,
  };
}

/** Requests `url` on fresh connections until `isolate` answers and `accept` holds. */
function fromIsolate(
  url: string,
  isolate: string,
  accept: (r: Awaited<ReturnType<typeof once>>) => boolean,
  message: string,
) {
  return waitFor(async () => {
    const r = await once(url);
    return r.isolate === isolate && accept(r) ? r : undefined;
  }, { timeoutMs: 20_000, intervalMs: 10, message });
}

Deno.test("KVEDGE_WORKERS=2: two isolates answer on one port, and a write through one reaches the other's cache", async (t) => {
  await using srv = await startServer();
  const bucket = uniqueBucket("iso");
  const token = "w-" + crypto.randomUUID();
  await using edge = spawnEdge(ROOT, {
    NATS_URL: srv.tcpUrl,
    KVEDGE_BUCKETS: bucket,
    KVEDGE_CREATE_BUCKETS: "1",
    KVEDGE_WRITE_TOKEN: token,
    KVEDGE_WORKERS: "2",
  });
  const { url } = await edge.listening();
  const keyUrl = `${url}/v1/buckets/${bucket}/keys/k`;

  await t.step("one listening line names two workers; each isolate logs as itself", () => {
    const listening = edge.lines.filter((l) => l.msg === "listening");
    assert.equal(listening.length, 1, edge.output());
    assert.equal(listening[0]!.workers, 2);
    const synced = edge.lines.filter((l) => l.msg === "cache synced").map((l) => l.isolate);
    assert.deepEqual(synced.sort(), [1, 2], edge.output());
  });

  await t.step("connections reach both isolates", async () => {
    const seen = new Map<string, number>();
    await waitFor(async () => {
      const r = await once(`${url}/healthz`);
      assert.equal(r.status, 200);
      seen.set(String(r.isolate), (seen.get(String(r.isolate)) ?? 0) + 1);
      return seen.has("1") && seen.has("2");
    }, { timeoutMs: 20_000, intervalMs: 0, message: "both isolates answer" });
    assert.deepEqual([...seen.keys()].sort(), ["1", "2"]);
  });

  await t.step("a write through one isolate reaches the cache of the other", async () => {
    const put = (value: unknown) =>
      once(keyUrl, {
        method: "PUT",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(value),
      });
    const first = await put({ v: 1 });
    assert.equal(first.status, 201, first.body);
    // Both caches hold v1: each isolate has answered it once.
    for (const isolate of ["1", "2"]) {
      await fromIsolate(
        keyUrl,
        isolate,
        (r) => r.body === '{"v":1}',
        `isolate ${isolate} reads v1`,
      );
    }
    const second = await put({ v: 2 });
    assert.equal(second.status, 200, second.body);
    const writer = second.isolate;
    const reader = writer === "1" ? "2" : "1";
    // The reader held v1; only its watcher can bring v2 (a hit, not a miss).
    const r = await fromIsolate(
      keyUrl,
      reader,
      (r) => r.body === '{"v":2}',
      `isolate ${reader} reads v2 written through isolate ${writer}`,
    );
    assert.equal(r.cache, "hit");
  });
});

Deno.test("KVEDGE_WORKERS=2: SIGTERM drains every isolate, stops the embedded nats-server and exits 0", async () => {
  const dataDir = await Deno.makeTempDir({ prefix: "kvedge-iso-" });
  let natsPid: number | undefined;
  try {
    await using edge = spawnEdge(ROOT, { KVEDGE_DATA_DIR: dataDir, KVEDGE_WORKERS: "2" });
    const { url } = await edge.listening();
    natsPid = Number(edge.lines.find((l) => l.msg === "embedded nats-server started")?.pid);
    assert.ok(natsPid > 0, edge.output());
    assert.equal(
      edge.lines.filter((l) => l.msg === "embedded nats-server started").length,
      1,
      "one embedded server for both isolates",
    );
    const res = await fetch(`${url}/v1/buckets/demo/keys/absent`);
    await res.body?.cancel();
    assert.equal(res.status, 404);

    edge.child.kill("SIGTERM");
    const status = await edge.exited;
    const msgs = edge.lines.map((l) => l.msg);
    assert.equal(status.code, 0, edge.output());
    assert.ok(!msgs.includes("forced exit"), edge.output());
    const stopped = edge.lines.filter((l) => l.msg === "isolate stopped").map((l) => l.isolate);
    assert.deepEqual(stopped.sort(), [1, 2], edge.output());
    assert.ok(
      msgs.lastIndexOf("stopped") > msgs.lastIndexOf("isolate stopped"),
      "the worker stops after its isolates",
    );
    assert.equal(alive(natsPid), false, `the embedded nats-server (pid ${natsPid}) is gone`);
  } finally {
    // Whatever failed above, no nats-server this test caused outlives it.
    if (natsPid !== undefined && alive(natsPid)) Deno.kill(natsPid, "SIGKILL");
    await Deno.remove(dataDir, { recursive: true }).catch(() => {});
  }
});

/** Whether process `pid` is running (Linux: not a zombie either). */
function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("KVEDGE_WORKERS: default 1, auto is the cores the runtime sees, and it needs the gate", () => {
  assert.equal(parseEdgeConfig({}).workers, 1);
  assert.equal(parseEdgeConfig({ KVEDGE_WORKERS: "3" }).workers, 3);
  assert.equal(parseEdgeConfig({ KVEDGE_WORKERS: "auto" }).workers, navigator.hardwareConcurrency);
  for (const bad of ["0", "-1", "two", "1.5", "257"]) {
    assert.throws(() => parseEdgeConfig({ KVEDGE_WORKERS: bad }), /KVEDGE_WORKERS: must be auto/);
  }
  assert.throws(
    () => parseEdgeConfig({ KVEDGE_WORKERS: "2", KVEDGE_CONNECTION_GATE: "0" }),
    /needs the connection gate/,
  );
  assert.equal(parseEdgeConfig({ KVEDGE_WORKERS: "1", KVEDGE_CONNECTION_GATE: "0" }).workers, 1);
});
