import assert from "node:assert/strict";
import { BUCKET_HEADER, createEdgeRouter, defineEdgeObject } from "../../workerd.ts";

/** A namespace binding that records which object got which request. */
function namespace(answer: (name: string, request: Request) => Response | Promise<Response>) {
  const seen: { name: string; bucket: string | null; url: string }[] = [];
  return {
    seen,
    binding: {
      idFromName: (name: string) => ({ name }),
      get: (id: never) => ({
        fetch: (request: Request) => {
          const { name } = id as { name: string };
          seen.push({ name, bucket: request.headers.get(BUCKET_HEADER), url: request.url });
          return Promise.resolve(answer(name, request));
        },
      }),
    },
  };
}

Deno.test("createEdgeRouter() sends every request to one object by default", async () => {
  const ns = namespace(() => new Response("ok"));
  const router = createEdgeRouter({ binding: "KVEDGE" });
  const spoofed = new Request("http://edge.test/v1/buckets/a/keys/k", {
    headers: { [BUCKET_HEADER]: "b" },
  });
  assert.equal(await (await router.fetch(spoofed, { KVEDGE: ns.binding })).text(), "ok");
  await (await router.fetch(new Request("http://edge.test/healthz"), { KVEDGE: ns.binding }))
    .body?.cancel();
  assert.deepEqual(ns.seen, [
    // A client cannot choose the bucket an object serves.
    { name: "edge", bucket: null, url: "http://edge.test/v1/buckets/a/keys/k" },
    { name: "edge", bucket: null, url: "http://edge.test/healthz" },
  ]);
});

Deno.test("createEdgeRouter() by bucket names one object per bucket, the rest go to one", async () => {
  const ns = namespace(() => new Response("ok"));
  const router = createEdgeRouter({ binding: "KVEDGE", by: "bucket", name: "ops" });
  for (const path of ["/v1/buckets/a/keys/k", "/v1/buckets/b%2Dx/watch", "/v1/stats"]) {
    await (await router.fetch(new Request(`http://edge.test${path}`), { KVEDGE: ns.binding }))
      .body?.cancel();
  }
  assert.deepEqual(ns.seen.map(({ name, bucket }) => ({ name, bucket })), [
    { name: "bucket:a", bucket: "a" },
    { name: "bucket:b-x", bucket: "b-x" },
    { name: "ops", bucket: null },
  ]);
});

Deno.test("createEdgeRouter() answers 503 problems when no object can answer", async () => {
  const router = createEdgeRouter({ binding: "KVEDGE" });
  const missing = await router.fetch(new Request("http://edge.test/v1/stats"), {});
  assert.equal(missing.status, 503);
  assert.equal(missing.headers.get("content-type"), "application/problem+json");
  assert.match((await missing.json()).detail, /no Durable Object binding named KVEDGE/);
  const failing = namespace(() => {
    throw new Error("object crashed");
  });
  const res = await router.fetch(new Request("http://edge.test/v1/stats"), {
    KVEDGE: failing.binding,
  });
  assert.equal(res.status, 503);
  assert.equal((await res.json()).code, "unavailable");
});

Deno.test("createEdgeRouter() and defineEdgeObject() check their arguments", () => {
  assert.throws(() => createEdgeRouter({ binding: "" }), TypeError);
  assert.throws(
    () => createEdgeRouter({ binding: "K", by: "region" as "edge" }),
    /"by" must be "edge" or "bucket"/,
  );
  assert.throws(() => defineEdgeObject(undefined as never), TypeError);
});

Deno.test("an edge object opens nothing before its first request and checks its options then", async () => {
  let calls = 0;
  const Edge = defineEdgeObject((env: { url: string }) => {
    calls++;
    return { servers: env.url, buckets: { a: {} }, local: { maxItems: 0 } };
  });
  const object = new Edge({}, { url: "ws://127.0.0.1:1" });
  assert.equal(calls, 0, "the constructor reads no options");
  await assert.rejects(
    object.fetch(new Request("http://edge.test/v1/stats")),
    (e: unknown) => e instanceof RangeError && /maxItems/.test(e.message),
  );
  assert.equal(calls, 1);
});

Deno.test("an edge object extends the base class it is given, with the state and env", () => {
  class Base {
    constructor(readonly ctx: unknown, readonly env: unknown) {}
  }
  const Edge = defineEdgeObject(
    () => ({ servers: "ws://127.0.0.1:1", buckets: { a: {} }, local: { maxItems: 1 } }),
    Base,
  );
  const state = { id: "x" };
  const object = new Edge(state, { url: "u" });
  assert.ok(object instanceof Base);
  assert.equal((object as unknown as Base).ctx, state);
  assert.deepEqual((object as unknown as Base).env, { url: "u" });
  assert.throws(() => defineEdgeObject(() => ({}) as never, "DurableObject" as never), TypeError);
});
