/**
 * The answer to a read of a key the cache holds, built from the value's
 * {@link HitParts}: a 304 when `If-None-Match` matches, else a 200 with the
 * value. Shared by Hono's route and the GET fast path, so both answer alike.
 *
 * A 200 is a copy (`clone()`) of a template `Response` kept with the parts:
 * in Deno 2.9 that costs about half of building a `Response` with six
 * headers (which checks each header and prepares the native response), and
 * the hit path is benchmarked against a bare `Deno.serve`. A template holds
 * about 1 KB, so only the last `TEMPLATES_PER_BUCKET` built are kept
 * per bucket; a value whose template was dropped gets a new one at its next
 * read.
 *
 * @module
 */
import type { Entry } from "../types.ts";
import { ifNoneMatchHits } from "./etag.ts";
import type { HitParts, ServedBucket } from "./served_bucket.ts";

/**
 * The response to a GET (or HEAD) of entry `e` of bucket `b`.
 * `bookmark` is the `KV-Bookmark` of the answer ("" for none), `setCookie`
 * its cookie (when the bookmark cookie is on and moves forward).
 *
 * @example
 * ```ts ignore
 * import { entryResponse } from "./entry_response.ts";
 * const e = await bucket.cache.getEntry("user.1");
 * if (e) return entryResponse(bucket, e, request.headers.get("if-none-match"), false, "b:7", undefined);
 * ```
 */
export function entryResponse(
  b: ServedBucket,
  e: Entry<unknown>,
  ifNoneMatch: string | null,
  head: boolean,
  bookmark: string,
  setCookie: string | undefined,
): Response {
  const parts = b.parts(e);
  const cacheControl = b.cacheControl(e);
  if (ifNoneMatch !== null && ifNoneMatchHits(ifNoneMatch, parts.etag)) {
    const headers: Record<string, string> = {
      etag: parts.etag,
      "x-cache": e.source,
      "cache-control": cacheControl,
    };
    if (bookmark !== "") headers["kv-bookmark"] = bookmark;
    if (setCookie !== undefined) headers["set-cookie"] = setCookie;
    return new Response(null, { status: 304, headers });
  }
  if (head || setCookie !== undefined) {
    // Rare: built each time, never kept.
    const headers = headerRecord(b, parts, e.source, cacheControl, bookmark);
    if (setCookie !== undefined) headers["set-cookie"] = setCookie;
    return new Response(head ? null : parts.body as BodyInit, { headers });
  }
  const template = parts.template;
  if (
    template !== undefined && parts.templateSource === e.source &&
    parts.templateCacheControl === cacheControl && parts.templateBookmark === bookmark
  ) {
    return template.clone();
  }
  const res = new Response(parts.body as BodyInit, {
    headers: headerRecord(b, parts, e.source, cacheControl, bookmark),
  });
  if (parts.kept) b.keepTemplate(parts, res.clone(), e.source, cacheControl, bookmark);
  return res;
}

function headerRecord(
  b: ServedBucket,
  parts: HitParts,
  source: string,
  cacheControl: string,
  bookmark: string,
): Record<string, string> {
  const headers: Record<string, string> = {
    "content-type": b.contentType,
    etag: parts.etag,
    "last-modified": parts.lastModified,
    "x-cache": source,
    "cache-control": cacheControl,
  };
  if (bookmark !== "") headers["kv-bookmark"] = bookmark;
  return headers;
}
