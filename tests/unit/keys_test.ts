/**
 * The key grammar (src/keys.ts): keys, key filters, bucket names and filter
 * matching. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  assertFilter,
  assertKey,
  bucketProblem,
  filterProblem,
  keyProblem,
  matchesFilter,
  MAX_KEY_LENGTH,
} from "../../src/keys.ts";
import { KeyError } from "../../src/errors.ts";

Deno.test("keys: valid keys have no problem", () => {
  for (const key of ["a", "user.7", "a-b_c=d/e", "A.B.C", "0", "x".repeat(MAX_KEY_LENGTH)]) {
    assert.equal(keyProblem(key), undefined, key);
  }
});

Deno.test("keys: invalid keys are refused with the reason", () => {
  const cases: [unknown, RegExp][] = [
    [7, /must be a string/],
    [undefined, /must be a string/],
    ["", /must not be empty/],
    ["x".repeat(MAX_KEY_LENGTH + 1), /at most 512 characters, got 513/],
    ["a b", /may only contain/],
    ["a*", /may only contain/],
    ["a>", /may only contain/],
    ["ключ", /may only contain/],
    ["a\nb", /may only contain/],
    [".a", /start or end with '\.'/],
    ["a.", /start or end with '\.'/],
    ["a..b", /empty token/],
  ];
  for (const [key, why] of cases) {
    assert.match(keyProblem(key) ?? "(valid)", why, String(key));
  }
});

Deno.test("keys: assertKey throws a KeyError naming the action and the key", () => {
  assert.doesNotThrow(() => assertKey("ok.key", "get"));
  assert.throws(() => assertKey("a..b", "get"), (e: unknown) => {
    assert.ok(e instanceof KeyError);
    assert.equal(e.code, "BAD_KEY");
    assert.match(e.message, /^Cannot get: a key must not contain an empty token/);
    assert.equal(e.key, "a..b");
    return true;
  });
  // A huge key is named, truncated, in the error.
  assert.throws(() => assertKey("!".repeat(1000), "set"), (e: unknown) => {
    assert.ok(e instanceof KeyError);
    assert.equal(e.key, "!".repeat(128) + "…");
    return true;
  });
});

Deno.test("keys: filters accept whole-token wildcards and a final '>'", () => {
  for (const f of [">", "*", "user.*", "user.>", "*.x.>", "a.b"]) {
    assert.equal(filterProblem(f), undefined, f);
  }
  const cases: [unknown, RegExp][] = [
    [1, /must be a string/],
    ["", /1 to 512 characters/],
    ["a b", /may only contain/],
    ["us*r", /whole tokens/],
    ["a.>x", /whole tokens/],
    [">.a", /'>' must be the last token/],
    ["a..b", /empty token/],
    [".a", /empty token/],
  ];
  for (const [f, why] of cases) assert.match(filterProblem(f) ?? "(valid)", why, String(f));
  assert.throws(
    () => assertFilter("a.>.b", "follow"),
    (e: unknown) => e instanceof KeyError && /^Cannot follow: '>' must be the last/.test(e.message),
  );
});

Deno.test("keys: bucket names are letters, digits, '-' and '_' up to 200", () => {
  assert.equal(bucketProblem("orders_v2-eu"), undefined);
  assert.equal(bucketProblem("b".repeat(200)), undefined);
  assert.match(bucketProblem("") ?? "", /non-empty/);
  assert.match(bucketProblem(null) ?? "", /non-empty/);
  assert.match(bucketProblem("b".repeat(201)) ?? "", /at most 200/);
  assert.match(bucketProblem("a.b") ?? "", /may only contain/);
  assert.match(bucketProblem("a b") ?? "", /may only contain/);
});

Deno.test("keys: matchesFilter follows NATS subject matching", () => {
  const yes: [string, string][] = [
    [">", "a"],
    [">", "a.b.c"],
    ["a", "a"],
    ["a.*", "a.b"],
    ["*.b", "a.b"],
    ["a.>", "a.b"],
    ["a.>", "a.b.c"],
    ["*.*.c", "x.y.c"],
  ];
  const no: [string, string][] = [
    ["a", "ab"],
    ["a", "a.b"],
    ["a.*", "a"],
    ["a.*", "a.b.c"],
    ["a.>", "a"],
    ["*.b", "a.c"],
    ["a.b", "a.c"],
    ["*.*.c", "x.c"],
  ];
  for (const [f, k] of yes) assert.equal(matchesFilter(f, k), true, `${f} ~ ${k}`);
  for (const [f, k] of no) assert.equal(matchesFilter(f, k), false, `${f} !~ ${k}`);
});
