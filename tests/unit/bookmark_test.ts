import assert from "node:assert/strict";
import { Bookmark, BOOKMARK_MAX_BUCKETS, BOOKMARK_MAX_LENGTH, BookmarkError } from "../../mod.ts";

const refused = (text: string) =>
  assert.throws(
    () => Bookmark.parse(text),
    (e: unknown) => e instanceof BookmarkError && e.code === "BAD_BOOKMARK",
    JSON.stringify(text.slice(0, 60)),
  );

Deno.test("bookmarks: the text form, bounds and merging (rule 8)", async (t) => {
  await t.step("parse and format round-trip, buckets sorted, spaces allowed", () => {
    const b = Bookmark.parse(" users:99 , cfg:1234 ");
    assert.equal(b.toString(), "cfg:1234,users:99");
    assert.equal(String(Bookmark.parse(b.toString())), "cfg:1234,users:99");
    assert.equal(b.revision("users"), 99);
    assert.equal(b.revision("other"), 0);
    assert.deepEqual(b.buckets(), ["cfg", "users"]);
    assert.equal(JSON.stringify({ b }), '{"b":"cfg:1234,users:99"}');
    assert.ok(Bookmark.parse("").isEmpty);
    assert.equal(Bookmark.parse(`a:${Number.MAX_SAFE_INTEGER}`).revision("a"), 2 ** 53 - 1);
  });

  await t.step("malformed or unbounded text is BAD_BOOKMARK", () => {
    for (
      const text of [
        "users",
        "users:",
        ":5",
        "users:0",
        "users:-1",
        "users:1.5",
        "users:1e3",
        "users:01",
        "users: 7",
        "us ers:7",
        "a.b:7",
        "users:9007199254740993",
        "users:99999999999999999",
        "users:1,users:2",
        "users:1,",
        Array.from({ length: BOOKMARK_MAX_BUCKETS + 1 }, (_, i) => `b${i}:1`).join(","),
        // Six valid items of 201 characters: over the length bound only.
        Array.from({ length: 6 }, (_, i) => `${"b".repeat(198)}${i}:1`).join(","),
      ]
    ) refused(text);
    assert.ok(
      Array.from({ length: 6 }, (_, i) => `${"b".repeat(198)}${i}:1`).join(",").length >
        BOOKMARK_MAX_LENGTH,
    );
    // At the bounds: accepted.
    Bookmark.parse(Array.from({ length: BOOKMARK_MAX_BUCKETS }, (_, i) => `b${i}:1`).join(","));
  });

  await t.step("with and merge keep the higher revision per bucket; coveredBy compares", () => {
    const a = Bookmark.of("users", 5).with("cfg", 2);
    assert.equal(a.with("users", 3), a, "a lower revision changes nothing");
    assert.equal(a.with("users", 0), a);
    assert.equal(a.with("users", 8).revision("users"), 8);
    const m = a.merge(Bookmark.parse("users:4,cfg:9,x:1"));
    assert.equal(m.toString(), "cfg:9,users:5,x:1");
    assert.ok(a.coveredBy(m));
    assert.ok(!m.coveredBy(a));
    assert.equal(Bookmark.EMPTY.merge(a), a);
    assert.throws(() => a.with("users", -1), RangeError);
    assert.throws(() => a.with("users", 1.5), RangeError);
    assert.throws(() => a.with("bad name", 1), TypeError);
  });
});
