/**
 * Listings: `GET /v1/buckets/:bucket/keys` (keys, sorted and paged by an
 * opaque cursor) and `GET /v1/buckets/:bucket/keys/:key/history` (a key's
 * kept revisions).
 *
 * @module
 */
import { type Context, Hono } from "hono";
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
  app.get(KEYS, p.measure(p.metrics.route("GET", KEYS)), ...p.readGuards, listKeys(p));
  app.all(KEYS, p.measure(p.metrics.route("OTHER", KEYS)), methodNotAllowed("GET, HEAD"));
  const HISTORY = "/v1/buckets/:bucket/keys/:key/history";
  app.get(HISTORY, p.measure(p.metrics.route("GET", HISTORY)), ...p.readGuards, keyHistory(p));
  app.all(HISTORY, p.measure(p.metrics.route("OTHER", HISTORY)), methodNotAllowed("GET, HEAD"));
  return app;
}

/** What a listing asks: keys with `prefix`, past `after`, at most `limit` of them. */
interface ListQuery {
  prefix: string;
  limit: number;
  /** The key the cursor names: the page starts after it. */
  after: string | undefined;
}

/** `GET …/keys`: a page of keys, sorted, with the cursor of the next. */
function listKeys(p: Pipeline): (c: Context) => Promise<Response> {
  return async function listKeys(c) {
    const b = p.bucketOf(c);
    const query = listQuery(c, p.limits.maxListLimit);
    // A replica holding the whole bucket lists from memory; anything else
    // runs a consumer over the bucket on the server: capped, and stopped
    // when the client goes away.
    const release = b.cache.status().listing === "local" ? undefined : p.admit(c.req.raw, {
      admission: p.scans,
      env: c.env,
      bound: "scans",
      what: "listings and history reads",
    });
    try {
      const signal = release === undefined ? undefined : c.req.raw.signal;
      const keys = b.cache.keys(
        filterForPrefix(query.prefix),
        signal === undefined ? {} : { signal },
      );
      let page = await firstKeys(keys, query);
      if (signal?.aborted) {
        p.refused("listing_client_gone");
        throw new HttpProblem("bad_request", "the client went away");
      }
      const more = page.length > query.limit;
      if (more) page = page.slice(0, query.limit);
      return c.json({ keys: page, cursor: more ? encodeCursor(page[page.length - 1]!) : null });
    } finally {
      release?.();
    }
  };
}

/** A listing's `?prefix=`, `?limit=` and `?cursor=`, checked. */
function listQuery(c: Context, maxListLimit: number): ListQuery {
  const prefix = checkPrefix(c.req.query("prefix"));
  const limitText = c.req.query("limit");
  const limit = limitText === undefined
    ? Math.min(DEFAULT_LIST_LIMIT, maxListLimit)
    : Number(limitText);
  if (!/^[0-9]{1,7}$/.test(limitText ?? "1") || !(limit >= 1 && limit <= maxListLimit)) {
    throw new HttpProblem("bad_request", `limit must be an integer from 1 to ${maxListLimit}`);
  }
  const cursorText = c.req.query("cursor");
  const after = cursorText === undefined || cursorText === ""
    ? undefined
    : decodeCursor(cursorText);
  return { prefix, limit, after };
}

/**
 * The smallest `limit + 1` of `keys` that the query selects, sorted (one more
 * than the page tells whether another page follows).
 */
async function firstKeys(keys: AsyncIterable<string>, query: ListQuery): Promise<string[]> {
  const { prefix, after } = query;
  // Keep only the smallest limit+1 keys past the cursor, trimming as we go,
  // so memory stays O(limit) however large the bucket is.
  let page: string[] = [];
  const keep = query.limit + 1;
  // Once trimmed, a key not below the page's last cannot enter it: most
  // keys of a large bucket then cost one comparison, not a sort.
  let bound: string | undefined;
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
  return page.sort();
}

/** `GET …/keys/:key/history`: the key's kept revisions, oldest first. */
function keyHistory(p: Pipeline): (c: Context) => Promise<Response> {
  return async function keyHistory(c) {
    const b = p.bucketOf(c);
    const key = p.keyOf(c);
    const release = p.admit(c.req.raw, {
      admission: p.scans,
      env: c.env,
      bound: "scans",
      what: "listings and history reads",
    });
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
  };
}
