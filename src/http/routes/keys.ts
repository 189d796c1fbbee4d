/**
 * The routes of one key: `GET|HEAD|PUT|DELETE /v1/buckets/:bucket/keys/:key`.
 * `readKey()` is also the GET fast path's (`fast_get.ts`).
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { ConflictError } from "../../errors.ts";
import type { Cache, Entry, SetOptions } from "../../types.ts";
import { readBodyCapped } from "../body.ts";
import type { HttpBookmarks } from "../bookmarks.ts";
import type { Bookmark } from "../../bookmark.ts";
import { entryResponse } from "../entry_response.ts";
import { formatEtag, parseEntityTags, parseIfMatch } from "../etag.ts";
import { methodNotAllowed } from "../pipeline.ts";
import type { Pipeline } from "../pipeline.ts";
import { HttpProblem } from "../problem.ts";
import type { ServedBucket } from "../served_bucket.ts";

/** The route template of one key. */
export const KEY = "/v1/buckets/:bucket/keys/:key";

/**
 * GET/HEAD of one key: shared by the Hono route and the fast path. A
 * `KV-Bookmark` (rule 8) makes the read no older than it; every answer
 * carries the bookmark the client should pass on. `incoming` is the
 * request's bookmark when the caller has read it already.
 */
export async function readKey(
  b: ServedBucket,
  key: string,
  request: Request,
  head: boolean,
  bookmarks: HttpBookmarks,
  incoming: Bookmark = bookmarks.of(request),
): Promise<Response> {
  const rev = incoming.isEmpty ? 0 : incoming.revision(b.name);
  const e = await b.cache.getEntry(key, rev > 0 ? { atLeast: rev } : undefined);
  const answer = bookmarks.answer(b, incoming, e === undefined ? 0 : e.revision);
  if (e === undefined) {
    throw new HttpProblem("not_found", "the key is absent", {
      headers: bookmarks.record(incoming, answer),
    });
  }
  return answerEntry(
    b,
    e,
    request.headers.get("if-none-match"),
    head,
    bookmarks,
    incoming,
    answer,
  );
}

/**
 * The answer to a read of entry `e` (`ifNoneMatch`: the request's
 * `If-None-Match`) that carries the bookmark `answer`.
 */
export function answerEntry(
  b: ServedBucket,
  e: Entry<unknown>,
  ifNoneMatch: string | null,
  head: boolean,
  bookmarks: HttpBookmarks,
  incoming: Bookmark,
  answer: Bookmark,
): Response {
  return entryResponse(
    b,
    e,
    ifNoneMatch,
    head,
    answer.isEmpty ? "" : answer.toString(),
    answer.isEmpty ? undefined : bookmarks.setCookie(incoming, answer),
  );
}

/** The routes of one key, over the shared pipeline. */
export function keyRoutes(p: Pipeline): Hono {
  const app = new Hono();
  app.get(KEY, p.measure(p.metrics.route("GET", KEY)), ...p.readGuards, function getKey(c) {
    return readKey(p.bucketOf(c), p.keyOf(c), c.req.raw, c.req.method === "HEAD", p.bookmarks);
  });
  app.put(KEY, p.measure(p.metrics.route("PUT", KEY)), ...p.writeGuards, putKey(p));
  app.delete(KEY, p.measure(p.metrics.route("DELETE", KEY)), ...p.writeGuards, deleteKey(p));
  app.all(
    KEY,
    p.measure(p.metrics.route("OTHER", KEY)),
    methodNotAllowed("GET, HEAD, PUT, DELETE"),
  );
  return app;
}

/** A PUT as its request asks it: the value and the preconditions from its headers and query. */
interface PutRequest {
  key: string;
  value: unknown;
  /** `If-None-Match: *`: the key must not exist. */
  createOnly: boolean;
  /** `If-Match`: the revisions the key must have. */
  ifMatch: IfMatch | undefined;
  /** `?ttl=`: the key's TTL. */
  setOptions: SetOptions;
}

/** `PUT`: 201 with a `Location` when it created the key, else 200. */
function putKey(p: Pipeline): (c: Context) => Promise<Response> {
  return async function putKey(c) {
    const b = p.bucketOf(c);
    const w = p.writerOf(b);
    const key = p.keyOf(c);
    const incoming = p.bookmarks.of(c.req.raw);
    const { createOnly, ifMatch, setOptions } = putPreconditions(c);
    const value = b.decode(
      await readBodyCapped(c.req.raw, p.limits.maxBodyBytes),
      p.limits.maxJsonDepth,
    );
    const { revision, created } = await writePut({ bucket: b, writer: w }, {
      key,
      value,
      createOnly,
      ifMatch,
      setOptions,
    });
    const headers: Record<string, string> = {
      etag: formatEtag(revision),
      ...p.bookmarks.record(incoming, p.bookmarks.answer(b, incoming, revision)),
    };
    if (created) {
      headers.location = `/v1/buckets/${b.name}/keys/${encodeURIComponent(key)}`;
    }
    return c.json({ key, revision }, created ? 201 : 200, headers);
  };
}

/** A PUT's `If-None-Match`, `If-Match` and `?ttl=`, checked against each other. */
function putPreconditions(c: Context): Pick<PutRequest, "createOnly" | "ifMatch" | "setOptions"> {
  const ifMatchHeader = c.req.raw.headers.get("if-match");
  const ifNoneMatchHeader = c.req.raw.headers.get("if-none-match");
  let createOnly = false;
  if (ifNoneMatchHeader !== null) {
    if (parseEntityTags(ifNoneMatchHeader) !== "*") {
      throw new HttpProblem(
        "bad_request",
        'a PUT supports only "If-None-Match: *" (create only)',
      );
    }
    createOnly = true;
  }
  const ifMatch = ifMatchHeader === null ? undefined : parseIfMatch(ifMatchHeader);
  // ?ttl=<seconds>: per-key TTL (nats-server 2.11+, a bucket with limit markers).
  const ttlText = c.req.query("ttl");
  if (ttlText !== undefined && (!/^[1-9]\d{0,8}$/.test(ttlText) || ifMatch !== undefined)) {
    throw new HttpProblem(
      "bad_request",
      "ttl must be a whole number of seconds (1 or more), on a PUT without If-Match",
    );
  }
  const setOptions = ttlText === undefined ? {} : { ttlMs: Number(ttlText) * 1000 };
  if (createOnly && ifMatch !== undefined) {
    // "must exist" and "must not exist" at once can never hold.
    throw new HttpProblem("precondition_failed", "If-Match and If-None-Match: * contradict");
  }
  return { createOnly, ifMatch, setOptions };
}

/** Writes `put` to the bucket's writer as its preconditions say; whether it created the key. */
async function writePut(
  to: { bucket: ServedBucket; writer: Cache<unknown> },
  put: PutRequest,
): Promise<{ revision: number; created: boolean }> {
  const { bucket: b, writer: w } = to;
  const { key, value, setOptions } = put;
  if (put.createOnly) return { revision: await createOrConflict(w, put), created: true };
  if (put.ifMatch !== undefined) {
    const expected = await expectedRevision(b, { key, ifMatch: put.ifMatch });
    return { revision: await w.update(key, value, expected), created: false };
  }
  // Try create first so a new key answers 201; a conflict means it exists.
  // (Not peek() first: that would count every write as a cache hit.)
  try {
    return { revision: await w.create(key, value, setOptions), created: true };
  } catch (err) {
    if (!(err instanceof ConflictError)) throw err;
    return { revision: await w.set(key, value, setOptions), created: false };
  }
}

/** `If-None-Match: *`: creates the key, or answers 412 when it exists. */
async function createOrConflict(w: Cache<unknown>, put: PutRequest): Promise<number> {
  try {
    return await w.create(put.key, put.value, put.setOptions);
  } catch (err) {
    if (err instanceof ConflictError) {
      throw new HttpProblem("precondition_failed", "the key already exists", { cause: err });
    }
    throw err;
  }
}

/** `DELETE`: a delete marker, or `?purge=true` to drop the key's history too. */
function deleteKey(p: Pipeline): (c: Context) => Promise<Response> {
  return async function deleteKey(c) {
    const b = p.bucketOf(c);
    const w = p.writerOf(b);
    const key = p.keyOf(c);
    const incoming = p.bookmarks.of(c.req.raw);
    const purge = c.req.query("purge");
    if (purge !== undefined && purge !== "true" && purge !== "false") {
      throw new HttpProblem("bad_request", 'purge must be "true" or "false"');
    }
    const ifMatchHeader = c.req.raw.headers.get("if-match");
    const opts = ifMatchHeader === null ? {} : {
      expectedRevision: await expectedRevision(b, { key, ifMatch: parseIfMatch(ifMatchHeader) }),
    };
    const revision = purge === "true" ? await w.purge(key, opts) : await w.delete(key, opts);
    const answer = p.bookmarks.answer(b, incoming, revision);
    return c.json({ key, revision }, 200, p.bookmarks.record(incoming, answer));
  };
}

/** What `If-Match` asks. */
type IfMatch = ReturnType<typeof parseIfMatch>;

/** The revision a conditional write of `key` must find, from `If-Match`. */
async function expectedRevision(
  b: ServedBucket,
  { key, ifMatch }: { key: string; ifMatch: IfMatch },
): Promise<number> {
  const fail = () => new HttpProblem("precondition_failed", "If-Match does not match the key");
  if (!ifMatch.any && ifMatch.revisions.length === 1) return ifMatch.revisions[0]!;
  if (!ifMatch.any && ifMatch.revisions.length === 0) throw fail();
  // `*` or several tags: read the current revision, then let the
  // compare-and-set on it make the check atomic.
  const current = await b.cache.getEntry(key);
  if (current === undefined) throw fail();
  if (!ifMatch.any && !ifMatch.revisions.includes(current.revision)) throw fail();
  return current.revision;
}
