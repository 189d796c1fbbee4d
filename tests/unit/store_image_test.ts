/**
 * A snapshot (format 4) loaded as the local store's image: what a store
 * saves comes back the same (values, refused values, deadlines, recency),
 * a key in the image is found, replaced and removed by the store's usual
 * rules, and the bounds apply to what loads. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { LocalStore } from "../../src/local_store.ts";
import { Applied, type RemovalReason, type Slot, SlotFlag } from "../../src/slot.ts";
import { loadSnapshot, readSnapshot, writeSnapshot } from "../../src/snapshot.ts";
import type { SnapshotStorage } from "../../src/snapshot_file.ts";
import { ENTRY_OVERHEAD_BYTES } from "../../src/types.ts";

const enc = new TextEncoder();
const HEADER = { bucket: "b", filter: ">", epoch: "e", lastRevision: 9, partial: false };

/** A snapshot kept in memory. */
function memory(): SnapshotStorage & { bytes?: Uint8Array } {
  const m: SnapshotStorage & { bytes?: Uint8Array } = {
    read: () => Promise.resolve(m.bytes),
    write: (parts) => {
      m.bytes = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const p of parts) {
        m.bytes.set(p, at);
        at += p.byteLength;
      }
      return Promise.resolve();
    },
  };
  return m;
}

/** Saves `store` as the cache does, loads the file into a new store built with `options`. */
async function reload(
  store: LocalStore,
  options: ConstructorParameters<typeof LocalStore>[0],
  gen = 3,
): Promise<{ loaded: LocalStore; count: number; storage: ReturnType<typeof memory> }> {
  const storage = memory();
  await writeSnapshot(storage, {
    header: HEADER,
    records: store.records((v) => enc.encode(JSON.stringify(v))),
  });
  const snap = await loadSnapshot(storage, { bucket: "b", filter: ">" });
  assert.ok(snap.ok, snap.ok ? "" : snap.reason);
  const loaded = new LocalStore(options);
  const count = loaded.loadImage(snap.image, gen);
  return { loaded, count, storage };
}

/** The records of a saved snapshot: key, revision, created, value bytes, deadline. */
async function saved(storage: SnapshotStorage) {
  const r = await readSnapshot(storage, { bucket: "b", filter: ">" });
  assert.ok(r.ok);
  return r.records.map((x) => [x.key, x.rev, x.created, [...x.value], x.deadline]);
}

Deno.test("store image: a saved store loads back the same, most recently used first", async () => {
  const ttlMs = 60_000;
  const store = new LocalStore({ maxItems: 100 });
  store.put("a", 1, 1000, enc.encode('{"n":1}'));
  store.put("ключ.ü", 2, 2000, new Uint8Array([0, 0xff, 0x80])); // non-ASCII key, binary value
  store.put("empty", 3, 3000, new Uint8Array());
  store.put("ttl", 4, 4000, enc.encode("4"), 0, ttlMs);
  store.put("bad", 5, 5000, enc.encode("not json"));
  store.rejected("bad", 5, new Error("refused"));
  store.put("gone", 6, 6000, undefined); // a tombstone: not saved
  store.putValue("decoded", { rev: 7, created: 7000, value: { d: 1 }, encodedBytes: 7 });
  store.find("a"); // "a" becomes the most recently used
  const before = Date.now();
  const { loaded, count, storage } = await reload(store, { maxItems: 100 });
  assert.equal(count, 6);
  assert.equal(loaded.size, 6);
  // Recency survives: the saved order is the loaded order, and saving the
  // loaded store before any key was touched writes the same records.
  const first = await saved(storage);
  assert.deepEqual(first.map((r) => r[0]), ["a", "decoded", "bad", "ttl", "empty", "ключ.ü"]);
  const again = memory();
  await writeSnapshot(again, {
    header: HEADER,
    records: loaded.records(() => assert.fail("nothing decoded")),
  });
  const resaved = await saved(again);
  // The deadlines are kept as time left, so they may move by a millisecond.
  const exact = (rs: unknown[][]) => rs.map((r) => r.slice(0, 4));
  assert.deepEqual(exact(resaved), exact(first));
  for (const [i, r] of resaved.entries()) {
    assert.ok(Math.abs((r[4] as number) - (first[i]![4] as number)) <= 5, `${r[0]} deadline`);
  }
  const deadline = first.find((r) => r[0] === "ttl")![4] as number;
  assert.ok(deadline >= before + ttlMs - 1000 && deadline <= Date.now() + ttlMs, `${deadline}`);
  // Every key is found in the image with its revision, write time and bytes.
  const expect: [string, number, number, number[]][] = [
    ["a", 1, 1000, [...enc.encode('{"n":1}')]],
    ["ключ.ü", 2, 2000, [0, 0xff, 0x80]],
    ["empty", 3, 3000, []],
    ["ttl", 4, 4000, [...enc.encode("4")]],
    ["bad", 5, 5000, [...enc.encode("not json")]], // refused again when decoded
    ["decoded", 7, 7000, [...enc.encode('{"d":1}')]],
  ];
  for (const [key, rev, created, bytes] of expect) {
    const slot = loaded.peek(key)!;
    assert.deepEqual([slot.rev, slot.created, [...slot.raw!], slot.gen], [rev, created, bytes, 3]);
  }
  assert.equal(loaded.peek("gone"), undefined);
  assert.equal(loaded.find("k.none"), -1);
  assert.equal(loaded.size, 6);
});

Deno.test("store image: a key still in the image obeys the revision rule and leaves", async () => {
  const store = new LocalStore({ maxItems: 100 });
  for (let i = 0; i < 50; i++) store.put(`k.${i}`, i + 10, 1000 + i, enc.encode(`${i}`));
  // No TTL anywhere: the columns are taken whole (no pass per record).
  const { loaded } = await reload(store, { maxItems: 100 });
  for (let i = 40; i < 50; i++) {
    const slot = loaded.peek(`k.${i}`)!;
    assert.deepEqual([slot.rev, slot.created, [...slot.raw!]], [i + 10, 1000 + i, [
      ...enc.encode(`${i}`),
    ]]);
  }
  assert.equal(loaded.put("k.1", 11, 0, enc.encode("older")), Applied.Older); // equal revision
  assert.equal(loaded.put("k.2", 5, 0, enc.encode("older")), Applied.Older);
  assert.deepEqual([...loaded.peek("k.2")!.raw!], [...enc.encode("2")]);
  assert.equal(
    loaded.putValue("k.3", { rev: 4, created: 0, value: 0, encodedBytes: 1 }),
    Applied.Older,
  );
  assert.equal(loaded.put("k.4", 99, 0, enc.encode("newer")), Applied.Stored);
  // Slot s is record s, most recently used first: k.4 is slot 45. Its new
  // value, not read yet, is a cold slot (no Map entry), and still obeys the rules.
  assert.equal(loaded.flagsAt(45), SlotFlag.Cold);
  assert.equal(loaded.put("k.4", 98, 0, enc.encode("older")), Applied.Older);
  assert.equal(loaded.size, 50);
  assert.deepEqual([...loaded.peek("k.4")!.raw!], [...enc.encode("newer")]);
  assert.equal(loaded.flagsAt(45) & SlotFlag.Cold, 0); // read: an ordinary slot now
  assert.equal(
    loaded.putValue("k.6", { rev: 100, created: 0, value: "decoded", encodedBytes: 9 }),
    Applied.Stored,
  );
  assert.equal(loaded.flagsAt(43), 0); // a decoded value: ordinary at once
  assert.equal(loaded.peek("k.6")!.value, "decoded");
  loaded.delete("k.5");
  assert.equal(loaded.has("k.5"), false);
  assert.equal(loaded.dropBelow(20), 7); // k.0 … k.9 but k.4 (99), k.5 (deleted), k.6 (100)
  assert.equal(loaded.size, 50 - 1 - 7);
  assert.equal(loaded.peek("k.0"), undefined);
  assert.deepEqual([...loaded.peek("k.49")!.raw!], [...enc.encode("49")]);
  assert.equal(loaded.put("new", 100, 0, enc.encode("n")), Applied.Stored);
  assert.equal(loaded.size, 43);
  loaded.clear();
  assert.equal(loaded.size, 0);
  assert.equal(loaded.peek("k.49"), undefined);
});

Deno.test("store image: the bounds apply to what loads, the most recently used first", async (t) => {
  const store = new LocalStore({ maxItems: 100 });
  // Saved most recently used first: k.9, k.8, …, k.0.
  for (let i = 0; i < 10; i++) store.put(`k.${i}`, i + 1, 0, enc.encode("x".repeat(10)));
  const removed: [string, RemovalReason, Slot][] = [];
  const onRemove = (key: string, slot: Slot, why: RemovalReason) => removed.push([key, why, slot]);

  await t.step("maxItems: the first records load, onRemove hears the rest", async () => {
    removed.length = 0;
    const { loaded, count } = await reload(store, { maxItems: 3, onRemove });
    assert.equal(count, 3);
    assert.equal(loaded.size, 3);
    assert.deepEqual(["k.9", "k.8", "k.7"].map((k) => loaded.has(k)), [true, true, true]);
    assert.equal(loaded.has("k.6"), false);
    assert.deepEqual(removed.map(([k, why]) => `${k} ${why}`), [
      "k.6 evict",
      "k.5 evict",
      "k.4 evict",
      "k.3 evict",
      "k.2 evict",
      "k.1 evict",
      "k.0 evict",
    ]);
    assert.deepEqual([...removed[0]![2].raw!], [...enc.encode("x".repeat(10))]);
    // The least recently used of the loaded ones goes first.
    loaded.put("new", 100, 0, enc.encode("n"));
    assert.deepEqual(["k.9", "k.8", "k.7", "new"].map((k) => loaded.has(k)), [
      true,
      true,
      false,
      true,
    ]);
  });

  await t.step("maxBytes: as many as fit, the bytes counted", async () => {
    removed.length = 0;
    const size = 3 + 10 + ENTRY_OVERHEAD_BYTES;
    const { loaded, count } = await reload(store, { maxBytes: size * 4 + 1, onRemove });
    assert.equal(count, 4);
    assert.equal(loaded.bytes, size * 4);
    assert.equal(removed.length, 6);
    assert.equal(loaded.peek("k.9")!.size, size);
  });

  await t.step("a record larger than maxBytes alone is refused as too large", async () => {
    removed.length = 0;
    const big = new LocalStore({ maxItems: 10 });
    big.put("small", 1, 0, enc.encode("s"));
    big.put("huge", 2, 0, enc.encode("h".repeat(1000)));
    const { loaded } = await reload(big, { maxBytes: 500, onRemove });
    assert.deepEqual([loaded.has("small"), loaded.has("huge")], [true, false]);
    assert.deepEqual(removed.map(([k, why]) => `${k} ${why}`), ["huge too_large"]);
  });

  await t.step("a record past its deadline does not load", async () => {
    const storage = memory();
    await writeSnapshot(storage, {
      header: HEADER,
      records: (add) => {
        add("past", 1, 0, "p", Date.now() - 1);
        add("future", 2, 0, "f", Date.now() + 60_000);
      },
    });
    const snap = await loadSnapshot(storage, { bucket: "b", filter: ">" });
    assert.ok(snap.ok);
    const loaded = new LocalStore({ maxItems: 10 });
    assert.equal(loaded.loadImage(snap.image, 0), 1);
    assert.deepEqual([loaded.has("past"), loaded.has("future")], [false, true]);
  });

  await t.step("a store that is not empty loads nothing", async () => {
    const snap = await loadSnapshot(memory(), { bucket: "b", filter: ">" });
    assert.equal(snap.ok, false);
    const { storage } = await reload(store, { maxItems: 100 });
    const full = await loadSnapshot(storage, { bucket: "b", filter: ">" });
    assert.ok(full.ok);
    const busy = new LocalStore({ maxItems: 100 });
    busy.put("own", 1, 0, enc.encode("1"));
    assert.equal(busy.loadImage(full.image, 0), -1);
    assert.deepEqual([busy.size, busy.has("own"), busy.has("k.9")], [1, true, false]);
  });
});

Deno.test("store image: columns taken from the file stay right when touched, grown and cleared", async () => {
  const n = 2000; // over the store's first capacity: the columns are the file's own
  const store = new LocalStore({ maxItems: n });
  for (let i = 0; i < n; i++) store.put(`k.${i}`, i + 1, 5000 + i, enc.encode(`${i}`));
  const check = (s: LocalStore, from: number, to: number) => {
    for (let i = from; i < to; i++) {
      const slot = s.peek(`k.${i}`)!;
      assert.deepEqual([slot.rev, slot.created], [i + 1, 5000 + i], `k.${i}`);
    }
  };
  const { loaded, count } = await reload(store, { maxItems: n });
  assert.equal(count, n);
  check(loaded, 0, n); // every key touched: the image is gone, the columns copied
  assert.equal(loaded.put("k.7", 9999, 1, enc.encode("new")), Applied.Stored);
  check(loaded, 0, 7);
  assert.equal(loaded.put("extra", 1, 2, enc.encode("e")), Applied.Stored); // evicts the LRU
  assert.equal(loaded.size, n);
  const again = await reload(store, { maxItems: 4 * n });
  check(again.loaded, 0, 10);
  for (let i = 0; i < 10; i++) again.loaded.put(`new.${i}`, 1, 3, enc.encode("n")); // grows
  check(again.loaded, 10, n);
  again.loaded.clear();
  again.loaded.put("after", 1, 4, enc.encode("a"));
  assert.deepEqual([again.loaded.size, again.loaded.peek("after")!.created], [1, 4]);
});

Deno.test("store image: every key is found through the file's key table or one built at load", async (t) => {
  const store = new LocalStore({ maxItems: 3000 });
  for (let i = 0; i < 3000; i++) store.put(`k.${i}`, i + 1, 1000, enc.encode(`v${i}`));
  // Loaded whole, slot r is record r: the file's table. Fewer slots: a table built at load.
  for (const maxItems of [3000, 2000]) {
    await t.step(`maxItems ${maxItems}`, async () => {
      const { loaded, count } = await reload(store, { maxItems });
      assert.equal(count, maxItems);
      // Records are most recently used first: k.2999 … k.0; the last 1000 are left out at 2000.
      for (let i = 0; i < 3000; i++) {
        const slot = loaded.peek(`k.${i}`);
        if (i < 3000 - maxItems) assert.equal(slot, undefined, `k.${i}`);
        else assert.deepEqual([slot?.rev, [...slot!.raw!]], [i + 1, [...enc.encode(`v${i}`)]]);
      }
      assert.equal(loaded.peek("k.3000"), undefined);
      assert.equal(loaded.size, maxItems);
    });
  }
});

Deno.test("store image: every slot given a new value leaves the image as a cold slot", async () => {
  const store = new LocalStore({ maxItems: 20 });
  for (let i = 0; i < 20; i++) store.put(`k.${i}`, i + 1, 1000, enc.encode(`old${i}`));
  const { loaded } = await reload(store, { maxItems: 20 });
  for (let i = 0; i < 20; i++) {
    assert.equal(loaded.put(`k.${i}`, 100 + i, 2000, enc.encode(`new${i}`)), Applied.Stored);
  }
  assert.equal(loaded.size, 20);
  // The image drained: the file's buffer is let go, the columns are the store's own.
  const again = memory();
  await writeSnapshot(again, {
    header: HEADER,
    records: loaded.records(() => assert.fail("nothing decoded")),
  });
  const records = await saved(again);
  assert.deepEqual(
    records.map((r) => [r[0], r[1], new TextDecoder().decode(new Uint8Array(r[3] as number[]))]),
    Array.from({ length: 20 }, (_, j) => [`k.${19 - j}`, 119 - j, `new${19 - j}`]),
  );
  assert.equal(loaded.put("k.20", 200, 0, enc.encode("x")), Applied.Stored); // evicts k.0, the oldest
  assert.equal(loaded.peek("k.0"), undefined);
  assert.deepEqual([loaded.peek("k.1")?.rev, loaded.peek("k.20")?.rev], [101, 200]);
});
