/**
 * The local store's compact representation: values kept encoded (ASCII text
 * or bytes) until first read, exact byte accounting, growth, TTL expiry and
 * the index-based hit path. The model-based test of its LRU and revision
 * rules is in property_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalStore } from "../../src/local_store.ts";
import { Applied, SlotFlag } from "../../src/slot.ts";
import { ENTRY_OVERHEAD_BYTES } from "../../src/types.ts";

const enc = new TextEncoder();

Deno.test("local store: encoded values come back byte for byte, whatever they hold", async (t) => {
  const cases: [string, Uint8Array][] = [
    ["ascii json", enc.encode('{"a":1,"b":"text"}')],
    ["utf-8", enc.encode('{"name":"Zoë 🚀"}')],
    ["invalid utf-8", new Uint8Array([0x80, 0xff, 0x41, 0xc3])],
    ["binary with a BOM", new Uint8Array([0xef, 0xbb, 0xbf, 0x7b, 0x7d])],
    ["empty", new Uint8Array(0)],
    ["nul bytes", new Uint8Array([0, 0, 0])],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, () => {
      const store = new LocalStore({ maxBytes: 10_000 });
      const buffer = new Uint8Array(bytes.length + 4);
      buffer.set(bytes, 2);
      const view = buffer.subarray(2, 2 + bytes.length);
      assert.equal(store.put("k", 3, 1000, view), Applied.Stored);
      buffer.fill(0x55); // the caller reuses its buffer: the store kept a copy
      const slot = store.peek("k")!;
      assert.deepEqual([...slot.raw!], [...bytes]);
      assert.equal(slot.deleted, false);
      assert.equal(slot.size, 1 + bytes.length + ENTRY_OVERHEAD_BYTES);
      assert.equal(store.bytes, slot.size);
      const i = store.find("k");
      assert.notEqual(store.flagsAt(i) & SlotFlag.Raw, 0);
      assert.deepEqual([...store.rawAt(i)!], [...bytes]);
    });
  }
});

Deno.test("local store: ASCII values are held as text, others as bytes", () => {
  const store = new LocalStore({ maxItems: 10 });
  store.put("text", 1, 0, enc.encode('{"x":1}'));
  store.put("utf8", 2, 0, enc.encode('"é"'));
  assert.equal(store.flagsAt(store.find("text")), SlotFlag.RawText);
  assert.equal(store.valueAt(store.find("text")), '{"x":1}');
  assert.equal(store.flagsAt(store.find("utf8")), SlotFlag.RawBytes);
});

Deno.test("local store: a decoded value replaces the encoded one at the same revision only", () => {
  const store = new LocalStore({ maxItems: 10 });
  store.put("k", 5, 0, enc.encode("1"));
  store.decoded("k", 4, "wrong revision");
  assert.equal(store.flagsAt(store.find("k")), SlotFlag.RawText);
  store.decoded("k", 5, 1);
  const i = store.find("k");
  assert.equal(store.flagsAt(i), 0);
  assert.equal(store.valueAt(i), 1);
  assert.equal(store.peek("k")!.raw, undefined);
  assert.equal(store.peek("k")!.value, 1);
  // A second decode report does not undo the first.
  store.decoded("k", 5, 2);
  assert.equal(store.valueAt(store.find("k")), 1);
  // Rejected: a tombstone from then on, size and revision unchanged.
  store.put("bad", 7, 0, enc.encode("{"));
  const size = store.peek("bad")!.size;
  store.rejected("bad", 7, new Error("not JSON"));
  const bad = store.peek("bad")!;
  assert.equal(bad.deleted, true);
  assert.equal((bad.rejected as Error).message, "not JSON");
  assert.equal(bad.rev, 7);
  assert.equal(bad.size, size);
});

Deno.test("local store: bytes are counted exactly across replace, evict, delete and clear", () => {
  const store = new LocalStore({ maxBytes: 100 * (ENTRY_OVERHEAD_BYTES + 20) });
  const sum = () => {
    let n = 0;
    for (const [, s] of store.entries()) n += s.size;
    return n;
  };
  for (let i = 0; i < 5_000; i++) {
    const key = `k${i % 300}`;
    const len = i % 17;
    if (i % 11 === 0) store.put(key, i + 1, 0, undefined);
    else if (i % 13 === 0) {
      store.putValue(key, { rev: i + 1, created: 0, value: { i }, encodedBytes: len });
    } else if (i % 29 === 0) store.delete(key);
    else store.put(key, i + 1, 0, i % 2 ? enc.encode("x".repeat(len)) : new Uint8Array(len));
    assert.equal(store.bytes, sum(), `step ${i}`);
    assert.ok(store.bytes <= 100 * (ENTRY_OVERHEAD_BYTES + 20));
  }
  assert.ok(store.evictions > 0);
  store.clear();
  assert.equal(store.bytes, 0);
  assert.equal(store.size, 0);
  store.put("again", 1, 0, enc.encode("v"));
  assert.equal(store.bytes, 5 + 1 + ENTRY_OVERHEAD_BYTES);
});

Deno.test("local store: grows past its initial capacity and keeps LRU order", () => {
  const n = 5_000;
  const store = new LocalStore({ maxItems: n });
  for (let i = 0; i < n; i++) store.put(`k${i}`, i + 1, 0, enc.encode(`${i}`));
  assert.equal(store.size, n);
  store.find("k0"); // most recently used now
  store.put("extra", n + 1, 0, enc.encode("x")); // evicts k1, the least recently used
  assert.equal(store.has("k1"), false);
  assert.equal(store.has("k0"), true);
  assert.equal(store.evictions, 1);
  const order = [...store.entries()].map(([k]) => k);
  assert.deepEqual(order.slice(0, 3), ["extra", "k0", `k${n - 1}`]);
  assert.equal(order.length, n);
  let seen = 0;
  store.forEach((key, rev, _created, flags, value) => {
    if (key === "k0") {
      assert.equal(rev, 1);
      assert.equal(flags, SlotFlag.RawText);
      assert.equal(value, "0");
    }
    seen++;
  });
  assert.equal(seen, n);
});

Deno.test("local store: a slot past its TTL is gone from every read and reported once", async () => {
  const removed: string[] = [];
  const store = new LocalStore({
    maxItems: 10,
    maxTtlMs: 20,
    onRemove: (key, _s, reason) => removed.push(`${key}:${reason}`),
  });
  store.put("k", 1, Date.now(), enc.encode("v"));
  assert.equal(store.has("k"), true);
  const until = Date.now() + 10_000;
  while (store.has("k") && Date.now() < until) await new Promise((r) => setTimeout(r, 5));
  assert.equal(store.has("k"), false);
  assert.equal(store.peek("k"), undefined);
  assert.deepEqual([...store.entries()].map(([k]) => k).includes("k"), false);
  assert.equal(store.find("k"), -1); // removes it
  assert.deepEqual(removed, ["k:expire"]);
  assert.equal(store.evictions, 0);
  // A newer revision over an expired slot is stored.
  assert.equal(store.put("k", 1, Date.now(), enc.encode("w")), Applied.Stored);
});

Deno.test("local store: a refused value keeps its bytes and is no tombstone to drop", () => {
  const store = new LocalStore({ maxItems: 10 });
  const bytes = new TextEncoder().encode('"not a number"');
  store.put("bad", 3, 1000, bytes);
  store.put("gone", 4, 1000, undefined); // a tombstone
  const why = new Error("schema: expected number");
  store.rejected("bad", 3, why);
  assert.equal(store.peek("bad")?.rejected, why);
  assert.equal(store.peek("bad")?.deleted, true);
  assert.equal(store.dropTombstones(10), 1, "only the real tombstone is dropped");
  assert.equal(store.peek("gone"), undefined);
  assert.equal(store.peek("bad")?.rejected, why, "the refused value still answers refused");
  // Its encoded value stays, for a snapshot to save.
  const seen: unknown[] = [];
  store.forEach((key, rev, _created, flags, value) => seen.push([key, rev, flags, value]));
  assert.deepEqual(seen, [[
    "bad",
    3,
    SlotFlag.Deleted | SlotFlag.Rejected,
    { reason: why, encoded: '"not a number"' },
  ]]);
});

Deno.test("local store: negative slots take at most maxNegativeShare, values stay", async (t) => {
  await t.step("by items: the oldest negative goes, never a value", () => {
    const removed: string[] = [];
    const store = new LocalStore({
      maxItems: 100,
      maxNegativeShare: 0.1,
      onRemove: (k) => removed.push(k),
    });
    for (let i = 0; i < 50; i++) store.put(`v${i}`, i + 1, 1, enc.encode("1"));
    for (let i = 0; i < 500; i++) store.put(`n${i}`, 0, 1, undefined);
    assert.equal(store.negatives, 10);
    assert.equal(store.size, 60);
    assert.equal(store.negativeEvictions, 490);
    assert.equal(store.evictions, 0, "negative drops are not evictions");
    assert.deepEqual(removed, [], "and not reported as evictions (a replica would overflow)");
    for (let i = 0; i < 50; i++) assert.ok(store.has(`v${i}`));
    for (let i = 490; i < 500; i++) assert.ok(store.has(`n${i}`), "the newest negatives stay");
    // A negative replaced by a value, and a tombstone with a revision, are no negatives.
    store.put("n499", 7, 1, enc.encode("2"));
    store.put("gone", 9, 1, undefined);
    assert.equal(store.negatives, 9);
    store.delete("n498");
    assert.equal(store.negatives, 8);
    store.clear();
    assert.equal(store.negatives, 0);
  });

  await t.step("by bytes: long never-written keys cannot crowd out values", () => {
    const store = new LocalStore({ maxBytes: 100_000, maxNegativeShare: 0.2 });
    for (let i = 0; i < 50; i++) store.put(`v${i}`, i + 1, 1, new Uint8Array(1_000));
    for (let i = 0; i < 500; i++) store.put(`n${i}.${"x".repeat(400)}`, 0, 1, undefined);
    assert.ok(store.negatives * (400 + ENTRY_OVERHEAD_BYTES) <= 20_000, `${store.negatives}`);
    for (let i = 0; i < 50; i++) assert.ok(store.has(`v${i}`));
    assert.equal(store.evictions, 0);
  });

  await t.step("the default share (1) bounds them by maxItems alone", () => {
    const store = new LocalStore({ maxItems: 10 });
    for (let i = 0; i < 5; i++) store.put(`v${i}`, i + 1, 1, enc.encode("1"));
    for (let i = 0; i < 20; i++) store.put(`n${i}`, 0, 1, undefined);
    assert.equal(store.evictions, 15);
    assert.equal(store.negativeEvictions, 0);
  });

  await t.step("a share outside (0, 1] is a RangeError", () => {
    for (const share of [0, -1, 1.5, NaN]) {
      assert.throws(() => new LocalStore({ maxItems: 1, maxNegativeShare: share }), RangeError);
    }
  });
});

Deno.test("property: the negative bound keeps its count exact and never drops a value", async () => {
  const { default: fc } = await import("fast-check");
  const seed = Number(Deno.env.get("KVEDGE_FC_SEED") ?? Date.now() % 2 ** 31);
  console.log(`  seed ${seed} (replay: KVEDGE_FC_SEED=${seed})`);
  const key = fc.constantFrom(...Array.from({ length: 12 }, (_, i) => `k${i}`));
  const op = fc.oneof(
    fc.record({ op: fc.constant("value" as const), key, rev: fc.integer({ min: 1, max: 50 }) }),
    fc.record({ op: fc.constant("negative" as const), key }),
    fc.record({ op: fc.constant("tombstone" as const), key, rev: fc.integer({ min: 1, max: 50 }) }),
    fc.record({ op: fc.constant("loaded" as const), key }),
    fc.record({ op: fc.constant("delete" as const), key }),
    fc.record({ op: fc.constant("get" as const), key }),
    fc.record({ op: fc.constant("dropBelow" as const), rev: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ op: fc.constant("dropTombstones" as const), rev: fc.integer({ min: 0, max: 50 }) }),
    fc.record({ op: fc.constant("clear" as const) }),
  );
  fc.assert(
    fc.property(
      fc.integer({ min: 2, max: 10 }),
      fc.double({ min: 0.05, max: 1, noNaN: true }),
      fc.boolean(),
      fc.array(op, { maxLength: 80 }),
      (maxItems, share, bytes, ops) => {
        const store = new LocalStore({
          maxItems,
          ...(bytes ? { maxBytes: maxItems * (ENTRY_OVERHEAD_BYTES + 8) } : {}),
          maxNegativeShare: share,
        });
        const bound = share < 1 ? Math.max(1, Math.floor(share * maxItems)) : Infinity;
        const values = () => [...store.entries()].filter(([, s]) => !s.deleted).map(([k]) => k);
        for (const o of ops) {
          const before = values();
          const evictionsBefore = store.evictions;
          if (o.op === "value") store.put(o.key, o.rev, 1, enc.encode("v"));
          else if (o.op === "negative") store.put(o.key, 0, 1, undefined);
          else if (o.op === "tombstone") store.put(o.key, o.rev, 1, undefined);
          else if (o.op === "loaded") {
            store.putValue(o.key, { rev: 0, created: 1, value: "v", encodedBytes: 1 });
          } else if (o.op === "delete") store.delete(o.key);
          else if (o.op === "get") store.get(o.key);
          else if (o.op === "dropBelow") store.dropBelow(o.rev);
          else if (o.op === "dropTombstones") store.dropTombstones(o.rev);
          else store.clear();
          const negatives = [...store.entries()].filter(([, s]) => s.deleted && s.rev === 0);
          assert.equal(store.negatives, share < 1 ? negatives.length : 0, "exact count");
          assert.ok(negatives.length <= bound, `${negatives.length} negatives, bound ${bound}`);
          if (o.op === "negative" && store.evictions === evictionsBefore) {
            // (Its own key's loaded value, at revision 0 too, it replaces by the revision rule.)
            const others = (ks: string[]) => ks.filter((k) => k !== o.key).sort();
            assert.deepEqual(others(values()), others(before), "a negative put drops no value");
          }
        }
      },
    ),
    { seed, numRuns: 300 },
  );
});
