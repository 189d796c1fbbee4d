/**
 * The shape of the code, checked: no file over 450 lines in src/, host/,
 * workers/, scripts/ and testing/; no function over 80 lines there (in
 * scripts/, a straight-line benchmark scenario may stay longer, listed as
 * known debt below); and in src/, no function with more than 2 positional
 * parameters (past two, an options object; STYLE §6) unless it is a hot path
 * or public API on the short allowlist below (an options object on a hot path
 * would be one allocation per message or per hit). A last parameter that is
 * an options object (typed `…Options` or as an object literal, or a `{ … }`
 * pattern) is not positional. Test files
 * are not held to the limits: they are scenario lists. Starts no server.
 *
 * The functions are found by a small scanner (`_scanner.ts`). Run this file
 * to see every violation by name.
 */
import assert from "node:assert/strict";
import { ROOT, tsFiles } from "./_source.ts";
import { functionsOf } from "./_scanner.ts";

export const MAX_FILE_LINES = 450;
export const MAX_FUNCTION_LINES = 80;
export const MAX_POSITIONAL = 2;

/** The folders whose files and functions are held to the limits. */
export const CHECKED_DIRS = ["src", "host", "workers", "scripts", "testing"];

/** The folder whose functions are held to the positional-parameter limit. */
const POSITIONAL_DIR = "src/";

/**
 * Hot paths that keep their positional parameters: each runs once per
 * message, per hit, per byte or per slot of a whole-store pass, where an
 * options object would be one allocation per call; and public API, whose
 * signatures do not change. `file:function` (an arrow handed to a call is
 * `callee(callback)`), with the reason; docs/architecture.md lists them too.
 */
export const POSITIONAL_ALLOWED: ReadonlyMap<string, string> = new Map([
  // Public API (mod.ts, projection.ts): changing these breaks callers.
  ["src/cache.ts:update", "public API: Cache.update(key, value, expectedRevision)"],
  [
    "src/errors/data.ts:constructor",
    "public API: new DecodeError(...), new ProjectionMapError(...)",
  ],
  // A platform's signature: Hono and Workers call fetch(request, env, ctx), per request.
  ["src/http/app.ts:fetch", "the platform's fetch(request, env, ctx): per request"],
  // Every watcher message (and every fetch, own write) goes through them.
  ["src/cache/sync_loop.ts:#onChange", "per watcher message"],
  ["src/cache/told.ts:news", "per watcher message"],
  ["src/cache/sync_loop.ts:onChange", "the cache's watcher handler: per message"],
  ["src/cache/replay.ts:onChange", "a replay's watcher handler: per message"],
  ["src/cache/core.ts:toChange", "per watcher message told to changes() readers"],
  ["src/resume_check.ts:note", "per watcher message: what was applied, without an object"],
  [
    "src/watcher.ts:#onMsg",
    "the subscription's callback, per message: nats.js's (err, msg), and which subscription",
  ],
  // The ack subject of every watcher message is parsed.
  ["src/ack_subject.ts:digits", "per watcher message (its ack subject)"],
  ["src/ack_subject.ts:digitBytes", "per watcher message (its ack subject, as bytes)"],
  // The store's write: every applied revision.
  ["src/local_store.ts:put", "per applied revision"],
  ["src/local_store.ts:#set", "per stored revision (called by put)"],
  ["src/slot_ttl.ts:set", "per stored revision with a TTL (called by #set)"],
  ["src/cold_slots.ts:add", "per new key held cold (called by #set)"],
  ["src/cold_slots.ts:putVarint", "per number of a cold slot's encoding"],
  [
    "src/cache/freshness.ts:onRemove",
    "the store's onRemove(key, slot, reason): per eviction (a full store evicts one per key it takes in)",
  ],
  // Store lookups: every hit.
  ["src/key_table.ts:hashBytes", "per lookup of a cold or warm-started key"],
  ["src/store_image.ts:take", "per first lookup of a key in a warm-started store"],
  ["src/cache/read_path.ts:hitValue", "per hit on a slot not decoded yet, or a tombstone"],
  ["src/cache/read_path.ts:present", "per hit, stale hit or miss answered from a slot"],
  // A value's first read decodes it once.
  ["src/local_store.ts:decoded", "per hit that decodes a value"],
  ["src/local_store.ts:rejected", "per hit whose value the codec refuses"],
  ["src/slot_columns.ts:setDecodedAt", "per hit that decodes a value (called by decoded)"],
  ["src/cache/read_path.ts:decode", "per hit that decodes a value (called by present)"],
  ["src/cache/freshness.ts:decoded", "per hit that decodes a value (calls LocalStore.decoded)"],
  ["src/cache/freshness.ts:rejected", "per hit whose value the codec refuses"],
  // A read while the cache is not fresh: every stale hit.
  ["src/cache/read_path.ts:getSlow", "per stale hit"],
  [
    "src/cache/core.ts:assertInFilter",
    "per stale or bookmarked hit (called by getSlow, getAtLeast), and per write",
  ],
  // Whole-store passes: per slot or per snapshot record (a million of them).
  ["src/cache/listing.ts:forEach(callback)", "per slot of a local key listing"],
  ["src/snapshot_columns.ts:add", "per record of a snapshot write"],
  // The HTTP GET path: every request (bench/README.md, "where the microseconds go").
  ["src/http/fast_get.ts:fastGet", "per GET request"],
  ["src/http/bookmarks.ts:answer", "per GET answered"],
  ["src/http/fast_get.ts:awaitedRead", "per GET that is not a synchronous hit"],
  ["src/http/fast_get.ts:failed", "per failed GET"],
  ["src/http/fast_get.ts:finish", "per GET request"],
  ["src/http/pipeline.ts:record", "per GET request (called by finish)"],
  ["src/http/fast_get.ts:fastRead", "per GET request"],
  ["src/http/routes/keys.ts:answerEntry", "per GET request (every hit answered)"],
  ["src/http/routes/keys.ts:readKey", "per GET request (not a synchronous hit, or through Hono)"],
  ["src/http/entry_response.ts:entryResponse", "per GET answer built"],
  ["src/http/entry_response.ts:headerRecord", "per GET answer built"],
  ["src/http/served_bucket.ts:keepTemplate", "per value and revision answered"],
]);

/**
 * Known debt, not yet fixed, each with why: the check tolerates these, and
 * fails when one is fixed but still listed, so the list only shrinks.
 * `file` (too long), `file:function` (too long or too many parameters).
 */
export const KNOWN_DEBT: ReadonlyMap<string, string> = new Map([]);

/**
 * Long functions scripts/ keeps, known debt like {@link KNOWN_DEBT} (the list
 * only shrinks): benchmark scenarios that read as one straight line (set up,
 * measure, tear down) whose steps share their counters, so that each step
 * split out would take or return half the scenario's locals. `file:function`,
 * with the reason. Only scripts/ may have such entries: one elsewhere is
 * never matched and fails the check as stale.
 */
export const LONG_SCENARIOS: ReadonlyMap<string, string> = new Map([
  ["scripts/bench/_scale_keys.ts:coldReps", "scale scenario: cold opens measured per rep, in line"],
  [
    "scripts/bench/bookmark.ts:run",
    "bench scenario: one set-up, then its two phases (caught up, lagging) in line",
  ],
  [
    "scripts/bench/local_hit.ts:run",
    "bench scenario: set-up, reps over the read variants, rows, in line",
  ],
  ["scripts/bench/memory.ts:run", "bench scenario: reps of fill-and-measure, then rows, in line"],
  [
    "scripts/bench/miss.ts:run",
    "bench scenario: set-up, rotated reps over the variants, rows, in line",
  ],
  ["scripts/bench/regions.ts:run", "bench scenario: regions set-up, rotated reps, rows, in line"],
  ["scripts/bench/warm_start.ts:run", "bench scenario: probe, cold figures, reps, rows, in line"],
  [
    "scripts/bench/workerd.ts:run",
    "bench scenario: workerd set-up, rotated reps per target, rows, in line",
  ],
  ["scripts/soak.ts:main", "soak run: load, sample, judge, sharing its counters"],
]);

/** Every `.ts` file of {@link CHECKED_DIRS}. */
async function checkedFiles(): Promise<string[]> {
  return (await Promise.all(CHECKED_DIRS.map((dir) => tsFiles(dir)))).flat();
}

/** The violations found, as `file:line name (what)`, and the debt entries no longer violated. */
export async function violations(): Promise<{
  files: string[];
  long: string[];
  positional: string[];
  paidDebt: string[];
}> {
  const files: string[] = [];
  const long: string[] = [];
  const positional: string[] = [];
  const seenDebt = new Set<string>();
  const seenScenarios = new Set<string>();
  const longScenario = (file: string, key: string) => {
    if (!file.startsWith("scripts/") || !LONG_SCENARIOS.has(key)) return false;
    seenScenarios.add(key);
    return true;
  };
  const owed = (key: string) => {
    if (!KNOWN_DEBT.has(key)) return false;
    seenDebt.add(key);
    return true;
  };
  for (const file of await checkedFiles()) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    const lines = text.split("\n").length - (text.endsWith("\n") ? 1 : 0);
    if (lines > MAX_FILE_LINES && !owed(file)) files.push(`${file} (${lines} lines)`);
    for (const f of functionsOf(text)) {
      const key = `${file}:${f.name}`;
      if (f.lines > MAX_FUNCTION_LINES && !owed(key) && !longScenario(file, key)) {
        long.push(`${file}:${f.line} ${f.name} (${f.lines} lines)`);
      }
      if (!file.startsWith(POSITIONAL_DIR)) continue;
      if (f.params > MAX_POSITIONAL && !POSITIONAL_ALLOWED.has(key) && !owed(key)) {
        positional.push(`${file}:${f.line} ${f.name} (${f.params} parameters)`);
      }
    }
  }
  const paidDebt = [
    ...[...KNOWN_DEBT.keys()].filter((k) => !seenDebt.has(k)),
    ...[...LONG_SCENARIOS.keys()].filter((k) => !seenScenarios.has(k)),
  ];
  return { files, long, positional, paidDebt };
}

Deno.test("the scanner finds functions, methods and arrows with their lengths and parameters", () => {
  const src = [
    "export function a(x: number, y = { z: 1 }, ...rest: string[]): Promise<{ a: 1 }> {",
    "  const re = /[}{]/g; const s = `${x}}`;",
    "  return s;",
    "}",
    "class C {",
    "  #m<T>(this: C, a: Map<string, number>, b: (p: number, q: number) => void) {",
    "    if (a) { b(1, 2); }",
    "  }",
    "  get v(): { k: number } { return { k: 1 }; }",
    "}",
    "const f = async (p, q, r, s) => {",
    "  return p;",
    "};",
    "type T = { cb: (a: 1, b: 2, c: 3, d: 4) => void };",
    "export type V<X> = (a: X, b: X, c: X, d: X) => void;",
    "load({ onRecord: (k, r, c, v) => n++ });",
    "xs.forEach((a, b, c, d) => {});",
    "function g(a: A, b: B, options?: GOptions) {}",
    "function h(a, { x }: { x: 1 } = {}) {}",
    "function i(a, b, o: Partial<IOptions> | undefined, ) {}",
    "function j(a, b, o: Options2) {}",
    "function k(a, b, c): (x: number) => void { return (x) => {}; }",
  ].join("\n");
  const found = functionsOf(src).map((f) => `${f.name}@${f.line}:${f.lines}/${f.params}`);
  assert.deepEqual(found, [
    "a@1:4/3",
    "#m@6:3/2",
    "v@9:1/0",
    "f@11:3/4",
    "onRecord@16:1/4",
    "forEach(callback)@17:1/4",
    "g@18:1/2",
    "h@19:1/1",
    "i@20:1/2",
    "j@21:1/3",
    "k@22:1/3",
    "(arrow)@22:1/1",
  ]);
});

Deno.test("the scanner is not misled by names Object.prototype has (toString, constructor)", () => {
  // `"toString" in {}` is true: a bracket table read with `in` once took
  // `.toString()` for an opening bracket and ran a 7-line function to the
  // end of its file.
  const src = [
    "function a(x: { toString(): string }) {",
    "  return x.toString();",
    "}",
    "function b(c = constructor, d = valueOf) {",
    "  return c;",
    "}",
    "",
    "",
  ].join("\n");
  const found = functionsOf(src).map((f) => `${f.name}@${f.line}:${f.lines}/${f.params}`);
  // `a`'s one parameter is typed as an object literal: an options object, not positional.
  assert.deepEqual(found, ["a@1:3/0", "b@4:3/2"]);
});

Deno.test("src/, host/, workers/, scripts/ and testing/ keep their shape: short files, short functions; src/ few positional parameters", async () => {
  const { files, long, positional, paidDebt } = await violations();
  assert.deepEqual(files, [], `files over ${MAX_FILE_LINES} lines:\n${files.join("\n")}`);
  assert.deepEqual(long, [], `functions over ${MAX_FUNCTION_LINES} lines:\n${long.join("\n")}`);
  assert.deepEqual(
    positional,
    [],
    `functions with more than ${MAX_POSITIONAL} positional parameters:\n${positional.join("\n")}`,
  );
  assert.deepEqual(
    paidDebt,
    [],
    `fixed: take these off KNOWN_DEBT or LONG_SCENARIOS:\n${paidDebt.join("\n")}`,
  );
});

Deno.test("every allowed hot path still exists and still needs its positional parameters", async () => {
  const found = new Set<string>();
  for (const file of await tsFiles("src")) {
    const text = await Deno.readTextFile(new URL(file, ROOT));
    for (const f of functionsOf(text)) {
      if (f.params > MAX_POSITIONAL) found.add(`${file}:${f.name}`);
    }
  }
  const stale = [...POSITIONAL_ALLOWED.keys()].filter((k) => !found.has(k));
  assert.deepEqual(stale, [], `take these off POSITIONAL_ALLOWED:\n${stale.join("\n")}`);
});

if (import.meta.main) {
  const v = await violations();
  console.log(JSON.stringify(v, null, 2));
}
