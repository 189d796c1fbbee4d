/**
 * The local store's cold slots (values never read, as bytes in shared slabs):
 * every key is found with its own bytes through growth, compaction and
 * removal, the slabs shrink when entries go and are all freed when none is
 * left, and a store holding cold slots keeps its rules (revision wins,
 * eviction by recency with the key and value handed to `onRemove`, a listing
 * and a snapshot of keys never read). Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { ColdSlots } from "../../src/cold_slots.ts";
import { LocalStore } from "../../src/local_store.ts";
import { NONE } from "../../src/lru_list.ts";
import type { RemovalReason, Slot } from "../../src/slot.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/** Key `i`: some ASCII, some not, one long enough for a two-byte length. */
function keyOf(i: number): string {
  if (i % 7 === 3) return `clé.${i}.ü`;
  if (i % 101 === 5) return `long.${i}.` + "x".repeat(200);
  return `k.${i}`;
}

/** Value `i`: 300 bytes mostly, a few over one slab (256 KiB) or with a three-byte length. */
function valueOf(i: number): Uint8Array {
  const n = i % 997 === 11 ? 300_000 : i % 211 === 7 ? 20_000 : 300;
  const v = new Uint8Array(n);
  for (let j = 0; j < n; j++) v[j] = (i * 31 + j) & 0xff;
  return v;
}

function assertHolds(cold: ColdSlots, i: number): void {
  const s = cold.find(keyOf(i));
  assert.equal(s, i, `slot of ${keyOf(i)}`);
  assert.equal(cold.key(s), keyOf(i));
  assert.deepEqual(cold.keyBytes(s), enc.encode(keyOf(i)));
  assert.deepEqual(cold.value(s), valueOf(i), `value of ${keyOf(i)}`);
}

Deno.test("cold slots: found through growth, compaction and removal; the slabs follow the live bytes", () => {
  const n = 20_000;
  const cold = new ColdSlots({ vals: [] });
  let live = 0;
  for (let i = 0; i < n; i++) {
    cold.add(i, keyOf(i), valueOf(i));
    live += valueOf(i).byteLength;
  }
  assert.equal(cold.pending, n);
  for (let i = 0; i < n; i++) assertHolds(cold, i);
  assert.equal(cold.find("k.absent"), NONE);
  const full = cold.slabBytes;
  assert.ok(full >= live && full < live * 1.1, `${full} bytes of slabs for ${live} of values`);

  // Nine in ten go: the slabs are compacted as they go, and what stays is intact.
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) continue;
    cold.drop(i);
    live -= valueOf(i).byteLength;
  }
  assert.equal(cold.pending, n / 10);
  assert.ok(cold.slabBytes < full / 3, `${cold.slabBytes} of ${full} bytes left after 90 % went`);
  assert.ok(cold.slabBytes <= 2 * live + 4 * 256 * 1024);
  for (let i = 0; i < n; i++) {
    if (i % 10 === 0) assertHolds(cold, i);
    else assert.equal(cold.find(keyOf(i)), NONE, `${keyOf(i)} went`);
  }

  // Replaced (a new value in the same slot) and added again after the compaction.
  cold.drop(0);
  cold.add(0, keyOf(0), valueOf(1));
  assert.deepEqual(cold.value(cold.find(keyOf(0))), valueOf(1));
  cold.drop(0);
  cold.add(0, keyOf(0), valueOf(0));
  for (let i = 1; i < n; i += 10) cold.add(i, keyOf(i), valueOf(i));
  for (let i = 0; i < n; i++) if (i % 10 <= 1) assertHolds(cold, i);

  // The last one out frees every slab but one (256 KiB), kept for the next.
  for (let i = 0; i < n; i++) if (i % 10 <= 1) cold.drop(i);
  assert.equal(cold.pending, 0);
  assert.ok(cold.slabBytes <= 256 * 1024);
  cold.add(5, "again", valueOf(5));
  assert.equal(cold.find("again"), 5);
  assert.deepEqual(cold.value(5), valueOf(5));
  cold.clear();
  assert.equal(cold.slabBytes, 0);
  assert.equal(cold.find("again"), NONE);
});

Deno.test("local store: values never read stay correct while cold (revision wins, eviction, listing, snapshot)", () => {
  const removed: [string, Slot, RemovalReason][] = [];
  const store = new LocalStore({ maxItems: 100, onRemove: (k, s, r) => removed.push([k, s, r]) });
  const v = (i: number, rev: number) => enc.encode(`{"i":${i},"rev":${rev}}`);
  for (let i = 0; i < 150; i++) store.put(keyOf(i), i + 1, 1_000 + i, v(i, i + 1));
  // The 50 least recently used went, with their key and bytes.
  assert.equal(store.size, 100);
  assert.deepEqual(removed.map(([k]) => k), Array.from({ length: 50 }, (_, i) => keyOf(i)));
  assert.deepEqual(
    removed.map(([, s]) => dec.decode(s.raw)),
    removed.map((_, i) => dec.decode(v(i, i + 1))),
  );
  assert.ok(
    removed.every(([, s, r], i) => r === "evict" && s.rev === i + 1 && s.created === 1_000 + i),
  );
  assert.ok(!store.has(keyOf(0)) && store.has(keyOf(50)));

  // Rule 1 on a cold slot: an older revision is ignored, a newer one replaces it.
  store.put(keyOf(60), 5, 0, v(60, 5));
  store.put(keyOf(61), 1_000, 2_000, v(61, 1_000));
  store.delete(keyOf(62));
  store.put(keyOf(63), 1_001, 2_001, undefined); // a tombstone replaces a cold value
  const listed = new Map<string, [number, string]>();
  store.forEach((k, rev, _c, _f, held) => listed.set(k, [rev, dec.decode(held as Uint8Array)]));
  assert.equal(listed.size, 99); // 62 deleted, 63 a tombstone
  assert.deepEqual(listed.get(keyOf(60)), [61, dec.decode(v(60, 61))]);
  assert.deepEqual(listed.get(keyOf(61)), [1_000, dec.decode(v(61, 1_000))]);
  assert.equal(listed.has(keyOf(62)), false);

  // Read once: the same bytes, now held as an ordinary slot, the tombstone a tombstone.
  assert.equal(dec.decode(store.get(keyOf(61))!.raw), dec.decode(v(61, 1_000)));
  assert.equal(store.peek(keyOf(63))?.deleted, true);
  for (let i = 50; i < 150; i++) {
    if (i === 62) continue;
    const slot = store.peek(keyOf(i))!;
    if (i === 63) continue;
    const rev = i === 61 ? 1_000 : i + 1;
    assert.equal(slot.rev, rev);
    assert.equal(dec.decode(slot.raw), dec.decode(v(i, rev)));
  }
  // A snapshot's records of cold and warm slots alike.
  const records: string[] = [];
  store.records(() => new Uint8Array())((k, rev, _c, value) => {
    records.push(
      `${typeof k === "string" ? k : dec.decode(k)}@${rev}=${
        typeof value === "string" ? value : dec.decode(value)
      }`,
    );
  });
  assert.equal(records.length, 98); // not the tombstone
  assert.ok(records.includes(`${keyOf(61)}@1000=${dec.decode(v(61, 1_000))}`));
});

Deno.test("local store: emptied by a purge, it starts again from small columns and keeps its rules", () => {
  const removed: string[] = [];
  const store = new LocalStore({ maxItems: 5_000, onRemove: (k) => removed.push(k) });
  const v = (i: number) => enc.encode(`{"i":${i}}`);
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 6_000; i++) store.put(keyOf(i), round * 10_000 + i + 1, 0, v(i + round));
    assert.equal(store.size, 5_000);
    for (let i = 1_000; i < 1_500; i++) store.get(keyOf(i)); // some read: in the Map
    store.put(keyOf(1_000), 1, 0, undefined); // older: ignored
    assert.equal(dec.decode(store.peek(keyOf(1_000))!.raw), dec.decode(v(1_000 + round)));
    store.delete(keyOf(5_999));
    // A purge: everything below the next round's revisions goes.
    assert.equal(store.dropBelow((round + 1) * 10_000), 4_999);
    assert.equal(store.size, 0);
    assert.equal(store.peek(keyOf(1_000)), undefined);
  }
  assert.equal(removed.length, 3 * 1_000); // the evictions of each round, nothing else
  store.put("last", 5, 0, v(5));
  assert.equal(dec.decode(store.get("last")!.raw), dec.decode(v(5)));
});

Deno.test("local store: room reserved for a bootstrap keeps what it holds and changes no rule", () => {
  const removed: string[] = [];
  const store = new LocalStore({ maxItems: 5_000, onRemove: (k) => removed.push(k) });
  const v = (i: number) => enc.encode(`{"i":${i}}`);
  for (let i = 0; i < 3_000; i++) store.put(keyOf(i), i + 1, 0, v(i));
  for (let i = 0; i < 100; i++) store.get(keyOf(i)); // some read: in the Map
  store.reserve(4_500); // past the columns' and the key table's size: both rebuilt
  store.reserve(1e9); // capped at maxItems
  store.reserve(Number.NaN); // not a count: nothing
  for (let i = 0; i < 3_000; i++) {
    assert.equal(dec.decode(store.peek(keyOf(i))!.raw), dec.decode(v(i)), keyOf(i));
  }
  for (let i = 3_000; i < 6_000; i++) store.put(keyOf(i), i + 1, 0, v(i));
  assert.equal(store.size, 5_000);
  assert.deepEqual(removed, Array.from({ length: 1_000 }, (_, i) => keyOf(i + 100)), "LRU order");
  store.put(keyOf(5_999), 1, 0, undefined); // older: ignored
  assert.equal(dec.decode(store.get(keyOf(5_999))!.raw), dec.decode(v(5_999)));
  // Every slot's recency links survived: 5 000 more evict the rest in recency order.
  removed.length = 0;
  for (let i = 6_000; i < 11_000; i++) store.put(keyOf(i), i + 1, 0, v(i));
  const range = (a: number, b: number) => Array.from({ length: b - a }, (_, i) => keyOf(a + i));
  assert.deepEqual(removed, [...range(1_100, 3_000), ...range(0, 100), ...range(3_000, 6_000)]);
});
