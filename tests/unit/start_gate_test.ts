import assert from "node:assert/strict";
import { StartGate } from "../../src/cache/start_gate.ts";

Deno.test("a start is pending until it settles, either way; a newer start is not settled by an older one", async () => {
  const gate = new StartGate();
  assert.equal(gate.pending, undefined);
  const first = Promise.withResolvers<void>();
  gate.set(first.promise);
  assert.equal(gate.pending, first.promise);
  const second = Promise.withResolvers<void>();
  gate.set(second.promise);
  first.resolve();
  await first.promise;
  await Promise.resolve();
  assert.equal(gate.pending, second.promise, "the older start settled, not the current one");
  second.reject(new Error("attach failed"));
  await second.promise.catch(() => {});
  await Promise.resolve();
  assert.equal(gate.pending, undefined, "a failed start is settled too");
  assert.equal(gate.promise, second.promise);
  gate.clear();
  assert.equal(gate.promise, undefined);
});
