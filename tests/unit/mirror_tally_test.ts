/**
 * `MirrorTally`: messages a regional mirror holds that the watcher never
 * delivered. The deliveries are replayed as the torture checker's seed
 * 8019905 saw them on nats-server 2.9.10 (a lazy edge opened on an empty
 * mirror; after a WAN cut shorter than `maxSilenceMs` the mirror stored
 * sequences 13 and 14 first, then 2..12 below them); the server cannot be
 * made to do that on purpose, so the counting is checked here without one.
 */
import assert from "node:assert/strict";
import { MirrorTally } from "../../src/mirror_tally.ts";

/** A consumer from a sequence on, started when the stream held `messages`. */
function fromSeq(messages: number): MirrorTally {
  const t = new MirrorTally();
  t.readBefore(messages);
  t.opened(true);
  return t;
}

Deno.test("a mirror that stores its backlog below the watcher's position is counted", () => {
  const t = fromSeq(0); // opened on the empty mirror
  // The cut: the mirror still empty, the watcher at 0.
  assert.equal(t.unseen(t.mark(0), { messages: 0, last_seq: 0 }), 0);
  t.delivered(); // 13: k0 PURGE
  t.delivered(); // 14: k4 PUT
  // Then 2..12 land below 14: the stream holds 12, the watcher saw 2.
  assert.equal(t.unseen(t.mark(14), { messages: 12, last_seq: 14 }), 10);
});

Deno.test("one message filled in late among many delivered is counted", () => {
  // The same seed in another replay: everything but sequence 12 came in order.
  const t = fromSeq(0);
  for (let i = 0; i < 11; i++) t.delivered();
  assert.equal(t.unseen(t.mark(14), { messages: 12, last_seq: 14 }), 1);
});

Deno.test("messages that leave the stream are not taken for late ones", () => {
  // 12 held at the start, 3 delivered, then a rollup purge and the history limit removed 6.
  const t = fromSeq(12);
  t.delivered();
  t.delivered();
  t.delivered();
  assert.equal(t.unseen(t.mark(15), { messages: 9, last_seq: 15 }), 0);
  assert.equal(t.unseen(t.mark(15), { messages: 15, last_seq: 15 }), 0);
});

Deno.test("a read the watcher had not caught up with when it began is not judged", () => {
  const t = fromSeq(0);
  t.delivered();
  // The stream is at 5, the watcher at 1 when the read began: 2..5 are still to come.
  assert.equal(t.unseen(t.mark(1), { messages: 5, last_seq: 5 }), 0);
  // Deliveries during a read only make it more lenient.
  const mark = t.mark(5);
  for (let i = 0; i < 4; i++) t.delivered();
  assert.equal(t.unseen(mark, { messages: 5, last_seq: 5 }), 0);
});

Deno.test("a read begun under a replaced consumer is not judged", () => {
  const t = fromSeq(0);
  const mark = t.mark(14);
  t.readBefore(12);
  t.opened(true);
  assert.equal(t.unseen(mark, { messages: 12, last_seq: 14 }), 0);
  // The new consumer counts from what was read before it started.
  assert.equal(t.unseen(t.mark(14), { messages: 12, last_seq: 14 }), 0);
  assert.equal(t.unseen(t.mark(14), { messages: 13, last_seq: 14 }), 1);
});

Deno.test("after a snapshot start the first judged read is the base", () => {
  // A snapshot delivers the last message per key only: superseded ones it
  // skips are not late. The first read once the watcher passed the stream's
  // last sequence sets the count; what is stored below later is counted.
  const t = new MirrorTally();
  t.readBefore(1);
  t.opened(false);
  t.delivered(); // k0@1
  t.delivered(); // k1@3 (k1@2 superseded, never delivered)
  assert.equal(t.unseen(t.mark(3), { messages: 3, last_seq: 3 }), 0);
  t.delivered(); // k2@5
  assert.equal(t.unseen(t.mark(5), { messages: 4, last_seq: 5 }), 0);
  assert.equal(t.unseen(t.mark(5), { messages: 5, last_seq: 5 }), 1); // 4 stored below 5
});
