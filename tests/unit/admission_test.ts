/** `Admission` (src/http/admission.ts): the caps on costly work, in total and per client. */
import assert from "node:assert/strict";
import { Admission } from "../../src/http/admission.ts";

Deno.test("admission: caps work in total and per client, and gives places back once", () => {
  const a = new Admission(3, 2);
  const x1 = a.enter("x");
  const x2 = a.enter("x");
  assert.equal(typeof x1, "function");
  assert.equal(typeof x2, "function");
  assert.equal(a.enter("x"), "client", "a third for one client");
  const anon = a.enter(undefined);
  assert.equal(typeof anon, "function", "an unknown client counts in the total only");
  assert.equal(a.enter("y"), "total");
  assert.deepEqual({ ...a.refused }, { total: 1, client: 1 });
  assert.equal(a.open, 3);
  (x1 as () => void)();
  (x1 as () => void)(); // twice: given back once
  assert.equal(a.open, 2);
  assert.equal(typeof a.enter("x"), "function", "x has a place again");
  assert.equal(a.enter("z"), "total", "the total is checked first");
});
