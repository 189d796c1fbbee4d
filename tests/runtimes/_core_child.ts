/**
 * kvedge's core, run by another runtime (Bun, Node ≥ 22) from the sources:
 * no Deno API here. `tests/runtimes/runtimes_test.ts` runs it and judges what
 * it prints: one JSON object per line, `{ "step": name, ...observations }`,
 * then `{ "step": "done" }`. A step that throws prints `{ "step", "error" }`
 * and the child goes on with the next one.
 *
 * Usage: <runtime> tests/runtimes/_core_child.ts <scenario> <nats url> <ws url> <bucket> <dir>
 *
 * Scenarios (one process holds one transport, so TCP and WebSocket are two runs):
 * - `core`: over TCP, open, write, miss, hit, push, snapshot warm start, a
 *   resync (the bucket recreated), and the fetch handler under the runtime's
 *   own HTTP server (`Bun.serve`, else `node:http`).
 * - `websocket`: over ws://, open, write, read, push.
 * - `runtime-errors`: what a runtime without `Promise.withResolvers` (Node < 22)
 *   or without a global `WebSocket` gets at open, and that the process can
 *   still open a cache afterwards.
 */
import { argv, exit, versions } from "node:process";
import { stat } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { Kvm } from "@nats-io/kv";
import { type CacheEvent, openCache } from "../../mod.ts";
import { createFetchHandler } from "../../http.ts";
import { connectNats } from "../../src/connect.ts";

const [scenario, natsUrl, wsUrl, bucket, dir] = argv.slice(2) as [
  string,
  string,
  string,
  string,
  string,
];

function report(step: string, data: Record<string, unknown>): void {
  console.log(JSON.stringify({ step, ...data }));
}

async function step(name: string, fn: () => Promise<Record<string, unknown>>): Promise<void> {
  try {
    report(name, await fn());
  } catch (err) {
    const e = err as Error & { code?: string };
    report(name, { error: `${e.name}: ${e.message}`, code: e.code });
  }
}

async function until(what: string, ok: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 20_000;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const runtime = "Bun" in globalThis ? `bun ${versions.bun}` : `node ${versions.node}`;
report("runtime", { runtime });

type Doc = { n: number };
const local = { maxItems: 100 };

async function core(): Promise<void> {
  const writer = await openCache<Doc>({
    servers: natsUrl,
    bucket,
    create: { history: 5 },
    local,
  });
  const reader = await openCache<Doc>({ servers: natsUrl, bucket, local });
  await step("open", async () => {
    await writer.ready();
    await reader.ready();
    return { writer: writer.status().state, reader: reader.status().state };
  });
  await step("write", async () => ({ revision: await writer.set("k.1", { n: 1 }) }));
  await step("miss", async () => {
    const e = await reader.getEntry("k.1");
    return { source: e?.source, value: e?.value, revision: e?.revision };
  });
  await step("hit", async () => {
    const e = await reader.getEntry("k.1");
    return { source: e?.source, value: e?.value };
  });
  await step("push", async () => {
    const revision = await writer.set("k.1", { n: 2 });
    await until("the pushed update", () => reader.peek("k.1")?.n === 2);
    return { revision, value: reader.peek("k.1") };
  });
  await reader.close();

  const path = `${dir}/replica.snap`;
  await step("snapshot-save", async () => {
    const replica = await openCache<Doc>({
      servers: natsUrl,
      bucket,
      mode: "replica",
      local,
      snapshot: { path, intervalMs: 0 },
    });
    await replica.ready();
    await replica.close(); // saves the snapshot
    return { bytes: (await stat(path)).size };
  });
  await step("snapshot-warm-start", async () => {
    const events: CacheEvent[] = [];
    const replica = await openCache<Doc>({
      servers: natsUrl,
      bucket,
      mode: "replica",
      local,
      snapshot: { path, intervalMs: 0 },
      onEvent: (e) => events.push(e),
    });
    await replica.ready();
    const loaded = events.find((e) => e.type === "snapshot");
    const value = replica.peek("k.1");
    await replica.close();
    return { snapshot: loaded?.type === "snapshot" ? loaded.action : undefined, value };
  });

  await step("resync", async () => {
    const replica = await openCache<Doc>({
      servers: natsUrl,
      bucket,
      mode: "replica",
      local,
      reconcileMs: 200,
    });
    await replica.ready();
    const nc = await connectNats({ servers: [natsUrl] });
    try {
      const kvm = new Kvm(nc);
      await (await kvm.open(bucket)).destroy();
      const kv = await kvm.create(bucket, { history: 5 });
      await kv.put("k.2", JSON.stringify({ n: 3 }));
      await until(
        "a resync",
        () => replica.status().resyncs >= 1 && replica.peek("k.2")?.n === 3,
      );
      return { resyncs: replica.status().resyncs, old: replica.peek("k.1") ?? null };
    } finally {
      await replica.close();
      await nc.close();
    }
  });
  await writer.close();

  await step("fetch-handler", async () => {
    // Not `await using`: Node 22 cannot parse it.
    const handler = createFetchHandler({
      servers: natsUrl,
      buckets: { [bucket]: {} },
      local,
      auth: { writeTokens: ["s3cret"] },
    });
    const { origin, server, stop } = await serve(handler.fetch);
    try {
      const key = `${origin}/v1/buckets/${bucket}/keys`;
      const got = await fetch(`${key}/k.2`);
      const put = await fetch(`${key}/k.3`, {
        method: "PUT",
        headers: { authorization: "Bearer s3cret", "content-type": "application/json" },
        body: JSON.stringify({ n: 4 }),
      });
      const unauthorized = await fetch(`${key}/k.3`, { method: "PUT", body: "{}" });
      await unauthorized.body?.cancel();
      const absent = await fetch(`${key}/absent`);
      await absent.body?.cancel();
      const after = await fetch(`${key}/k.3`);
      return {
        server,
        get: [got.status, await got.json()],
        put: [put.status, await put.json()],
        unauthorized: unauthorized.status,
        absent: absent.status,
        after: [after.status, await after.json()],
      };
    } finally {
      await stop();
      await handler.close();
    }
  });
}

/** Serves `fetch` on a free loopback port with the runtime's own HTTP server. */
async function serve(
  handler: (request: Request) => Promise<Response>,
): Promise<{ origin: string; server: string; stop: () => Promise<void> }> {
  const bun = (globalThis as {
    Bun?: {
      serve(o: { port: number; hostname: string; fetch: typeof handler }): {
        port: number;
        stop(force?: boolean): Promise<void> | void;
      };
    };
  }).Bun;
  if (bun) {
    const server = bun.serve({ port: 0, hostname: "127.0.0.1", fetch: handler });
    return {
      origin: `http://127.0.0.1:${server.port}`,
      server: "Bun.serve",
      stop: async () => {
        await server.stop(true);
      },
    };
  }
  const server = createServer((req, res) => {
    toFetch(req, res, handler).catch((err) => {
      res.statusCode = 500;
      res.end(String(err));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    server: "node:http",
    stop: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `node:http` to a fetch handler and back: the adapter a Node user writes. */
async function toFetch(
  req: IncomingMessage,
  res: ServerResponse,
  handler: (request: Request) => Promise<Response>,
): Promise<void> {
  const headers = new Headers();
  for (const [name, value] of Object.entries(req.headers)) {
    if (typeof value === "string") headers.set(name, value);
    else if (Array.isArray(value)) { for (const v of value) headers.append(name, v); }
  }
  const chunks: Uint8Array[] = [];
  for await (const chunk of req) chunks.push(chunk as Uint8Array);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const response = await handler(
    new Request(`http://${req.headers.host ?? "localhost"}${req.url}`, {
      method: req.method,
      headers,
      body: hasBody ? new Blob(chunks as BlobPart[]) : undefined,
    }),
  );
  res.statusCode = response.status;
  response.headers.forEach((value, name) => res.setHeader(name, value));
  res.end(new Uint8Array(await response.arrayBuffer()));
}

async function websocket(): Promise<void> {
  const cache = await openCache<Doc>({
    servers: wsUrl,
    bucket,
    create: { history: 5 },
    local,
  });
  await step("ws-open", async () => {
    await cache.ready();
    return { state: cache.status().state };
  });
  await step("ws-write-read", async () => {
    const revision = await cache.set("w.1", { n: 1 });
    return { revision, value: await cache.get("w.1") };
  });
  await step("ws-push", async () => {
    const nc = await connectNats({ servers: [wsUrl] });
    try {
      await (await new Kvm(nc).open(bucket)).put("w.1", JSON.stringify({ n: 2 }));
      await until("the pushed update", () => cache.peek("w.1")?.n === 2);
      return { value: cache.peek("w.1") };
    } finally {
      await nc.close();
    }
  });
  await cache.close();
}

async function runtimeErrors(): Promise<void> {
  const P = Promise as { withResolvers?: unknown };
  const withResolvers = P.withResolvers;
  delete P.withResolvers;
  await step("no-withResolvers", async () => {
    await openCache({ servers: natsUrl, bucket, create: true, local });
    return { opened: true };
  });
  P.withResolvers = withResolvers;
  const g = globalThis as { WebSocket?: unknown };
  const ws = g.WebSocket;
  delete g.WebSocket;
  await step("no-WebSocket", async () => {
    await openCache({ servers: wsUrl, bucket, create: true, local });
    return { opened: true };
  });
  await step("no-WebSocket-fetch-handler", () => {
    createFetchHandler({ servers: wsUrl, buckets: { [bucket]: {} }, local });
    return Promise.resolve({ created: true });
  });
  g.WebSocket = ws;
  await step("then-tcp-opens", async () => {
    const cache = await openCache<Doc>({ servers: natsUrl, bucket, create: true, local });
    const revision = await cache.set("r.1", { n: 1 });
    await cache.close();
    return { revision };
  });
}

const scenarios: Record<string, () => Promise<void>> = {
  core,
  websocket,
  "runtime-errors": runtimeErrors,
};
const run = scenarios[scenario];
if (!run) {
  report("usage", { error: `unknown scenario ${scenario}` });
  exit(2);
}
await run();
report("done", {});
exit(0);
