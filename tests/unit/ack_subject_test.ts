/**
 * `AckSubject` (src/ack_subject.ts) against nats.js's own reading of an ack
 * reply subject (`parseInfo` of `@nats-io/jetstream`, what `JsMsg.info`
 * returns): v1 (9 tokens), v2 with and without its random token, domain `_`
 * or a name, sequences up to 2⁵³ and nanosecond timestamps of 19 digits.
 * Starts no server.
 */
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import fc from "fast-check";
import { AckSubject } from "../../src/ack_subject.ts";

interface DeliveryInfo {
  domain: string;
  stream: string;
  consumer: string;
  deliveryCount: number;
  streamSequence: number;
  deliverySequence: number;
  timestampNanos: number;
  pending: number;
}

// parseInfo is not among the package's exports: load it from the file next to its entry point.
const require = createRequire(import.meta.url);
const { parseInfo } = require(
  require.resolve("@nats-io/jetstream").replace(/mod\.js$/, "jsmsg.js"),
) as { parseInfo: (reply: string) => DeliveryInfo };
// nats.js's message class, as its parser makes one: `_msg` holds the subjects' bytes.
const { MsgImpl } = require(
  require.resolve("@nats-io/nats-core").replace(/mod\.js$/, "msg.js"),
) as { MsgImpl: new (m: unknown, data: Uint8Array, publisher: unknown) => { reply: string } };
const enc = new TextEncoder();

/** A message of nats.js's own class carrying `reply`, and whether its getter decoded it. */
function natsMsg(reply: string): { msg: { reply: string }; decoded: () => boolean } {
  const msg = new MsgImpl(
    { subject: enc.encode("$KV.b.k"), reply: enc.encode(reply), sid: 1, hdr: -1, size: 0 },
    new Uint8Array(0),
    undefined,
  );
  return { msg, decoded: () => (msg as unknown as { _reply?: string })._reply !== undefined };
}

/** The four numbers as the fields hold them. */
const numbers = (a: AckSubject) => [a.streamSeq, a.consumerSeq, a.timestampMs, a.pending];

const name = fc.stringMatching(/^[A-Za-z0-9_-]{1,20}$/);
const count = fc.oneof(fc.nat(1000), fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }));
/** Nanoseconds since the epoch, as the server writes them (up to 19 digits), or small ones. */
const nanos = fc.oneof(
  fc.bigInt({ min: 1_000_000_000_000_000_000n, max: 9_999_999_999_999_999_999n }),
  fc.bigInt({ min: 0n, max: 10_000_000n }),
);

const subject = fc.record({
  layout: fc.constantFrom("v1", "v2", "v2 random"),
  domain: fc.oneof(fc.constant("_"), name),
  hash: name,
  stream: name.map((s) => `KV_${s}`),
  consumer: name,
  delivered: fc.integer({ min: 1, max: 9 }),
  sseq: count,
  cseq: count,
  ts: nanos,
  pending: count,
  random: name,
}).map((p) => {
  const numbers = `${p.delivered}.${p.sseq}.${p.cseq}.${p.ts}.${p.pending}`;
  const reply = p.layout === "v1"
    ? `$JS.ACK.${p.stream}.${p.consumer}.${numbers}`
    : `$JS.ACK.${p.domain}.${p.hash}.${p.stream}.${p.consumer}.${numbers}` +
      (p.layout === "v2 random" ? `.${p.random}` : "");
  return { reply, ts: p.ts };
});

Deno.test("reads every layout as nats.js's parseInfo does", () => {
  const ack = new AckSubject();
  fc.assert(
    fc.property(subject, ({ reply, ts }) => {
      const info = parseInfo(reply);
      ack.read(reply);
      assert.equal(ack.streamSeq, info.streamSequence, reply);
      assert.equal(ack.consumerSeq, info.deliverySequence, reply);
      assert.equal(ack.pending, info.pending, reply);
      // Exact: the nanoseconds' integer division (parseInfo's double is 256 ns coarse at 10¹⁸).
      assert.equal(ack.timestampMs, Number(ts / 1_000_000n), reply);
      assert.ok(Math.abs(ack.timestampMs - Math.floor(info.timestampNanos / 1e6)) <= 1, reply);
      const read = numbers(ack);
      ack.readBytes(enc.encode(reply));
      assert.deepEqual(numbers(ack), read, `bytes of ${reply}`);
      const { msg, decoded } = natsMsg(reply);
      assert.equal(ack.readReply(msg), true);
      assert.deepEqual(numbers(ack), read, `nats.js message of ${reply}`);
      assert.equal(decoded(), false, "the reply's bytes are read where nats.js keeps them");
    }),
    { numRuns: 2000 },
  );
});

Deno.test("the layouts the server sends, written out", () => {
  const ack = new AckSubject();
  const cases: [string, number, number, number, number][] = [
    ["$JS.ACK.KV_users.kvedge_x.1.42.7.1733000000123456789.3", 42, 7, 1733000000123, 3],
    ["$JS.ACK._.HASH.KV_users.kvedge_x.1.42.7.1733000000123456789.3", 42, 7, 1733000000123, 3],
    ["$JS.ACK._.HASH.KV_users.kvedge_x.2.42.7.1733000000999999999.0.Zq9", 42, 7, 1733000000999, 0],
    ["$JS.ACK.hub.HASH.KV_users.kvedge_x.1.9007199254740991.1.1000000.5", 2 ** 53 - 1, 1, 1, 5],
  ];
  for (const [reply, sseq, cseq, ms, pending] of cases) {
    ack.read(reply);
    assert.deepEqual(numbers(ack), [sseq, cseq, ms, pending], reply);
    ack.readBytes(enc.encode(reply));
    assert.deepEqual(numbers(ack), [sseq, cseq, ms, pending], `bytes of ${reply}`);
  }
});

Deno.test("a subject that is not an ack reads NaN, as Number() of its tokens did", () => {
  const ack = new AckSubject();
  ack.read("$JS.ACK.KV_users.c.1.x7.3.1733000000123456789.3");
  assert.ok(Number.isNaN(ack.streamSeq));
  assert.equal(ack.consumerSeq, 3);
  ack.read("_INBOX.abc");
  assert.ok(Number.isNaN(ack.streamSeq) && Number.isNaN(ack.consumerSeq));
  assert.ok(Number.isNaN(ack.timestampMs) && Number.isNaN(ack.pending));
  ack.read("$JS.ACK.KV_users.c.1.5.6.17330000001234x6789.3");
  assert.ok(Number.isNaN(ack.timestampMs), "a bad digit among the nanoseconds");
  ack.readBytes(enc.encode("$JS.ACK.KV_users.c.1.5.6.17330000001234x6789.3"));
  assert.ok(Number.isNaN(ack.timestampMs), "a bad digit among the nanoseconds' bytes");
  ack.readBytes(enc.encode("_INBOX.abc"));
  assert.ok(numbers(ack).every(Number.isNaN));
});

Deno.test("a message with no reply subject is not read", () => {
  const ack = new AckSubject();
  assert.equal(ack.readReply({ reply: "" }), false);
  assert.equal(ack.readReply(natsMsg("").msg), false);
  // A message of another client (no `_msg`): its reply string.
  assert.equal(ack.readReply({ reply: "$JS.ACK.KV_a.c.1.42.7.1733000000123456789.3" }), true);
  assert.deepEqual(numbers(ack), [42, 7, 1733000000123, 3]);
});
