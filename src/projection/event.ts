/**
 * A source message as a projection's `map()` sees it: a frozen
 * {@link ProjectionEvent} with the key and operation of a KV source, and
 * lazy JSON and text decoding.
 *
 * @module
 */
import type { JsMsg } from "@nats-io/jetstream";
import { operationOf } from "../kv_layout.ts";
import type { Operation } from "../types.ts";
import type { ProjectionEvent } from "./types.ts";

const decoder = new TextDecoder();

/** The {@link ProjectionEvent} of a source message; `kvPrefix` is set when the source is a KV bucket. */
export function toEvent(m: JsMsg, kvPrefix: string | undefined): ProjectionEvent {
  const key = kvPrefix !== undefined ? m.subject.slice(kvPrefix.length) : undefined;
  let operation: Operation = "PUT";
  if (kvPrefix !== undefined) {
    operation = operationOf(m.headers);
  }
  const data = m.data;
  return Object.freeze({
    seq: m.seq,
    subject: m.subject,
    key,
    operation,
    data,
    timestampMs: Math.floor(m.info.timestampNanos / 1_000_000),
    redelivered: m.redelivered,
    header: (name: string) => m.headers?.get(name) || undefined,
    json: <T = unknown>(): T => JSON.parse(decoder.decode(data)) as T,
    string: () => decoder.decode(data),
  });
}

/**
 * Keeps the server from redelivering the event of `m` while this runner is
 * still on it: a "working" signal every third of `ackWaitMs` (at least every
 * 250 ms). Clear the returned timer when done.
 *
 * @example
 * ```ts ignore
 * const keepAlive = keepWorking(m, 30_000);
 * try { await apply(m); } finally { clearInterval(keepAlive); }
 * ```
 */
export function keepWorking(m: JsMsg, ackWaitMs: number): ReturnType<typeof setInterval> {
  return setInterval(() => {
    try {
      m.working();
    } catch {
      // Disconnected: the runner's retry loop reports it.
    }
  }, Math.max(250, Math.floor(ackWaitMs / 3)));
}
