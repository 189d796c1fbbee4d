/**
 * Single flight (src/single_flight.ts): concurrent callers of one key share
 * one execution, its value and its error; the next call after it settles
 * starts afresh. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { SingleFlight } from "../../src/single_flight.ts";

/** A promise settled by hand. */
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
}

Deno.test("single flight: concurrent calls of one key share one execution", async () => {
  const sf = new SingleFlight<string, number>();
  const d = deferred<number>();
  let calls = 0;
  const fn = () => {
    calls++;
    return d.promise;
  };
  const all = Promise.all([sf.run("k", fn), sf.run("k", fn), sf.run("k", fn)]);
  assert.equal(calls, 1);
  d.resolve(7);
  assert.deepEqual(await all, [7, 7, 7]);
});

Deno.test("single flight: different keys run separately", async () => {
  const sf = new SingleFlight<string, string>();
  const calls: string[] = [];
  const fn = (k: string) => () => {
    calls.push(k);
    return Promise.resolve(k.toUpperCase());
  };
  assert.deepEqual(await Promise.all([sf.run("a", fn("a")), sf.run("b", fn("b"))]), ["A", "B"]);
  assert.deepEqual(calls, ["a", "b"]);
});

Deno.test("single flight: an error reaches every waiting caller", async () => {
  const sf = new SingleFlight<string, number>();
  const d = deferred<number>();
  let calls = 0;
  const fn = () => {
    calls++;
    return d.promise;
  };
  const a = sf.run("k", fn);
  const b = sf.run("k", fn);
  const boom = new Error("origin down");
  d.reject(boom);
  await assert.rejects(a, (e) => e === boom);
  await assert.rejects(b, (e) => e === boom);
  assert.equal(calls, 1);
});

Deno.test("single flight: after a call settles, the next one starts afresh", async () => {
  const sf = new SingleFlight<string, number>();
  let calls = 0;
  await assert.rejects(sf.run("k", () => Promise.reject(new Error(`fail ${++calls}`))), /fail 1/);
  assert.equal(await sf.run("k", () => Promise.resolve(++calls)), 2);
  assert.equal(await sf.run("k", () => Promise.resolve(++calls)), 3);
});
