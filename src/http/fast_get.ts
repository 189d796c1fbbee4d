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
import type { RouteMetrics } from "./metrics.ts";
import { validKey } from "./pipeline.ts";
import type { Pipeline } from "./pipeline.ts";
import { serverFault } from "./problem.ts";
import { readKey } from "./routes/keys.ts";

const PREFIX = "/v1/buckets/";

/** The response to a GET of one key (recorded on `rm`), or `undefined` when Hono should answer. */
export function fastGet(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
): Promise<Response> | undefined {
  const url = request.url;
  const start = url.indexOf("/", url.indexOf(":") + 3);
  if (start < 0 || !url.startsWith(PREFIX, start)) return undefined;
  let end = url.length;
  for (let i = start + PREFIX.length; i < url.length; i++) {
    const ch = url.charCodeAt(i);
    if (ch === 0x3f || ch === 0x23) { // ? or #
      end = i;
      break;
    }
  }
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
  return fastRead(p, rm, request, name, key, url.slice(start, end));
}

async function fastRead(
  p: Pipeline,
  rm: RouteMetrics,
  request: Request,
  name: string,
  key: string,
  path: string,
): Promise<Response> {
  const t0 = performance.now();
  let res: Response;
  let error: unknown;
  try {
    p.readCheck?.(request.headers.get("authorization"));
    res = await readKey(p.bucketNamed(name), validKey(key), request, false, p.bookmarks);
  } catch (err) {
    res = p.renderError(err, path);
    if (res.status >= 500) error = serverFault(err);
  }
  p.record(rm, "GET", path, res.status, performance.now() - t0, error);
  p.cors?.decorate(request, res.headers);
  return res;
}
