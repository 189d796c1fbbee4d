/**
 * JSON text of any depth (src/json_text.ts): the depth scan that refuses
 * deep documents before parsing, and the stringify that survives V8's stack
 * limit. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { jsonDepth, stringifyJson } from "../../src/json_text.ts";

const enc = new TextEncoder();

Deno.test("json_text: depth counts brackets outside strings only", () => {
  assert.equal(jsonDepth(enc.encode("1"), 64), 0);
  assert.equal(jsonDepth(enc.encode('"[[[["'), 64), 0);
  assert.equal(jsonDepth(enc.encode("[]"), 64), 1);
  assert.equal(jsonDepth(enc.encode('{"a":[1,"[["]}'), 64), 2);
  assert.equal(jsonDepth(enc.encode('[[1],[[2]],{"k":{}}]'), 64), 3);
  // An escaped quote does not end the string; an escaped backslash does not escape the quote.
  assert.equal(jsonDepth(enc.encode('["\\"[[", [1]]'), 64), 2);
  assert.equal(jsonDepth(enc.encode('["\\\\", [[1]]]'), 64), 3);
});

Deno.test("json_text: the scan stops at the first depth past the limit", () => {
  const deep = enc.encode("[".repeat(1_000_000));
  assert.equal(jsonDepth(deep, 64), 65);
  assert.equal(jsonDepth(enc.encode("[[[]]]"), 3), 3);
  assert.equal(jsonDepth(enc.encode("[[[[]]]]"), 3), 4);
});

Deno.test("json_text: stringify matches JSON.stringify where V8 copes", () => {
  const values: unknown[] = [
    null,
    1.5,
    'x"y\n',
    [1, "a", null, [true]],
    { a: 1, b: { c: [1, { d: "e" }] }, "1": 2 },
    [undefined, () => 1],
    { skip: undefined, f: () => 1, keep: 0 },
    { d: new Date(0) },
  ];
  for (const v of values) assert.equal(stringifyJson(v), JSON.stringify(v));
});

Deno.test("json_text: stringify of a value too deep for V8 gives the same text", () => {
  let v: unknown = { "1": "leaf", x: [1, undefined], f: () => 1 };
  let want = '{"1":"leaf","x":[1,null]}';
  for (let i = 0; i < 100_000; i++) {
    if (i % 2) {
      v = { "1": v, s: undefined };
      want = '{"1":' + want + "}";
    } else {
      v = [v, null];
      want = "[" + want + ",null]";
    }
  }
  assert.throws(() => JSON.stringify(v), RangeError);
  assert.equal(stringifyJson(v), want);
});
