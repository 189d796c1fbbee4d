/**
 * Server-Sent Events (src/http/sse.ts): the event syntax (multi-line data,
 * ids, no forged fields) and the stream's ends (source end, source error,
 * slow client, client cancel, shutdown). Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  formatSseEvent,
  queuedBytes,
  type SseCloseReason,
  type SseEvent,
  sseStream,
  type SseStreamOptions,
} from "../../src/http/sse.ts";

const HOUR = 3_600_000; // heartbeats never fire during these tests

Deno.test("sse: an event is event, id and one data line per line of data", () => {
  assert.equal(formatSseEvent({ data: "x" }), "data: x\n\n");
  assert.equal(
    formatSseEvent({ event: "put", id: "42", data: "{}" }),
    "event: put\nid: 42\ndata: {}\n\n",
  );
  assert.equal(formatSseEvent({ data: "" }), "data: \n\n");
  assert.equal(
    formatSseEvent({ data: "one\ntwo\r\nthree\rfour" }),
    "data: one\ndata: two\ndata: three\ndata: four\n\n",
  );
  assert.equal(formatSseEvent({ data: "a\n" }), "data: a\ndata: \n\n");
});

Deno.test("sse: CR, LF and NUL cannot forge fields through event or id", () => {
  assert.equal(
    formatSseEvent({ event: "put\ndata: forged", id: "7\r\nevent: x\0", data: "d" }),
    "event: putdata: forged\nid: 7event: x\ndata: d\n\n",
  );
});

/** Runs a stream to its end and returns its text and close reason. */
function collect(
  source: (signal: AbortSignal) => AsyncIterable<SseEvent>,
  options: Partial<SseStreamOptions> = {},
): { body: ReadableStream<Uint8Array>; closed: Promise<[SseCloseReason, unknown]> } {
  let done!: (r: [SseCloseReason, unknown]) => void;
  const closed = new Promise<[SseCloseReason, unknown]>((r) => done = r);
  const body = sseStream(source, {
    heartbeatMs: HOUR,
    retryMs: 2_500.9,
    bufferSize: 64,
    ...options,
    onClose: (reason, error) => done([reason, error]),
  });
  return { body, closed };
}

Deno.test("sse: the stream sends retry first, then the events, and ends with the source", async () => {
  async function* three() {
    yield { event: "put", id: "1", data: "a" };
    yield { id: "2", data: "b\nc" };
    yield { event: "delete", id: "3", data: "" };
  }
  const { body, closed } = collect(() => three());
  const text = await new Response(body).text();
  assert.equal(
    text,
    "retry: 2500\n\n" +
      "event: put\nid: 1\ndata: a\n\n" +
      "id: 2\ndata: b\ndata: c\n\n" +
      "event: delete\nid: 3\ndata: \n\n",
  );
  assert.deepEqual(await closed, ["source_end", undefined]);
});

Deno.test("sse: a failing source ends the stream with source_error and its error", async () => {
  const boom = new Error("boom");
  async function* failing() {
    yield { data: "a" };
    throw boom;
  }
  const { body, closed } = collect(() => failing());
  assert.equal(await new Response(body).text(), "retry: 2500\n\ndata: a\n\n");
  assert.deepEqual(await closed, ["source_error", boom]);
});

Deno.test("sse: a client that does not read is cut off once its queue is full", async () => {
  let produced = 0;
  async function* endless(signal: AbortSignal) {
    while (!signal.aborted) {
      produced++;
      yield { data: String(produced) };
    }
  }
  const { body, closed } = collect(endless, { bufferSize: 4 });
  const [reason] = await closed;
  assert.equal(reason, "slow_client");
  assert.ok(produced <= 5, `the source was stopped, not drained: ${produced} events`);
  // The queued chunks are dropped: the reader sees an error, not the backlog.
  await assert.rejects(new Response(body).text(), /slow client/);
  assert.equal(queuedBytes(body), 0);
});

Deno.test("sse: the byte bound cuts off a client that holds large values", async () => {
  async function* big() {
    for (let i = 0; i < 100; i++) yield { data: "x".repeat(1000) };
  }
  const { body, closed } = collect(() => big(), { bufferSize: 1000, bufferBytes: 4096 });
  assert.equal((await closed)[0], "slow_client");
  await assert.rejects(new Response(body).text(), /slow client/);
});

Deno.test("sse: a client that cancels ends the stream and stops the source", async () => {
  let sourceSignal: AbortSignal | undefined;
  let release!: () => void;
  const never = new Promise<void>((r) => release = r);
  async function* waiting(signal: AbortSignal) {
    sourceSignal = signal;
    yield { data: "first" };
    await never;
  }
  const { body, closed } = collect(waiting);
  const reader = body.getReader();
  const dec = new TextDecoder();
  let seen = "";
  while (!seen.includes("first")) seen += dec.decode((await reader.read()).value);
  await reader.cancel();
  assert.deepEqual(await closed, ["client", undefined]);
  assert.equal(sourceSignal?.aborted, true);
  release();
});

Deno.test("sse: shutdown ends the stream cleanly, even when already aborted", async () => {
  const ctl = new AbortController();
  let release!: () => void;
  const never = new Promise<void>((r) => release = r);
  async function* waiting() {
    yield { data: "a" };
    await never;
  }
  const { body, closed } = collect(() => waiting(), { shutdownSignal: ctl.signal });
  const reader = body.getReader();
  await reader.read();
  ctl.abort();
  assert.equal((await closed)[0], "shutdown");
  release();

  const late = collect(() => waiting(), { shutdownSignal: AbortSignal.abort() });
  assert.equal(await new Response(late.body).text(), "retry: 2500\n\n");
  assert.equal((await late.closed)[0], "shutdown");
});
