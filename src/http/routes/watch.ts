/**
 * `GET /v1/buckets/:bucket/watch`: a bucket's changes as Server-Sent Events,
 * resumable with `Last-Event-ID`, or started after a `KV-Bookmark`'s revision
 * of the bucket (rule 8), bounded per stream and in number.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { Bookmark } from "../../bookmark.ts";
import { BookmarkError } from "../../errors.ts";
import { stringifyJson } from "../../json_text.ts";
import { methodNotAllowed } from "../pipeline.ts";
import type { Pipeline } from "../pipeline.ts";
import { checkPrefix, filterForPrefix } from "../prefix.ts";
import { HttpProblem } from "../problem.ts";
import type { ServedBucket } from "../served_bucket.ts";
import { sseStream } from "../sse.ts";
import type { SseEvent } from "../sse.ts";

/** The watch route, over the shared pipeline. */
export function watchRoutes(p: Pipeline): Hono {
  const app = new Hono();
  const WATCH = "/v1/buckets/:bucket/watch";
  app.get(WATCH, p.measure(p.metrics.route("GET", WATCH)), ...p.readGuards, watch(p));
  app.all(WATCH, p.measure(p.metrics.route("OTHER", WATCH)), methodNotAllowed("GET, HEAD"));
  return app;
}

/** `GET …/watch`: the stream's start checked, then the stream (HEAD: its headers only). */
function watch(p: Pipeline): (c: Context) => Promise<Response> {
  return async function watch(c) {
    const b = p.bucketOf(c);
    const incoming = p.bookmarks.of(c.req.raw);
    const prefix = checkPrefix(c.req.query("prefix"));
    const fromRevision = await startRevision(c, { bucket: b, incoming });
    if (p.metrics.sse.open >= p.limits.maxSseStreams) {
      p.metrics.sse.refused++;
      throw new HttpProblem("too_many_streams", "too many open watch streams; retry later", {
        headers: { "retry-after": "5" },
      });
    }
    const headers = {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache",
      "x-accel-buffering": "no",
    };
    if (c.req.method === "HEAD") return new Response(null, { status: 200, headers });
    // A replay runs its own consumer from that revision for the stream's
    // whole life: capped in total and per client, released when it ends.
    const release = fromRevision === undefined ? undefined : p.admit(c.req.raw, {
      admission: p.replays,
      env: c.env,
      bound: "replays",
      what: "replaying watch streams",
    });
    const changes = watchEvents(b, { prefix, fromRevision, bufferSize: p.limits.sseBufferSize });
    const body = openStream(p, { bucket: b, changes, release });
    return new Response(body, { status: 200, headers });
  };
}

/**
 * The revision the stream starts at: after `Last-Event-ID`, else after the
 * bookmark's revision of the bucket, else `undefined` (from now on).
 */
async function startRevision(
  c: Context,
  { bucket: b, incoming }: { bucket: ServedBucket; incoming: Bookmark },
): Promise<number | undefined> {
  const lastEventId = c.req.raw.headers.get("last-event-id");
  if (lastEventId !== null && lastEventId.trim() !== "") {
    const id = lastEventId.trim();
    if (!/^[0-9]{1,16}$/.test(id) || !Number.isSafeInteger(Number(id))) {
      throw new HttpProblem("bad_request", "Last-Event-ID must be a revision number");
    }
    return Number(id) + 1;
  }
  const rev = incoming.revision(b.name);
  if (rev <= 0) return undefined;
  // The changes after what the client has seen; a revision far beyond
  // the bucket's is refused now (400 bookmark_ahead), not waited for.
  await b.cache.ready({ atLeast: rev, timeoutMs: 250 }).catch((err) => {
    if (err instanceof BookmarkError && err.code === "BOOKMARK_AHEAD") throw err;
    // Not applied here yet: the replay reads the stream itself.
  });
  return rev + 1;
}

/** What a stream shows: keys with `prefix`, from `fromRevision` (or now). */
interface WatchQuery {
  prefix: string;
  fromRevision: number | undefined;
  /** Changes buffered for the stream before it counts as slow. */
  bufferSize: number;
}

/** The bucket's changes that `query` selects, as SSE events. */
function watchEvents(
  b: ServedBucket,
  query: WatchQuery,
): (signal: AbortSignal) => AsyncIterable<SseEvent> {
  const { prefix, fromRevision, bufferSize } = query;
  const filter = filterForPrefix(prefix);
  const cache = b.cache;
  return async function* changes(signal: AbortSignal): AsyncIterable<SseEvent> {
    const it = cache.changes({
      ...(fromRevision === undefined ? {} : { fromRevision }),
      ...(filter === ">" ? {} : { filter }),
      signal,
      bufferSize,
    });
    for await (const ch of it) {
      if (prefix !== "" && !ch.key.startsWith(prefix)) continue;
      yield {
        event: ch.operation.toLowerCase(),
        id: String(ch.revision),
        data: stringifyJson({
          key: ch.key,
          revision: ch.revision,
          operation: ch.operation,
          createdMs: ch.createdMs,
          ...(ch.operation === "PUT" && ch.value !== undefined ? b.jsonValue(ch.value) : {}),
        }),
      };
    }
  };
}

/** A stream about to open: its bucket, its events, and the admission to release at its end. */
interface OpeningStream {
  bucket: ServedBucket;
  changes: (signal: AbortSignal) => AsyncIterable<SseEvent>;
  release: (() => void) | undefined;
}

/** The SSE body of `s`, counted open until it closes (then released and reported). */
function openStream(p: Pipeline, s: OpeningStream): ReadableStream<Uint8Array> {
  const { heartbeatMs, sseRetryMs, sseBufferSize, sseBufferBytes } = p.limits;
  const shutdownSignal = p.shutdownSignal;
  p.metrics.sse.open++;
  const body = sseStream(s.changes, {
    heartbeatMs,
    retryMs: sseRetryMs,
    bufferSize: sseBufferSize,
    bufferBytes: sseBufferBytes,
    ...(shutdownSignal === undefined ? {} : { shutdownSignal }),
    onClose(reason) {
      s.release?.();
      p.onStreamEnd?.({ bucket: s.bucket.name, reason });
      p.metrics.sse.open--;
      p.metrics.sseStreams.delete(body);
      if (reason === "slow_client") p.metrics.sse.slowClients++;
    },
  });
  p.metrics.sseStreams.add(body);
  return body;
}
