/**
 * Listings: `GET /v1/buckets/:bucket/keys` (keys, sorted and paged by an
 * opaque cursor) and `GET /v1/buckets/:bucket/keys/:key/history` (a key's
 * kept revisions).
 *
 * @module
 */
import { Hono } from "hono";
import { TooLargeError } from "../../errors.ts";
import { stringifyJson } from "../../json_text.ts";
import { keyProblem } from "../../keys.ts";
import { methodNotAllowed } from "../pipeline.ts";
import type { Pipeline } from "../pipeline.ts";
import { checkPrefix, filterForPrefix } from "../prefix.ts";
import { HttpProblem } from "../problem.ts";

const DEFAULT_LIST_LIMIT = 100;

function encodeCursor(key: string): string {
  return btoa(key).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function decodeCursor(cursor: string): string {
  const bad = () => new HttpProblem("bad_request", "cursor is not one this server issued");
  if (!/^[A-Za-z0-9_-]{1,1024}$/.test(cursor)) throw bad();
  let key: string;
  try {
    key = atob(cursor.replace(/-/g, "+").replace(/_/g, "/"));
  } catch {
    throw bad();
  }
  if (keyProblem(key) !== undefined) throw bad();
  return key;
}

/** The listing routes, over the shared pipeline. */
export function listingRoutes(p: Pipeline): Hono {
  const app = new Hono();
  const KEYS = "/v1/buckets/:bucket/keys";
  app.get(
    KEYS,
    p.measure(p.metrics.route("GET", KEYS)),
    ...p.readGuards,
    async function listKeys(c) {
      const b = p.bucketOf(c);
      const prefix = checkPrefix(c.req.query("prefix"));
      const limitText = c.req.query("limit");
      const limit = limitText === undefined
        ? Math.min(DEFAULT_LIST_LIMIT, p.limits.maxListLimit)
        : Number(limitText);
      if (
        !/^[0-9]{1,7}$/.test(limitText ?? "1") || !(limit >= 1 && limit <= p.limits.maxListLimit)
      ) {
        throw new HttpProblem(
          "bad_request",
          `limit must be an integer from 1 to ${p.limits.maxListLimit}`,
        );
      }
      const cursorText = c.req.query("cursor");
      const after = cursorText === undefined || cursorText === ""
        ? undefined
        : decodeCursor(cursorText);

      // A replica holding the whole bucket lists from memory; anything else
      // runs a consumer over the bucket on the server: capped, and stopped
      // when the client goes away.
      const release = b.cache.status().listing === "local"
        ? undefined
        : p.admit(p.scans, c.req.raw, c.env, "scans", "listings and history reads");
      try {
        const signal = release === undefined ? undefined : c.req.raw.signal;
        // Keep only the smallest limit+1 keys past the cursor, trimming as we go,
        // so memory stays O(limit) however large the bucket is.
        let page: string[] = [];
        const keep = limit + 1;
        // Once trimmed, a key not below the page's last cannot enter it: most
        // keys of a large bucket then cost one comparison, not a sort.
        let bound: string | undefined;
        const keys = b.cache.keys(filterForPrefix(prefix), signal === undefined ? {} : { signal });
        for await (const k of keys) {
          if (prefix !== "" && !k.startsWith(prefix)) continue;
          if (after !== undefined && k <= after) continue;
          if (bound !== undefined && k >= bound) continue;
          page.push(k);
          if (page.length >= keep * 4) {
            page = page.sort().slice(0, keep);
            bound = page[keep - 1];
          }
        }
        if (signal?.aborted) {
          p.refused("listing_client_gone");
          throw new HttpProblem("bad_request", "the client went away");
        }
        page.sort();
        const more = page.length > limit;
        if (more) page = page.slice(0, limit);
        return c.json({ keys: page, cursor: more ? encodeCursor(page[page.length - 1]!) : null });
      } finally {
        release?.();
      }
    },
  );
  app.all(KEYS, p.measure(p.metrics.route("OTHER", KEYS)), methodNotAllowed("GET, HEAD"));

  const HISTORY = "/v1/buckets/:bucket/keys/:key/history";
  app.get(
    HISTORY,
    p.measure(p.metrics.route("GET", HISTORY)),
    ...p.readGuards,
    async function keyHistory(c) {
      const b = p.bucketOf(c);
      const key = p.keyOf(c);
      const release = p.admit(p.scans, c.req.raw, c.env, "scans", "listings and history reads");
      let history;
      try {
        history = await b.cache.history(key, {
          signal: c.req.raw.signal,
          maxBytes: p.limits.maxHistoryBytes,
        });
      } catch (err) {
        if (err instanceof TooLargeError) p.refused("history_bytes");
        throw err;
      } finally {
        release();
      }
      if (history.length === 0) throw new HttpProblem("not_found", "the key has no history");
      // stringifyJson, not c.json(): a value another client wrote may nest
      // deeper than JSON.stringify's recursion survives.
      return c.body(
        stringifyJson({
          key,
          history: history.map((h) => ({
            revision: h.revision,
            operation: h.operation,
            createdMs: h.createdMs,
            ...(h.operation === "PUT" && h.value !== undefined ? b.jsonValue(h.value) : {}),
          })),
        }),
        200,
        { "content-type": "application/json" },
      );
    },
  );
  app.all(HISTORY, p.measure(p.metrics.route("OTHER", HISTORY)), methodNotAllowed("GET, HEAD"));

  return app;
}
