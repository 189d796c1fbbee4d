/**
 * Server-Sent Events streaming with the safety rails an edge needs: a
 * `retry:` hint, `: hb` heartbeat comments, a bounded queue per client (a
 * client that reads too slowly is disconnected instead of buffering without
 * limit), and an end on client abort or server shutdown.
 *
 * A client that goes away is noticed through the body stream's `cancel()`,
 * which `Deno.serve` calls when the connection drops. `request.signal` is not
 * used: in Deno 2.9 merely reading it prints a warning about its legacy
 * behaviour (it also aborts after every successful response).
 *
 * The queue is the response stream's own: the source is drained as fast as
 * it produces and each event is enqueued without waiting for the client, so
 * a stalled client shows up as a full queue, not as a stalled source. The
 * queue is bounded in chunks and in bytes: a client that stops reading while
 * large values stream past holds at most `bufferBytes` (plus one chunk).
 *
 * @module
 */

/** One event of a stream. */
export interface SseEvent {
  /** The `event:` field (event type), e.g. `put`. */
  event?: string;
  /** The `id:` field, echoed back by clients as `Last-Event-ID`. */
  id?: string;
  /** The `data:` payload; newlines are split into several `data:` lines. */
  data: string;
}

/** Why a stream ended. */
export type SseCloseReason =
  /** The client went away (cancelled the body or aborted the request). */
  | "client"
  /** The client's queue was full: it read too slowly. */
  | "slow_client"
  /** The source ended. */
  | "source_end"
  /** The source failed (the client should reconnect with `Last-Event-ID`). */
  | "source_error"
  /** The server is shutting down. */
  | "shutdown";

/** Options of {@link sseStream}. */
export interface SseStreamOptions {
  /** Interval of `: hb` comments, in ms. Positive. */
  heartbeatMs: number;
  /** Reconnection delay sent as `retry:`, in ms. Non-negative. */
  retryMs: number;
  /**
   * Most chunks (events or heartbeats) queued for a client that has not read
   * them; one more disconnects it. Positive.
   */
  bufferSize: number;
  /**
   * Most bytes queued for a client that has not read them; one more chunk
   * disconnects it. Every chunk counts at least `bufferBytes / bufferSize`,
   * which is how one queue keeps both bounds. Default: no byte bound.
   */
  bufferBytes?: number;
  /** Aborted on server shutdown: the stream ends cleanly. */
  shutdownSignal?: AbortSignal;
  /** Called once when the stream ends, with the reason. */
  onClose?: (reason: SseCloseReason, error?: unknown) => void;
}

/** Source of events; must stop when `signal` aborts. */
export type SseSource = (signal: AbortSignal) => AsyncIterable<SseEvent>;

const encoder = new TextEncoder();

/** How much each open stream holds queued, by stream. */
const queued = new WeakMap<ReadableStream<Uint8Array>, () => number>();

/**
 * The bytes a stream made by {@link sseStream} holds queued for its client
 * now (each chunk counted at least `bufferBytes / bufferSize`); 0 for others
 * and once it ended.
 *
 * @example
 * ```ts
 * import { queuedBytes, sseStream } from "./sse.ts";
 * async function* none() {}
 * const body = sseStream(() => none(), { heartbeatMs: 15_000, retryMs: 2_000, bufferSize: 64 });
 * console.log(queuedBytes(body) >= 0); // true
 * ```
 */
export function queuedBytes(stream: ReadableStream<Uint8Array>): number {
  return queued.get(stream)?.() ?? 0;
}

/**
 * Formats one event in the `text/event-stream` syntax.
 *
 * @example
 * ```ts
 * import { formatSseEvent } from "./sse.ts";
 * console.log(formatSseEvent({ event: "put", id: "3", data: "{}" })); // "event: put\nid: 3\ndata: {}\n\n"
 * ```
 */
export function formatSseEvent(e: SseEvent): string {
  let s = "";
  // A CR or LF inside a field would end it early and let data forge fields.
  if (e.event !== undefined) s += "event: " + e.event.replace(/[\r\n]/g, "") + "\n";
  if (e.id !== undefined) s += "id: " + e.id.replace(/[\r\n\0]/g, "") + "\n";
  for (const line of e.data.split(/\r\n|\r|\n/)) s += "data: " + line + "\n";
  return s + "\n";
}

/**
 * A `text/event-stream` body fed by `source`. The stream starts with a
 * `retry:` field, sends `: hb` every `heartbeatMs`, and ends (calling
 * `onClose` once) when the client cancels, the source ends or fails, the
 * queue overflows, or `shutdownSignal` aborts.
 *
 * @example
 * ```ts
 * import { sseStream } from "./sse.ts";
 * async function* ticks() {
 *   yield { id: "1", data: "one" };
 * }
 * const body = sseStream(() => ticks(), { heartbeatMs: 15_000, retryMs: 2_000, bufferSize: 64 });
 * console.log(await new Response(body).text());
 * ```
 */
export function sseStream(
  source: SseSource,
  options: SseStreamOptions,
): ReadableStream<Uint8Array> {
  const stop = new AbortController();
  let controller!: ReadableStreamDefaultController<Uint8Array>;
  let closed = false;
  let timer: ReturnType<typeof setInterval> | undefined;

  const onShutdown = () => finish("shutdown");

  function finish(reason: SseCloseReason, error?: unknown): void {
    if (closed) return;
    closed = true;
    if (timer !== undefined) clearInterval(timer);
    options.shutdownSignal?.removeEventListener("abort", onShutdown);
    stop.abort();
    try {
      if (reason === "slow_client") {
        // Erroring drops the queued chunks at once: the memory is the point.
        controller.error(new Error("slow client"));
      } else if (reason !== "client") {
        controller.close();
      }
    } catch {
      // Already closed or errored by the consumer side.
    }
    options.onClose?.(reason, error);
  }

  function push(text: string): boolean {
    if (closed) return false;
    const room = controller.desiredSize;
    if (room !== null && room <= 0) {
      finish("slow_client");
      return false;
    }
    controller.enqueue(encoder.encode(text));
    return true;
  }

  async function pump(): Promise<void> {
    try {
      for await (const event of source(stop.signal)) {
        if (!push(formatSseEvent(event))) break;
      }
      finish("source_end");
    } catch (err) {
      finish(stop.signal.aborted ? "client" : "source_error", err);
    }
  }

  // One strategy for both bounds: the high-water mark is in bytes and a chunk
  // weighs at least bytes/count, so no more than bufferSize chunks fit.
  const hwm = options.bufferBytes ?? Number.MAX_SAFE_INTEGER;
  const minWeight = options.bufferBytes === undefined
    ? 1
    : Math.max(1, Math.ceil(options.bufferBytes / options.bufferSize));
  const strategy: QueuingStrategy<Uint8Array> = options.bufferBytes === undefined
    ? new CountQueuingStrategy({ highWaterMark: options.bufferSize })
    : { highWaterMark: hwm, size: (chunk) => Math.max(minWeight, chunk.byteLength) };
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      controller = c;
      push(`retry: ${Math.floor(options.retryMs)}\n\n`);
      if (options.shutdownSignal?.aborted) return finish("shutdown");
      options.shutdownSignal?.addEventListener("abort", onShutdown, { once: true });
      timer = setInterval(() => push(": hb\n\n"), options.heartbeatMs);
      void pump();
    },
    cancel() {
      finish("client");
    },
  }, strategy);
  if (options.bufferBytes !== undefined) {
    queued.set(stream, () => (closed ? 0 : Math.max(0, hwm - (controller.desiredSize ?? hwm))));
  }
  return stream;
}
