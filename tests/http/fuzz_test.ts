import assert from "node:assert/strict";
import fc from "fast-check";
import { type Cache, openCache } from "../../mod.ts";
import { createApp } from "../../http.ts";
import { startServer, uniqueBucket } from "../_setup.ts";

const METHODS = ["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH", "OPTIONS", "PROPFIND", "TRACE"];

/** Path segments that have broken HTTP routers before, plus random text. */
const segment = fc.oneof(
  fc.constantFrom(
    "v1",
    "buckets",
    "b",
    "ro",
    "nope",
    "keys",
    "watch",
    "history",
    "metrics",
    "readyz",
    "healthz",
    "stats",
    "user.1",
    "..",
    ".",
    "",
    "%2F",
    "%2f..%2f",
    "%2E%2E",
    "a..b",
    "%00",
    "%",
    "%zz",
    "%C3%A9",
    "%E2%9C%93",
    "%FF%FE",
    "*",
    ">",
    "a b",
    "__proto__",
    "constructor",
    "x".repeat(600),
  ),
  fc.string({ maxLength: 20 }).map(encodeURIComponent),
  fc.string({ unit: "grapheme", maxLength: 8 }),
  fc.stringMatching(/^[a-z0-9]{1,6}(\.[a-z0-9]{1,6}){0,2}$/),
);

const path = fc.oneof(
  // Mostly shaped like real routes, so the handlers (not just the 404) are hit.
  {
    arbitrary: fc.tuple(
      fc.constantFrom("b", "ro", "nope", "%62"),
      segment,
      fc.constantFrom("", "", "", "/history"),
    ).map(([b, key, tail]) => `/v1/buckets/${b}/keys/${key}${tail}`),
    weight: 6,
  },
  {
    arbitrary: fc.tuple(fc.constantFrom("b", "ro"), fc.constantFrom("keys", "watch")).map((
      [b, what],
    ) => `/v1/buckets/${b}/${what}`),
    weight: 2,
  },
  { arbitrary: fc.array(segment, { maxLength: 6 }).map((s) => "/" + s.join("/")), weight: 2 },
);

const query = fc.oneof(
  fc.constant(""),
  fc.dictionary(
    fc.constantFrom("prefix", "limit", "cursor", "purge", "x"),
    fc.oneof(
      fc.constantFrom("", "0", "-1", "1", "2", "99999999", "true", "a.", "..", "%", "Zm9v"),
      fc.string({ maxLength: 12 }),
    ),
    { maxKeys: 3 },
  ).map((q) => "?" + new URLSearchParams(q).toString()),
);

/** Header values are visible ASCII (what an HTTP parser would hand over), sometimes huge. */
const headerValue = fc.oneof(
  fc.constantFrom(
    "*",
    '"1"',
    'W/"1"',
    '"1", "2"',
    '"',
    '""',
    "Bearer r-tok",
    "Bearer w-tok",
    "Bearer ",
    "bearer w-tok",
    "Basic Zm9vOmJhcg==",
    "abc",
    "-5",
    "12345678901234567890",
    "https://app.example",
    "null",
  ),
  fc.string({ maxLength: 40 }).map((s) => s.replace(/[^\x20-\x7e]/g, "")),
  fc.constant("x".repeat(16_384)),
);

const headers = fc.dictionary(
  fc.constantFrom(
    "if-match",
    "if-none-match",
    "authorization",
    "content-type",
    "last-event-id",
    "origin",
    "access-control-request-method",
    "accept",
    "content-length",
  ),
  headerValue,
  { maxKeys: 4 },
);

const body = fc.oneof(
  fc.constant(undefined),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.string({ maxLength: 64 }),
  fc.uint8Array({ maxLength: 64 }),
  fc.constant("{".repeat(5000)),
  fc.constant("[".repeat(3000) + "]".repeat(3000)),
);

Deno.test("no request makes the HTTP facade answer 5xx or crash", async (t) => {
  await using srv = await startServer();
  const caches: Cache<unknown>[] = [];
  const unhandled: unknown[] = [];
  const onUnhandled = (e: PromiseRejectionEvent) => {
    unhandled.push(e.reason);
    e.preventDefault();
  };
  globalThis.addEventListener("unhandledrejection", onUnhandled);
  try {
    for (let i = 0; i < 2; i++) {
      const c = await openCache<unknown>({
        servers: srv.url,
        bucket: uniqueBucket(),
        create: { history: 3 },
        local: { maxItems: 500 },
      });
      await c.ready({ timeoutMs: 10_000 });
      caches.push(c);
    }
    const open = createApp({
      buckets: { b: { cache: caches[0]! }, ro: { cache: caches[1]!, readOnly: true } },
      auth: { anonymousWrites: true },
      cors: { origins: ["https://app.example"] },
      limits: { maxBodyBytes: 4096, maxSseStreams: 4 },
    });
    const guarded = createApp({
      buckets: { b: { cache: caches[0]! }, ro: { cache: caches[1]! } },
      auth: { readTokens: ["r-tok"], writeTokens: ["w-tok"] },
      limits: { maxBodyBytes: 4096 },
    });

    await t.step("random methods, paths, headers and bodies", async () => {
      let runs = 0;
      let built = 0;
      const statuses = new Map<number, number>();
      await fc.assert(
        fc.asyncProperty(
          fc.boolean(),
          fc.oneof(
            { arbitrary: fc.constantFrom("GET", "PUT", "DELETE", "HEAD"), weight: 8 },
            { arbitrary: fc.constantFrom(...METHODS), weight: 2 },
            { arbitrary: fc.stringMatching(/^[A-Z]{1,8}$/), weight: 1 },
          ),
          path,
          query,
          headers,
          body,
          async (useGuarded, method, p, q, h, b) => {
            runs++;
            let req: Request;
            try {
              req = new Request(`http://localhost${p}${q}`, {
                method,
                headers: h,
                ...(b !== undefined && method !== "GET" && method !== "HEAD" ? { body: b } : {}),
              });
            } catch {
              return; // not a request any HTTP server could receive
            }
            built++;
            const app = useGuarded ? guarded : open;
            const res = await app.request(req);
            statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
            assert.ok(res.status < 500, `${method} ${p}${q} -> ${res.status}`);
            if (res.status >= 400) {
              assert.equal(res.headers.get("content-type"), "application/problem+json");
              if (method === "HEAD") return; // no body to look at
              const problem = await res.json();
              assert.equal(problem.status, res.status);
              assert.equal(typeof problem.code, "string");
              assert.equal(typeof problem.detail, "string");
              assert.ok(!JSON.stringify(problem).includes("w-tok"), "tokens are never echoed");
            } else {
              await res.body?.cancel();
            }
          },
        ),
        { numRuns: 1500, seed: Number(Deno.env.get("FUZZ_SEED") ?? Date.now() % 2 ** 31) },
      );
      console.log(
        `http fuzz: ${runs} runs, ${built} requests sent, statuses ${
          JSON.stringify(Object.fromEntries([...statuses].sort((a, b) => a[0] - b[0])))
        }`,
      );
      assert.ok(built > runs / 2, "most generated requests must be valid HTTP requests");
    });

    await t.step("any JSON value round-trips through PUT and GET under any valid key", async () => {
      const keyToken = fc.stringMatching(/^[-/_=a-zA-Z0-9]{1,12}$/);
      const key = fc.array(keyToken, { minLength: 1, maxLength: 4 }).map((t) => t.join("."));
      let runs = 0;
      await fc.assert(
        fc.asyncProperty(key, fc.jsonValue(), async (k, v) => {
          runs++;
          const url = `/v1/buckets/b/keys/${encodeURIComponent(k)}`;
          const put = await open.request(url, { method: "PUT", body: JSON.stringify(v) });
          if (JSON.stringify(v).length > 4096) {
            assert.equal(put.status, 413);
            await put.body?.cancel();
            return;
          }
          assert.ok(put.status === 200 || put.status === 201, `PUT ${k}: ${put.status}`);
          const { key: echoed, revision } = await put.json();
          assert.equal(echoed, k);
          const get = await open.request(url);
          assert.equal(get.status, 200);
          assert.equal(get.headers.get("etag"), `"${revision}"`);
          assert.equal(await get.text(), JSON.stringify(v));
        }),
        { numRuns: 300 },
      );
      console.log(`http round-trip: ${runs} runs`);
    });

    assert.deepEqual(unhandled, [], "no unhandled rejection");
  } finally {
    globalThis.removeEventListener("unhandledrejection", onUnhandled);
    for (const c of caches) await c.close();
  }
});
