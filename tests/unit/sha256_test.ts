import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { sha256, timingSafeEqual } from "../../src/http/sha256.ts";

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

Deno.test("sha256() agrees with node:crypto on every length across block boundaries", () => {
  assert.equal(
    hex(sha256("abc")),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
  assert.equal(
    hex(sha256("")),
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
  );
  for (let length = 0; length <= 300; length++) {
    const input = new Uint8Array(randomBytes(length));
    assert.equal(
      hex(sha256(input)),
      createHash("sha256").update(input).digest("hex"),
      `length ${length}`,
    );
  }
  const token = "tökén-ü\u{1F511}";
  assert.equal(hex(sha256(token)), createHash("sha256").update(token).digest("hex"));
});

Deno.test("timingSafeEqual() tells equal from unequal arrays, including lengths", () => {
  assert.equal(timingSafeEqual(sha256("a"), sha256("a")), true);
  assert.equal(timingSafeEqual(sha256("a"), sha256("b")), false);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2]), new Uint8Array([1, 2, 0])), false);
  assert.equal(timingSafeEqual(new Uint8Array([1, 2, 3]), new Uint8Array([1, 2, 4])), false);
  assert.equal(timingSafeEqual(new Uint8Array(0), new Uint8Array(0)), true);
});
