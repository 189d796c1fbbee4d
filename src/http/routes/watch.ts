/**
 * `GET /v1/buckets/:bucket/watch`: a bucket's changes as Server-Sent Events,
 * resumable with `Last-Event-ID`, or started after a `KV-Bookmark`'s revision
 * of the bucket (rule 8), bounded per stream and in number.
 *
 * @module
 */
import { Hono } from "hono";
import { BookmarkError } from "../../errors.ts";
import { stringifyJson } from "../../json_text.ts";
import { methodNotAllowed } from "../pipeline.ts";
import type { Pipeline } from "../pipeline.ts";
import { checkPrefix, filterForPrefix } from "../prefix.ts";
import { HttpProblem } from "../problem.ts";
import { sseStream } from "../sse.ts";
import type { SseEvent } from "../sse.ts";

/** The watch route, over the shared pipeline. */
export function watchRoutes(p: Pipeline): Hono {
  const app = new Hono();
  const { maxSseStreams, heartbeatMs, sseRetryMs, sseBufferSize, sseBufferBytes } = p.limits;
  const shutdownSignal = p.shutdownSignal;
  const WATCH = "/v1/buckets/:bucket/watch";
  const measured = p.measure(p.metrics.route("GET", WATCH));
  app.get(WATCH, measured, ...p.readGuards, async function watch(c) {
    const b = p.bucketOf(c);
    const incoming = p.bookmarks.of(c.req.raw);
    const prefix = checkPrefix(c.req.query("prefix"));
    const lastEventId = c.req.raw.headers.get("last-event-id");
    let fromRevision: number | undefined;
    if (lastEventId !== null && lastEventId.trim() !== "") {
      const id = lastEventId.trim();
      if (!/^[0-9]{1,16}$/.test(id) || !Number.isSafeInteger(Number(id))) {
        throw new HttpProblem("bad_request", "Last-Event-ID must be a revision number");
      }
      fromRevision = Number(id) + 1;
    } else if (incoming.revision(b.name) > 0) {
      // The changes after what the client has seen; a revision far beyond
      // the bucket's is refused now (400 bookmark_ahead), not waited for.
      const rev = incoming.revision(b.name);
      await b.cache.ready({ atLeast: rev, timeoutMs: 250 }).catch((err) => {
        if (err instanceof BookmarkError && err.code === "BOOKMARK_AHEAD") throw err;
        // Not applied here yet: the replay reads the stream itself.
      });
      fromRevision = rev + 1;
    }
    if (p.metrics.sse.open >= maxSseStreams) {
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
    const release = fromRevision === undefined
      ? undefined
      : p.admit(p.replays, c.req.raw, c.env, "replays", "replaying watch streams");

    const filter = filterForPrefix(prefix);
    const cache = b.cache;
    async function* changes(signal: AbortSignal): AsyncIterable<SseEvent> {
      const it = cache.changes({
        ...(fromRevision === undefined ? {} : { fromRevision }),
        ...(filter === ">" ? {} : { filter }),
        signal,
        bufferSize: sseBufferSize,
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
    }
    p.metrics.sse.open++;
    const body = sseStream(changes, {
      heartbeatMs,
      retryMs: sseRetryMs,
      bufferSize: sseBufferSize,
      bufferBytes: sseBufferBytes,
      ...(shutdownSignal === undefined ? {} : { shutdownSignal }),
      onClose(reason) {
        release?.();
        p.onStreamEnd?.({ bucket: b.name, reason });
        p.metrics.sse.open--;
        p.metrics.sseStreams.delete(body);
        if (reason === "slow_client") p.metrics.sse.slowClients++;
      },
    });
    p.metrics.sseStreams.add(body);
    return new Response(body, { status: 200, headers });
  });
  app.all(WATCH, p.measure(p.metrics.route("OTHER", WATCH)), methodNotAllowed("GET, HEAD"));

  return app;
}
