/**
 * The fan-out of changes (src/broadcast.ts): every reader gets every value in
 * order, a slow reader overflows alone, and readers end on close, abort or
 * return. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Broadcast } from "../../src/broadcast.ts";
import { OverflowError } from "../../src/errors.ts";

/** Reads `n` values from `it`. */
async function take<T>(it: AsyncIterator<T>, n: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    assert.equal(r.done, false, `ended after ${i} values`);
    out.push(r.value);
  }
  return out;
}

Deno.test("broadcast: every reader gets every later value, in order", async () => {
  const b = new Broadcast<number>();
  assert.equal(b.active, false);
  b.emit(0); // nobody listens: dropped
  const one = b.iterate();
  const two = b.iterate();
  assert.equal(b.active, true);
  for (let i = 1; i <= 5; i++) b.emit(i);
  assert.deepEqual(await take(one, 5), [1, 2, 3, 4, 5]);
  assert.deepEqual(await take(two, 5), [1, 2, 3, 4, 5]);
  // A reader waiting for a value gets it as soon as it is emitted.
  const pending = one.next();
  b.emit(6);
  assert.deepEqual(await pending, { value: 6, done: false });
});

Deno.test("broadcast: a reader past its buffer fails alone with OverflowError", async () => {
  const b = new Broadcast<number>();
  const slow = b.iterate({ bufferSize: 3, action: "watch keys" });
  const fast = b.iterate({ bufferSize: 3 });
  for (let i = 1; i <= 3; i++) {
    b.emit(i);
    assert.equal((await fast.next()).value, i);
  }
  b.emit(4); // the 4th unread value overflows `slow`
  // The values it held are still delivered, then the overflow.
  assert.deepEqual(await take(slow, 3), [1, 2, 3]);
  await assert.rejects(slow.next(), (e: unknown) => {
    assert.ok(e instanceof OverflowError);
    assert.match(e.message, /watch keys/);
    assert.match(e.message, /3/);
    return true;
  });
  assert.deepEqual(await slow.next(), { value: undefined, done: true });
  assert.equal((await fast.next()).value, 4, "the other reader is untouched");
  b.emit(5);
  assert.equal((await fast.next()).value, 5);
});

Deno.test("broadcast: the buffer bound is exact, not approximate", async () => {
  const b = new Broadcast<number>();
  const it = b.iterate({ bufferSize: 2000 });
  for (let i = 0; i < 2000; i++) b.emit(i);
  assert.equal((await take(it, 1500)).at(-1), 1499); // the queue compacts past 1024
  for (let i = 2000; i < 3500; i++) b.emit(i);
  const rest = await take(it, 2000);
  assert.deepEqual([rest[0], rest.at(-1)], [1500, 3499]);
});

Deno.test("broadcast: close ends waiting and later readers", async () => {
  const b = new Broadcast<string>();
  const it = b.iterate();
  b.emit("a");
  const [a] = await take(it, 1);
  assert.equal(a, "a");
  const waiting = it.next();
  b.close();
  assert.deepEqual(await waiting, { value: undefined, done: true });
  assert.equal(b.active, false);
  const late = b.iterate();
  assert.deepEqual(await late.next(), { value: undefined, done: true });
});

Deno.test("broadcast: abort and return() detach one reader", async () => {
  const b = new Broadcast<number>();
  const ctl = new AbortController();
  const aborted = b.iterate({ signal: ctl.signal });
  const returned = b.iterate();
  const kept = b.iterate();
  const waiting = aborted.next();
  ctl.abort();
  assert.deepEqual(await waiting, { value: undefined, done: true });
  await returned.return!();
  b.emit(1);
  assert.deepEqual(await returned.next(), { value: undefined, done: true });
  assert.equal((await kept.next()).value, 1);
  const pre = b.iterate({ signal: AbortSignal.abort() });
  assert.deepEqual(await pre.next(), { value: undefined, done: true });
  // for await ... break detaches too.
  b.emit(2);
  for await (const v of kept) {
    assert.equal(v, 2);
    break;
  }
  assert.equal(b.active, false);
});
