/**
 * kvedge inside Cloudflare's runtime: the real workerd binary from npm
 * (`workerd` in deno.json, installed by `deno install` / scripts/setup.sh)
 * serves tests/runtimes/_workerd_worker.ts, bundled for the browser platform,
 * over a nats-server's WebSocket port on loopback. The plain isolate handler
 * and the Durable Object are driven with fetch; workerd is stopped by PID
 * (testing/workerd.ts, shared with the benchmark).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { Kvm } from "@nats-io/kv";
import { freePort } from "../../host/free_port.ts";
import { connectTo, type ServerHandle, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import {
  bundleWorker as bundle,
  startWorkerd,
  workerdBinary,
  workerdConfig,
  type WorkerdConfigOptions,
} from "../../testing/workerd.ts";

const WORKER = fileURLToPath(new URL("./_workerd_worker.ts", import.meta.url));
const EXAMPLE = fileURLToPath(new URL("../../examples/workerd/", import.meta.url));
const TOKEN = "workerd-write-token";
/** A compatibility date from before node:crypto loaded without `nodejs_compat`. */
const OLD_DATE = "2024-09-23";

/** The test's workerd config: its Durable Object namespace and write token. */
function capnp(o: Omit<WorkerdConfigOptions, "uniqueKey" | "writeToken">): string {
  return workerdConfig({ ...o, uniqueKey: "kvedge-workerd-test", writeToken: TOKEN });
}

interface Connz {
  connections: { name?: string; last_activity: string }[];
}

async function connectionsNamed(srv: ServerHandle, name: string) {
  const res = await fetch(`http://127.0.0.1:${srv.monitorPort}/connz`);
  return (await res.json() as Connz).connections.filter((c) => c.name === name);
}

async function get(url: string): Promise<{ status: number; cache: string | null; body: unknown }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
  const text = await res.text();
  return {
    status: res.status,
    cache: res.headers.get("x-cache"),
    body: text === "" ? undefined : JSON.parse(text),
  };
}

async function put(url: string, value: unknown): Promise<{ status: number; body: unknown }> {
  const res = await fetch(url, {
    method: "PUT",
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(value),
    signal: AbortSignal.timeout(30_000),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test("kvedge inside the workerd binary", async (t) => {
  const { path: binary, compatibilityDate } = await workerdBinary();
  await using srv = await startServer({ websocket: true });
  const writer = await connectTo(srv.tcpUrl);
  const dir = await Deno.makeTempDir({ prefix: "kvedge-workerd-" });
  try {
    const bucket = uniqueBucket("wd");
    const kv = await new Kvm(writer).create(bucket, { history: 5 });
    for (let i = 0; i < 20; i++) await kv.put(`k.${i}`, JSON.stringify({ n: i }));

    await bundle(WORKER, `${dir}/worker.js`);
    const config = `${dir}/config.capnp`;
    await Deno.writeTextFile(
      config,
      capnp({ port: freePort(), natsUrl: srv.wsUrl!, bucket, compatibilityDate }),
    );
    await using workerd = await startWorkerd(dir, binary, config);
    const isolate = `${workerd.url}/v1/buckets/${bucket}/keys`;
    const object = `${workerd.url}/do/v1/buckets/${bucket}/keys`;

    await t.step(
      "the plain isolate handler answers every request, not only the first",
      async () => {
        // The first request opens the isolate's connection; workerd binds it to that request, so
        // concurrent first requests (each in its own request context) cannot share it either.
        const first = await Promise.all(Array.from({ length: 5 }, () => get(`${isolate}/k.0`)));
        for (const res of first) assert.deepEqual([res.status, res.body], [200, { n: 0 }]);
        // Every later one may not use it: misses and writes answer at once instead of timing out.
        for (let i = 1; i < 20; i++) {
          const res = await get(`${isolate}/k.${i}`);
          assert.equal(res.status, 200, `request ${i}: ${JSON.stringify(res.body)}`);
          assert.deepEqual(res.body, { n: i });
        }
        assert.equal((await get(`${isolate}/absent`)).status, 404);
        const written = await put(`${isolate}/w.isolate`, { by: "isolate" });
        assert.equal(written.status, 201, JSON.stringify(written.body));
        assert.deepEqual(await kv.get("w.isolate").then((e) => e?.json()), { by: "isolate" });
        assert.deepEqual((await get(`${isolate}/w.isolate`)).body, { by: "isolate" });
        // Per-request connections are closed with their answer; the first one, which only its
        // own request may close, is closed on its next message (this put reaches its watcher).
        await kv.put("k.0", JSON.stringify({ n: 100 }));
        await waitFor(async () => (await connectionsNamed(srv, "workerd-isolate")).length === 0, {
          timeoutMs: 15_000,
          message: "the isolate's connections are all closed",
        });
        assert.deepEqual((await get(`${isolate}/k.0`)).body, { n: 100 });
      },
    );

    await t.step(
      "a watch stream streams pushed changes from the isolate and the object",
      async () => {
        // In the isolate a stream holds a connection of its own until the client leaves; the
        // object's streams share its one connection, which stays.
        const handlers: [string, string, number][] = [
          [isolate, "workerd-isolate", 0],
          [object, "workerd-object", 1],
        ];
        for (const [base, name, remaining] of handlers) {
          const watch = base.replace(/\/keys$/, "/watch");
          const res = await fetch(`${watch}?prefix=sse.`, { signal: AbortSignal.timeout(30_000) });
          assert.equal(res.status, 200);
          assert.match(res.headers.get("content-type") ?? "", /^text\/event-stream/);
          const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
          let seen = "";
          // Written until the stream shows it: the watch may start after the first put.
          await waitFor(async () => {
            await kv.put(`sse.${name}`, JSON.stringify({ name }));
            const { value, done } = await reader.read();
            assert.equal(done, false, `the stream ended: ${seen}`);
            seen += value;
            return seen.includes(`"name":"${name}"`);
          }, { timeoutMs: 15_000, message: `the watch of ${name} streams a put` });
          await reader.cancel();
          await waitFor(async () => (await connectionsNamed(srv, name)).length === remaining, {
            timeoutMs: 15_000,
            message: `${remaining} connection(s) of ${name} once the client left`,
          });
        }
      },
    );

    await t.step("the Durable Object serves misses, hits, writes and pushed updates", async () => {
      assert.deepEqual(await get(`${object}/k.1`), { status: 200, cache: "miss", body: { n: 1 } });
      assert.deepEqual(await get(`${object}/k.1`), { status: 200, cache: "hit", body: { n: 1 } });
      for (let i = 2; i < 20; i++) {
        assert.deepEqual(await get(`${object}/k.${i}`), {
          status: 200,
          cache: "miss",
          body: { n: i },
        });
      }
      for (let i = 1; i < 20; i++) {
        assert.deepEqual(await get(`${object}/k.${i}`), {
          status: 200,
          cache: "hit",
          body: { n: i },
        });
      }
      const written = await put(`${object}/w.object`, { by: "object" });
      assert.equal(written.status, 201, JSON.stringify(written.body));
      assert.deepEqual(await kv.get("w.object").then((e) => e?.json()), { by: "object" });
      await kv.put("k.1", JSON.stringify({ n: 101 }));
      await waitFor(async () => {
        const res = await get(`${object}/k.1`);
        return res.cache === "hit" && (res.body as { n: number }).n === 101;
      }, { timeoutMs: 10_000, message: "the put is pushed to the object's cache" });
      assert.equal(
        (await connectionsNamed(srv, "workerd-object")).length,
        1,
        "one connection for all of the object's requests",
      );
    });

    await t.step("the Durable Object still serves after an idle gap", async () => {
      const [before] = await connectionsNamed(srv, "workerd-object");
      assert.ok(before);
      // Idle: no request reaches workerd while a write is pushed to the object, and then until
      // its connection shows traffic of its own (a keep-alive ping, every 10 s).
      const activity = async () =>
        Date.parse((await connectionsNamed(srv, "workerd-object"))[0]?.last_activity ?? "");
      await kv.put("k.2", JSON.stringify({ n: 102 }));
      await waitFor(async () => await activity() > Date.parse(before.last_activity), {
        timeoutMs: 10_000,
        message: "the write is pushed to the idle object",
      });
      const pushed = await activity();
      await waitFor(async () => await activity() > pushed, {
        timeoutMs: 30_000,
        message: "the idle object's connection shows keep-alive traffic",
      });
      assert.deepEqual(await get(`${object}/k.2`), { status: 200, cache: "hit", body: { n: 102 } });
      assert.deepEqual(await get(`${object}/k.19`), { status: 200, cache: "hit", body: { n: 19 } });
      await kv.put("late", JSON.stringify({ late: true }));
      assert.deepEqual(await get(`${object}/late`), {
        status: 200,
        cache: "miss",
        body: { late: true },
      });
      assert.equal((await put(`${object}/w.late`, { late: true })).status, 201);
      assert.equal((await connectionsNamed(srv, "workerd-object")).length, 1);
    });

    await t.step(
      "the Durable Object serves stale through a kill -9 of NATS and fresh after its restart",
      async () => {
        assert.equal((await get(`${object}/k.5`)).cache, "hit");
        await srv.kill();
        await waitFor(async () => (await get(`${object}/k.5`)).cache === "stale", {
          timeoutMs: 15_000,
          message: "the object marks its resident key stale",
        });
        assert.deepEqual(await get(`${object}/k.5`), {
          status: 200,
          cache: "stale",
          body: { n: 5 },
        });
        assert.equal((await get(`${object}/never.read`)).status, 503);
        await srv.restart();
        await waitFor(async () => (await get(`${object}/k.5`)).cache === "hit", {
          timeoutMs: 30_000,
          message: "the object reconnects and serves fresh again",
        });
        await waitFor(() => kv.put("k.5", JSON.stringify({ n: 105 })), {
          timeoutMs: 30_000,
          message: "the writer reconnects and writes",
        });
        await waitFor(async () => {
          const res = await get(`${object}/k.5`);
          return (res.body as { n: number } | undefined)?.n === 105;
        }, { timeoutMs: 15_000, message: "a put after the restart reaches the object" });
        assert.deepEqual(await get(`${object}/k.6`), {
          status: 200,
          cache: "hit",
          body: { n: 6 },
        });
        assert.equal((await connectionsNamed(srv, "workerd-object")).length, 1);
      },
    );

    await t.step(
      "an old compatibility date without nodejs_compat, a plain object class: reads and writes",
      async () => {
        // node:crypto loads without the flag only from 2026-08-04: the facade must not need it.
        const oldConfig = `${dir}/old.capnp`;
        await Deno.writeTextFile(
          oldConfig,
          capnp({
            port: freePort(),
            natsUrl: srv.wsUrl!,
            bucket,
            compatibilityDate: OLD_DATE,
            objectClass: "KvedgePlain",
          }),
        );
        await using old = await startWorkerd(dir, binary, oldConfig);
        const keys = `${old.url}/do/v1/buckets/${bucket}/keys`;
        assert.deepEqual(await get(`${keys}/k.3`), { status: 200, cache: "miss", body: { n: 3 } });
        assert.equal((await put(`${keys}/w.old`, { old: true })).status, 201);
        assert.deepEqual(await get(`${old.url}/v1/buckets/${bucket}/keys/w.old`), {
          status: 200,
          cache: "miss",
          body: { old: true },
        });
      },
    );

    await t.step(
      "examples/workerd runs as documented: its config, its Durable Object",
      async () => {
        const example = `${dir}/example`;
        await bundle(`${EXAMPLE}worker.ts`, `${example}/dist/worker.js`);
        const port = freePort();
        const config = (await Deno.readTextFile(`${EXAMPLE}config.capnp`))
          .replace('"127.0.0.1:8787"', `"127.0.0.1:${port}"`)
          .replace('"ws://127.0.0.1:8080"', `"${srv.wsUrl}"`)
          .replace('text = "config"', `text = "${bucket}"`);
        assert.match(config, new RegExp(`127\\.0\\.0\\.1:${port}.*${bucket}`, "s"));
        await Deno.writeTextFile(`${example}/config.capnp`, config);
        await using ex = await startWorkerd(example, binary, `${example}/config.capnp`);
        const keys = `${ex.url}/v1/buckets/${bucket}/keys`;
        assert.deepEqual(await get(`${keys}/k.4`), { status: 200, cache: "miss", body: { n: 4 } });
        assert.deepEqual(await get(`${keys}/k.4`), { status: 200, cache: "hit", body: { n: 4 } });
        // No write token in the example's bindings: its buckets are read-only.
        assert.equal((await put(`${keys}/w.example`, {})).status, 403);
        assert.equal(await kv.get("w.example"), null);
      },
    );

    await t.step("workerd logged no uncaught error and no warning", () => {
      assert.doesNotMatch(workerd.log(), /Uncaught|uncaught exception|warning/i, workerd.log());
    });
  } finally {
    await writer.close();
    await Deno.remove(dir, { recursive: true });
  }
});
