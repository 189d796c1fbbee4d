/**
 * Property tests of `Freshness` (src/cache/freshness.ts), the one way into
 * the local store, without a server: random interleavings of every source
 * (watcher messages, miss fetches with and without a reservation, own writes
 * and deletes, loader answers, snapshot records), revisions out of order.
 *
 * 1. Rule 1: a held key's revision never goes down, whatever the source;
 *    the only way out is a replica's delete the watcher brought.
 * 2. Rule 2: once a lazy cache holds a delete at revision r, no put below r
 *    makes the key present again.
 * 3. Rule 3: a reserved fetch keeps the higher of its answer and what the
 *    watcher brought for the key meanwhile.
 *
 * Seeded and reproducible: the seed is printed; `KVEDGE_FC_SEED=<n>` replays
 * it, `KVEDGE_FC_RUNS=<n>` multiplies the runs.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Freshness } from "../../src/cache/freshness.ts";
import type { FreshnessChange } from "../../src/cache/freshness_change.ts";
import type { CacheMode } from "../../src/types.ts";
import { decodeSnapshot, encodeSnapshot, type SnapshotImage } from "../../src/snapshot.ts";

const SEED = Number(Deno.env.get("KVEDGE_FC_SEED") ?? Date.now() % 2 ** 31);
const RUNS_FACTOR = Math.max(1, Number(Deno.env.get("KVEDGE_FC_RUNS") ?? 1));

function params(name: string, numRuns: number): fc.Parameters<unknown> {
  const runs = Math.round(numRuns * RUNS_FACTOR);
  console.log(`  ${name}: seed ${SEED}, ${runs} runs (replay: KVEDGE_FC_SEED=${SEED})`);
  return { seed: SEED, numRuns: runs, endOnFailure: false };
}

const KEYS = ["a", "b", "c"] as const;
const BYTES = new TextEncoder().encode('"v"');

type Op =
  | { op: "watch"; key: string; rev: number; del: boolean }
  | { op: "fetch"; key: string; rev: number; del: boolean; reserved: boolean }
  | { op: "write"; key: string; rev: number; del: boolean }
  | { op: "loader"; key: string; absent: boolean }
  | { op: "snapshot"; key: string; rev: number }
  | { op: "reserve" | "release"; key: string };

const opArb = (): fc.Arbitrary<Op> => {
  const key = fc.constantFrom(...KEYS);
  const rev = fc.integer({ min: 1, max: 30 });
  return fc.oneof(
    fc.record({ op: fc.constant("watch" as const), key, rev, del: fc.boolean() }),
    fc.record({
      op: fc.constant("fetch" as const),
      key,
      rev: fc.integer({ min: 0, max: 30 }),
      del: fc.boolean(),
      reserved: fc.boolean(),
    }),
    fc.record({ op: fc.constant("write" as const), key, rev, del: fc.boolean() }),
    fc.record({ op: fc.constant("loader" as const), key, absent: fc.boolean() }),
    fc.record({ op: fc.constant("snapshot" as const), key, rev }),
    fc.record({ op: fc.constantFrom("reserve" as const, "release" as const), key }),
  );
};

function freshness(mode: CacheMode): Freshness {
  return new Freshness({
    mode,
    maxItems: 1_000,
    maxBytes: 0,
    maxTtlMs: 0,
    maxNegativeShare: 1,
    allowDirect: false,
    negativeTtlMs: 0,
    appliedRevision: () => 0,
  });
}

/** A verified snapshot image holding one record. */
function imageOf(key: string, rev: number, created: number): SnapshotImage {
  const head = { bucket: "b", filter: ">", epoch: "e", lastRevision: rev, partial: false };
  const { file } = encodeSnapshot(head, (add) => add(key, rev, created, BYTES));
  const snap = decodeSnapshot(file, { bucket: "b", filter: ">" });
  if (!snap.ok) throw new Error(`a one-record snapshot was refused: ${snap.reason}`);
  return snap.image;
}

/** The change `o` stands for (undefined for reserve/release). */
function changeOf(o: Op): FreshnessChange | undefined {
  const created = Date.now();
  switch (o.op) {
    case "watch":
      return {
        source: "watch",
        key: o.key,
        op: o.del ? "DEL" : "PUT",
        rev: o.rev,
        created,
        raw: BYTES,
        ttlMs: 0,
      };
    case "fetch": {
      const raw = o.del || o.rev === 0 ? undefined : BYTES;
      return { source: "fetch", key: o.key, rev: o.rev, created, raw, reserved: o.reserved };
    }
    case "write":
      return o.del ? { source: "write", key: o.key, rev: o.rev, created, op: "DEL" } : {
        source: "write",
        key: o.key,
        rev: o.rev,
        created,
        op: "PUT",
        value: "v",
        encodedBytes: 3,
      };
    case "loader":
      return {
        source: "loader",
        key: o.key,
        value: o.absent ? undefined : "v",
        encodedBytes: 3,
        offline: false,
      };
    case "snapshot":
      // A one-record warm start: loaded only into an empty store, refused otherwise.
      return { source: "snapshot", image: imageOf(o.key, o.rev, created) };
    default:
      return undefined;
  }
}

function run(f: Freshness, change: FreshnessChange): void {
  // The overloads differ only in what they return; every change goes in one way.
  if (change.source === "fetch") f.apply(change);
  else if (change.source === "loader") f.apply(change);
  else f.apply(change);
}

Deno.test("Freshness: rule 1, a held key's revision never goes down, from any source", () => {
  fc.assert(
    fc.property(
      fc.constantFrom<CacheMode>("lazy", "replica"),
      fc.array(opArb(), { minLength: 1, maxLength: 60 }),
      (mode, ops) => {
        const f = freshness(mode);
        for (const o of ops) {
          if (o.op === "reserve") f.reserve(o.key);
          else if (o.op === "release") f.release(o.key);
          const change = changeOf(o);
          if (change === undefined) continue;
          const before = f.view.peek(o.key)?.rev;
          run(f, change);
          const after = f.view.peek(o.key)?.rev;
          if (before === undefined) continue;
          if (after === undefined) {
            // Only a replica's delete from the watcher drops a held key.
            assert.ok(mode === "replica" && o.op === "watch" && o.del, `${o.op} dropped ${o.key}`);
          } else {
            assert.ok(after >= before, `${o.op} took ${o.key} from ${before} down to ${after}`);
          }
        }
      },
    ),
    params("rule 1", 500),
  );
});

Deno.test("Freshness: rule 2, a lazy cache's delete at r hides every put below r", () => {
  fc.assert(
    fc.property(fc.array(opArb(), { minLength: 1, maxLength: 60 }), (ops) => {
      const f = freshness("lazy");
      const deletedAt = new Map<string, number>();
      for (const o of ops) {
        const change = changeOf(o);
        if (change === undefined || o.op === "loader") continue;
        // A watched delete of a key the lazy cache does not hold is not kept.
        if (o.op === "watch" && !f.view.has(o.key)) continue;
        run(f, change);
        const slot = f.view.peek(o.key);
        if (slot?.deleted) deletedAt.set(o.key, Math.max(deletedAt.get(o.key) ?? 0, slot.rev));
        const floor = deletedAt.get(o.key) ?? 0;
        if (slot !== undefined && !slot.deleted) {
          assert.ok(slot.rev > floor, `${o.key} present at ${slot.rev}, deleted at ${floor}`);
        }
      }
    }),
    params("rule 2", 500),
  );
});

Deno.test("Freshness: rule 3, a reserved fetch keeps the higher of its answer and the watcher's", () => {
  fc.assert(
    fc.property(
      fc.array(fc.record({ rev: fc.integer({ min: 1, max: 30 }), del: fc.boolean() }), {
        maxLength: 5,
      }),
      fc.integer({ min: 0, max: 30 }),
      (events, fetched) => {
        const f = freshness("lazy");
        f.reserve("k");
        let seen = 0;
        for (const e of events) {
          // Watcher events come in revision order.
          const rev = seen + e.rev;
          seen = rev;
          f.apply({
            source: "watch",
            key: "k",
            op: e.del ? "DEL" : "PUT",
            rev,
            created: Date.now(),
            raw: BYTES,
            ttlMs: 0,
          });
        }
        const raw = fetched === 0 ? undefined : BYTES;
        const kept = f.apply({
          source: "fetch",
          key: "k",
          rev: fetched,
          created: Date.now(),
          raw,
          reserved: true,
        });
        f.release("k");
        assert.equal(kept.rev, Math.max(seen, fetched));
        assert.equal(f.view.peek("k")?.rev, Math.max(seen, fetched));
      },
    ),
    params("rule 3", 300),
  );
});
