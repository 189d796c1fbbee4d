/**
 * The GET fast path (`src/http/fast_get.ts`) and Hono's route answer every
 * request alike: two apps with the same options, one with the fast path and
 * one without, each over its own cache of the same bucket, get the same
 * requests (those of the route tests: hits, misses, conditionals, bad keys,
 * unknown buckets, encodings, tokens, origins), with and without CORS, and
 * must answer the same status, headers (but Date) and body, and log the same
 * line.
 */
import assert from "node:assert/strict";
import { type Cache, type Codec, openCache } from "../../mod.ts";
import type { CreateAppOptions, RequestInfo } from "../../http.ts";
import { buildApp } from "../../src/http/app.ts";
import { startServer, uniqueBucket } from "../_setup.ts";

const textCodec: Codec<string> = {
  encode: (s) => new TextEncoder().encode(s),
  decode: (b) => new TextDecoder().decode(b),
  contentType: "text/plain; charset=utf-8",
};

interface Answer {
  status: number;
  headers: [string, string][];
  body: string;
  log: (Omit<RequestInfo, "durationMs" | "error"> & { error: boolean }) | undefined;
}

async function answer(res: Response, log: RequestInfo[]): Promise<Answer> {
  const headers = [...res.headers].filter(([k]) => k !== "date");
  const body = await res.text();
  // At most one log line (a CORS preflight is answered before any route, unlogged).
  assert.ok(log.length <= 1, `${log.length} log lines for one request`);
  if (log[0] === undefined) return { status: res.status, headers, body, log: undefined };
  const { durationMs: _d, error, ...rest } = log[0];
  return { status: res.status, headers, body, log: { ...rest, error: error !== undefined } };
}

/** The GET (and a few other) requests the route tests make, as [path, init]. */
function requests(etag: string): [string, RequestInit][] {
  const paths = [
    "/v1/buckets/b/keys/user.1",
    "/v1/buckets/b/keys/user.1?x=1",
    "/v1/buckets/b/keys/nope",
    "/v1/buckets/b/keys/bad",
    "/v1/buckets/b/keys/user%2E1",
    "/v1/buckets/b/keys/a%2Fb",
    "/v1/buckets/b/keys/%zz",
    "/v1/buckets/b/keys/a%20b",
    "/v1/buckets/b/keys/a..b",
    "/v1/buckets/b/keys/.a",
    "/v1/buckets/b/keys/a*",
    "/v1/buckets/b/keys/a>",
    "/v1/buckets/b/keys/" + "k".repeat(5000),
    "/v1/buckets/b/keys/",
    "/v1/buckets/b/keys/user.1/",
    "/v1/buckets/b/keys/user.1/history",
    "/v1/buckets/b/keys",
    "/v1/buckets/nope/keys/user.1",
    "/v1/buckets/%62/keys/user.1",
    "/v1/buckets/a.b/keys/user.1",
    "/v1/buckets//keys/user.1",
    "//v1/buckets/b/keys/user.1",
    "/v1/buckets/raw/keys/text.1",
    "/v1/buckets/ro/keys/user.1",
    "/healthz",
    "/nowhere",
  ];
  const variants: RequestInit[] = [
    {},
    { headers: { "if-none-match": etag } },
    { headers: { "if-none-match": `W/${etag}, "x"` } },
    { headers: { "if-none-match": "*" } },
    { headers: { "if-none-match": '"9999"' } },
    { headers: { authorization: "Bearer r3ad" } },
    { headers: { authorization: "Bearer wr1te" } },
    { headers: { authorization: "Bearer nope" } },
    { headers: { authorization: "Basic eDp5" } },
    { headers: { origin: "https://app.example", authorization: "Bearer r3ad" } },
    { headers: { origin: "https://evil.example" } },
    { headers: { host: "x/v1/buckets/other/keys/k?" } },
    { method: "HEAD" },
    // Rule 8: a bookmark reached, one naming other buckets too, malformed,
    // over its bounds, far beyond the bucket.
    { headers: { "kv-bookmark": "b:1" } },
    { headers: { "kv-bookmark": "zz:7,b:1,raw:1" } },
    { headers: { "kv-bookmark": "b:x" } },
    { headers: { "kv-bookmark": Array.from({ length: 17 }, (_, i) => `b${i}:1`).join(",") } },
    { headers: { "kv-bookmark": "b:9000000000" } },
    {
      method: "OPTIONS",
      headers: { "access-control-request-method": "GET", origin: "https://app.example" },
    },
  ];
  const out: [string, RequestInit][] = [];
  for (const p of paths) for (const v of variants) out.push([p, v]);
  return out;
}

Deno.test("the GET fast path answers every request exactly as Hono's route does", async (t) => {
  await using srv = await startServer();
  const bucket = uniqueBucket();
  const rawBucket = uniqueBucket();
  const caches: Cache<unknown>[] = [];
  const open = async <T>(name: string, codec?: Codec<T>): Promise<Cache<T>> => {
    const c = await openCache<T>({
      servers: srv.url,
      bucket: name,
      create: { history: 5 },
      local: { maxItems: 1000 },
      ...(codec === undefined ? {} : { codec }),
    });
    await c.ready({ timeoutMs: 10_000 });
    caches.push(c as Cache<unknown>);
    return c;
  };
  try {
    const writer = await open<unknown>(bucket);
    const revision = await writer.set("user.1", { name: "Ada", tags: ["a", "b"] });
    // A value the JSON bucket cannot decode: a 502 with the error in the log line.
    await (await open<string>(bucket, textCodec)).set("bad", "not json");
    await (await open<string>(rawBucket, textCodec)).set("text.1", "hello");

    for (
      const [name, extra] of [
        ["without CORS, reads open", {}],
        ["with CORS, reads open", { cors: { origins: ["https://app.example"] } }],
        ["without CORS, read tokens", { auth: { readTokens: ["r3ad"], writeTokens: ["wr1te"] } }],
        ["with CORS, read tokens, max-age", {
          cors: { origins: ["https://app.example"] },
          auth: { readTokens: ["r3ad"], writeTokens: ["wr1te"] },
          maxAgeMs: 60_000,
        }],
      ] as const
    ) {
      await t.step(name, async () => {
        // Each path over its own caches, so a miss on one is a miss on the other.
        const apps = [];
        let fastAnswers = 0;
        for (const fastPath of [true, false]) {
          const log: RequestInfo[] = [];
          const maxAgeMs = "maxAgeMs" in extra ? extra.maxAgeMs : 0;
          const options: CreateAppOptions = {
            buckets: {
              b: { cache: await open<unknown>(bucket), maxAgeMs },
              raw: { cache: await open<string>(rawBucket, textCodec), codec: textCodec },
              ro: { cache: await open<unknown>(bucket), readOnly: true },
            },
            ...("cors" in extra ? { cors: extra.cors } : {}),
            ...("auth" in extra ? { auth: extra.auth } : {}),
            onRequest: (info) => log.push(info),
          };
          const app = buildApp(options, {
            fastPath,
            onFastPath: () => fastAnswers++,
          });
          apps.push({ app, log });
        }
        const [fast, hono] = apps as [typeof apps[0], typeof apps[0]];
        const etag = `"${revision}"`;
        // Twice: the first round misses, the second hits.
        for (const round of [1, 2]) {
          for (const [path, init] of requests(etag)) {
            fast.log.length = 0;
            hono.log.length = 0;
            const a = await answer(await fast.app.request(path, init), fast.log);
            const b = await answer(await hono.app.request(path, init), hono.log);
            assert.deepEqual(
              a,
              b,
              `round ${round}: ${init.method ?? "GET"} ${path} ${
                JSON.stringify(init.headers ?? {})
              }`,
            );
          }
        }
        assert.ok(fastAnswers > 100, `the fast path answered ${fastAnswers} requests`);
      });
    }
  } finally {
    for (const c of caches) await c.close();
  }
});
