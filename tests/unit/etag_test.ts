/**
 * Entity tags (src/http/etag.ts): the ETag of a revision, entity-tag lists,
 * weak `If-None-Match` and strong `If-Match` comparison. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { formatEtag, ifNoneMatchHits, parseEntityTags, parseIfMatch } from "../../src/http/etag.ts";
import { HttpProblem } from "../../src/http/problem.ts";

Deno.test("etag: a revision's ETag is the quoted revision", () => {
  assert.equal(formatEtag(7), '"7"');
  assert.equal(formatEtag(9007199254740991), '"9007199254740991"');
});

Deno.test("etag: entity-tag lists parse weak and strong tags, '*' and whitespace", () => {
  assert.equal(parseEntityTags("*"), "*");
  assert.equal(parseEntityTags("  *\t"), "*");
  assert.deepEqual(parseEntityTags('"3"'), [{ weak: false, tag: "3" }]);
  assert.deepEqual(parseEntityTags('"3", W/"4" ,\t"x y"'), [
    { weak: false, tag: "3" },
    { weak: true, tag: "4" },
    { weak: false, tag: "x y" },
  ]);
  assert.deepEqual(parseEntityTags('"",,'), [{ weak: false, tag: "" }]);
  assert.deepEqual(parseEntityTags(""), []);
});

Deno.test("etag: malformed entity-tag lists are undefined", () => {
  for (const h of ["3", '"3', "W/3", '"3" "4"', '"3"x', 'w/"3"', '"3", *', "**"]) {
    assert.equal(parseEntityTags(h), undefined, h);
  }
});

Deno.test("etag: If-None-Match compares weakly", () => {
  const etag = formatEtag(7);
  assert.equal(ifNoneMatchHits('"7"', etag), true);
  assert.equal(ifNoneMatchHits('W/"7"', etag), true, "weak comparison: W/ matches");
  assert.equal(ifNoneMatchHits('"1", W/"7"', etag), true);
  assert.equal(ifNoneMatchHits("*", etag), true);
  assert.equal(ifNoneMatchHits('"8"', etag), false);
  assert.equal(ifNoneMatchHits('"70"', etag), false);
  assert.equal(ifNoneMatchHits('"7', etag), false, "a malformed header never matches");
  assert.equal(ifNoneMatchHits('"7" junk', etag), false);
});

Deno.test("etag: If-Match compares strongly and keeps only revisions", () => {
  assert.deepEqual(parseIfMatch("*"), { any: true });
  assert.deepEqual(parseIfMatch('"5"'), { any: false, revisions: [5] });
  assert.deepEqual(parseIfMatch('"5", "6"'), { any: false, revisions: [5, 6] });
  // Weak tags never match a strong comparison; nor do tags that are not revisions.
  assert.deepEqual(parseIfMatch('W/"5"'), { any: false, revisions: [] });
  for (const tag of ['"0"', '"-1"', '"05"', '"1.5"', '"abc"', '""', '"99999999999999999"']) {
    assert.deepEqual(parseIfMatch(tag), { any: false, revisions: [] }, tag);
  }
  assert.deepEqual(parseIfMatch('W/"5", "abc", "9"'), { any: false, revisions: [9] });
});

Deno.test("etag: a malformed If-Match is a bad_request problem", () => {
  for (const h of ["5", '"5', '"5" "6"']) {
    assert.throws(() => parseIfMatch(h), (e: unknown) => {
      assert.ok(e instanceof HttpProblem);
      assert.equal(e.code, "bad_request");
      assert.equal(e.status, 400);
      return true;
    }, h);
  }
});
