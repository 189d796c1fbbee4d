import assert from "node:assert/strict";
import { type Told, TOLD_RING, ToldRing } from "../../src/cache/told.ts";

Deno.test("ToldRing keeps the last TOLD_RING changes told, newest first into a map", () => {
  const ring = new ToldRing();
  const none = new Map<number, Told>();
  ring.addTo(none);
  assert.equal(none.size, 0, "nothing told, nothing kept");
  for (let rev = 1; rev <= TOLD_RING + 6; rev++) {
    ring.record(rev, { key: `k${rev % 7}`, created: 1000 + rev, deleted: rev % 5 === 0 });
  }
  const told = new Map<number, Told>([[TOLD_RING + 6, {
    key: "kept",
    created: 0,
    deleted: false,
  }]]);
  ring.addTo(told);
  assert.equal(told.size, TOLD_RING);
  assert.equal(told.has(6), false, "the oldest were overwritten");
  assert.deepEqual(told.get(TOLD_RING + 5), {
    key: `k${(TOLD_RING + 5) % 7}`,
    created: 1000 + TOLD_RING + 5,
    deleted: (TOLD_RING + 5) % 5 === 0,
  });
  assert.deepEqual(told.get(7), { key: "k0", created: 1007, deleted: false });
  assert.deepEqual(told.get(10), { key: "k3", created: 1010, deleted: true });
  assert.equal(told.get(TOLD_RING + 6)?.key, "kept", "an entry already in the map stays");
  ring.clear();
  const after = new Map<number, Told>();
  ring.addTo(after);
  assert.equal(after.size, 0);
});
