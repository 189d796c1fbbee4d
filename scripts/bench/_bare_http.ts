/**
 * The bare servers of the HTTP bench (`http.ts`): a `Deno.serve` handler
 * answering GETs of one key from a `Map`, with one header or with the six
 * kvedge sends. `http.ts` serves it with `Deno.serve` (one isolate); run as
 * `deno serve --parallel` (`DENO_JOBS` isolates, the kind and bucket from
 * `KVEDGE_BENCH_BARE` and `KVEDGE_BENCH_BUCKET`) it is the bare server on
 * several cores, sharing the port the way the edge worker's isolates do.
 *
 * @module
 */

/** The key every server answers. */
export const KEY = "item.1";

/** The value every server returns (about 100 bytes of JSON). */
export function valueJson(): string {
  return JSON.stringify({ id: 1, name: "Ada Lovelace", plan: "pro", tags: ["a", "b"], n: 42 });
}

/** The bare servers: one header; kvedge's six; kvedge's six and a look at `If-None-Match`. */
export type BareKind = "bare" | "bare_headers" | "bare_headers_inm";

/**
 * The bare handler of `kind` for `bucket` (the bucket only names the
 * bookmark header's value).
 *
 * @example
 * ```ts ignore
 * Deno.serve({ port: 8000 }, bareHandler("bare", "b"));
 * ```
 */
export function bareHandler(kind: BareKind, bucket: string): (req: Request) => Response {
  const value = valueJson();
  const store = new Map<string, string>([[KEY, value]]);
  // With kvedge's headers: one ready response per key, copied per request
  // (what kvedge does; `new Response(value, { headers })` with six headers
  // costs more in Deno 2.9).
  const etag = '"1"';
  const ready = new Map<string, Response>([[
    KEY,
    new Response(value, {
      headers: {
        "content-type": "application/json",
        etag,
        "last-modified": new Date().toUTCString(),
        "x-cache": "hit",
        "cache-control": "no-cache",
        "kv-bookmark": `${bucket}:1`,
      },
    }),
  ]]);
  const prefix = "/v1/buckets/";
  return (req) => {
    const path = new URL(req.url).pathname;
    const at = path.indexOf("/keys/", prefix.length);
    const key = at < 0 ? undefined : decodeURIComponent(path.slice(at + 6));
    if (kind === "bare") {
      const value = key === undefined ? undefined : store.get(key);
      if (value === undefined) return new Response("not found", { status: 404 });
      return new Response(value, { headers: { "content-type": "application/json" } });
    }
    const res = key === undefined ? undefined : ready.get(key);
    if (res === undefined) return new Response("not found", { status: 404 });
    if (kind === "bare_headers_inm" && req.headers.get("if-none-match") === etag) {
      return new Response(null, { status: 304, headers: { etag } });
    }
    return res.clone();
  };
}

/** What `deno serve --parallel` runs in each isolate. */
export default {
  fetch: bareHandler(
    (Deno.env.get("KVEDGE_BENCH_BARE") ?? "bare") as BareKind,
    Deno.env.get("KVEDGE_BENCH_BUCKET") ?? "",
  ),
} satisfies Deno.ServeDefaultExport;
