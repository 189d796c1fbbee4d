/**
 * The GET hit path without Hono's router. `GET /v1/buckets/<bucket>/keys/<key>`
 * is the hot path (benchmarked against bare `Deno.serve`), so `fastGet`
 * recognises it from the URL and runs the same pipeline functions as the Hono
 * route (read check, bucket, key, `readKey`, error rendering, metrics and log
 * line, CORS headers) without building a context or a middleware chain.
 * Anything else, or any path it is unsure about, goes to Hono.
 * `tests/http/parity_test.ts` proves both paths answer alike.
 *
 * @module
 */
import type { Bookmark } from "../bookmark.ts";
import { syncHit } from "../sync_hit.ts";
import type { RouteMetrics } from "./metrics.ts";
import type { Pipeline, RequestHead } from "./pipeline.ts";
import { serverFault } from "./problem.ts";
import { answerEntry, readKey } from "./routes/keys.ts";
import type { ServedBucket } from "./served_bucket.ts";

const PREFIX = "/v1/buckets/";

/**
 * The response to a GET of one key (recorded on `rm`), or `undefined` when
 * Hono should answer. A fresh resident value is answered synchronously (a
 * `Response`, not a promise of one: no await and no promise allocated on
 * the hit path); anything else (a miss, a bookmark to wait for) is awaited
 * through `readKey()`.
 */
export function fastGet(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  head: RequestHead,
): Response | Promise<Response> | undefined {
  const url = request.url;
  const start = url.indexOf("/", url.indexOf(":") + 3);
  if (start < 0 || !url.startsWith(PREFIX, start)) return undefined;
  // The path ends at the query or the fragment, whichever comes first.
  let end = url.indexOf("?", start + PREFIX.length);
  if (end < 0) end = url.length;
  const hash = url.indexOf("#", start + PREFIX.length);
  if (hash >= 0 && hash < end) end = hash;
  const slash = url.indexOf("/", start + PREFIX.length);
  if (slash < 0 || slash >= end || !url.startsWith("/keys/", slash)) return undefined;
  const name = url.slice(start + PREFIX.length, slash);
  const key = url.slice(slash + 6, end);
  // A percent-encoded path goes to Hono: its decoding decides the key, and
  // the path logged and shown as the problem's `instance` (the parity test
  // found the two paths disagreeing there, and on an empty bucket name).
  if (name === "" || key === "" || key.includes("/") || key.includes("%") || name.includes("%")) {
    return undefined;
  }
  return fastRead(p, rm, request, head, name, key, url.slice(start, end));
}

function fastRead(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  head: RequestHead,
  name: string,
  key: string,
  path: string,
): Response | Promise<Response> {
  const t0 = performance.now();
  let res: Response;
  try {
    p.readCheck?.(head.authorization);
    const b = p.bucketNamed(name);
    p.checkKey(key);
    const incoming = p.bookmarks.ofHeader(head.bookmark, request);
    // A bookmark may have to wait for the watcher: the awaited path decides.
    const e = incoming.isEmpty ? syncHit(b.cache, key) : undefined;
    if (e === undefined) return awaitedRead(p, rm, request, b, key, incoming, path, t0);
    res = answerEntry(
      b,
      e,
      head.ifNoneMatch,
      false,
      p.bookmarks,
      incoming,
      p.bookmarks.answer(b, incoming, e.revision),
    );
  } catch (err) {
    return failed(p, rm, request, path, t0, err);
  }
  return finish(p, rm, request, path, t0, res, undefined);
}

async function awaitedRead(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  b: ServedBucket,
  key: string,
  incoming: Bookmark,
  path: string,
  t0: number,
): Promise<Response> {
  let res: Response;
  try {
    res = await readKey(b, key, request, false, p.bookmarks, incoming);
  } catch (err) {
    return failed(p, rm, request, path, t0, err);
  }
  return finish(p, rm, request, path, t0, res, undefined);
}

function failed(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  path: string,
  t0: number,
  err: unknown,
): Response {
  const res = p.renderError(err, path);
  return finish(p, rm, request, path, t0, res, res.status >= 500 ? serverFault(err) : undefined);
}

function finish(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  path: string,
  t0: number,
  res: Response,
  error: unknown,
): Response {
  p.record(rm, "GET", path, res.status, performance.now() - t0, error);
  p.cors?.decorate(request, res.headers);
  return res;
}
