/**
 * One owner per piece of the cache's state, checked: every field of
 * `CacheCore` (src/cache/core.ts) is written by at most one module of src/
 * (its owner; the lifecycle fields by `transition()` in sync_state.ts, the
 * counters behind `Counters`, `emittedRev` by apply.ts…); the local store and
 * the state of the rules of freshness (reservations, tombstones, sweeps,
 * `lossy`…) are `Freshness`'s (src/cache/freshness.ts) alone, `#private`
 * there, and no other module names the store's class or calls a writer of
 * it; nothing outside src/watcher.ts writes a watcher's fields (it is placed
 * with `Watcher.place()` before it starts). A second writer fails here with
 * the files that write the field. Starts no server.
 */
import assert from "node:assert/strict";
import type { StoreView } from "../../src/cache/freshness_change.ts";
import { ROOT, tsFiles, withoutComments } from "./_source.ts";

/** `text` without comments, trailing ones too (a comment may show an assignment). */
function code(text: string): string {
  return withoutComments(text).replace(/\s\/\/.*$/gm, "");
}

/** The instance fields `CacheCore` declares. */
export function coreFields(source: string): string[] {
  const body = source.slice(source.indexOf("export class CacheCore"));
  const end = body.indexOf("\n  constructor(");
  const fields = new Set<string>();
  for (const m of body.slice(0, end).matchAll(/^ {2}(?:readonly )?([a-zA-Z]\w*)[!?]?\s*[:=]/gm)) {
    fields.add(m[1]!);
  }
  return [...fields];
}

/** Whether `text` writes `<obj>.<field>` (`=`, `+=`, `||=`…, `++`, `--`), `obj` one of `objects`. */
export function writes(text: string, objects: string, field: string): boolean {
  const target = `(?:${objects})\\.${field}\\b`;
  return new RegExp(
    `${target}\\s*(?:\\+\\+|--|(?:[-+*/%|&^]|\\|\\||&&|\\?\\?)?=(?!=))|(?:\\+\\+|--)\\s*${target}`,
  ).test(text);
}

/** The cache core as the parts name it: `c`, `core`, the facade's `#c`. */
const CORE = "\\bc|\\bcore|this\\.#c";

Deno.test("every field of CacheCore has one writer in src/", async () => {
  const source = await Deno.readTextFile(new URL("src/cache/core.ts", ROOT));
  const fields = coreFields(source);
  assert.ok(fields.length > 20, `found ${fields.length} fields of CacheCore`);
  const files = await tsFiles("src");
  const texts = new Map<string, string>();
  for (const f of files) texts.set(f, code(await Deno.readTextFile(new URL(f, ROOT))));
  const shared: string[] = [];
  for (const field of fields) {
    const writers = files.filter((f) =>
      f !== "src/cache/core.ts" && writes(texts.get(f)!, CORE, field)
    );
    if (writers.length > 1) shared.push(`${field}: ${writers.join(", ")}`);
  }
  assert.deepEqual(shared, [], `fields written by more than one module:\n${shared.join("\n")}`);
});

Deno.test("only the watcher writes its fields", async () => {
  const offenders: string[] = [];
  for (const f of await tsFiles("src")) {
    if (f === "src/watcher.ts") continue;
    const text = code(await Deno.readTextFile(new URL(f, ROOT)));
    const m = /\bwatcher\.(\w+)\s*(?:\+\+|--|(?:[-+|&?]{1,2})?=(?!=))/.exec(text);
    if (m) offenders.push(`${f}: watcher.${m[1]}`);
  }
  assert.deepEqual(
    offenders,
    [],
    `writes to a watcher's fields outside src/watcher.ts:\n${offenders.join("\n")}`,
  );
});

Deno.test("the writer finder sees every form of write and no read", () => {
  for (
    const w of ["c.x = 1", "c.x += 2", "c.x++", "++c.x", "c.x ||= 3", "this.#c.x = 1", "core.x--"]
  ) {
    assert.ok(writes(w, CORE, "x"), w);
  }
  for (const r of ["c.x === 1", "c.x == 1", "c.xy = 1", "abc.x = 1", "f(c.x)", "c.x >= 1"]) {
    assert.ok(!writes(r, CORE, "x"), r);
  }
  assert.deepEqual(
    coreFields(
      "export class CacheCore<T> {\n  a = 0;\n  readonly b: number;\n  c!: W;\n  constructor() {}\n  d = 1;\n}",
    ),
    ["a", "b", "c"],
  );
});

/** The state `Freshness` owns: none of it may come back to `CacheCore`. */
const FRESHNESS_STATE = [
  "store",
  "reservations",
  "offline",
  "complete",
  "tombstones",
  "gen",
  "sweepBefore",
  "lossy",
  "partial",
  "overflowed",
  "dropBelow",
  "gapFloor",
  "bucketTtlMs",
];

/** The store's own files: they may name `LocalStore` and write its columns. */
const STORE_FILES =
  /^src\/(local_store.*|store_scan|store_image|negative_slots|lru_list|slot.*)\.ts$/;
const FRESHNESS = "src/cache/freshness.ts";
/** Freshness's own files: the class, and the shapes it takes (`StoreView` is typed from `LocalStore`). */
const FRESHNESS_FILES = new Set([FRESHNESS, "src/cache/freshness_change.ts"]);

/** The methods and setters of `LocalStore` that change what it holds. */
const STORE_WRITERS = [
  "put",
  "putValue",
  "delete",
  "clear",
  "sweep",
  "dropBelow",
  "dropTombstones",
  "decoded",
  "rejected",
  "loadImage",
  "bucketTtlMs",
] as const;

// Compile-time: the read side handed out has no writer (a writer added to
// `StoreView` makes this file fail to type-check).
const viewHasNoWriter: Extract<keyof StoreView, typeof STORE_WRITERS[number]> extends never ? true
  : false = true;

/** The instance fields a class in `source` declares that are not `#private`. */
export function publicFields(source: string, cls: string): string[] {
  const body = source.slice(source.indexOf(`export class ${cls}`));
  const end = body.indexOf("\n  constructor(");
  const out: string[] = [];
  for (const m of body.slice(0, end).matchAll(/^ {2}(?:readonly )?([a-zA-Z]\w*)[!?]?\s*[:=]/gm)) {
    out.push(m[1]!);
  }
  return out;
}

/** Whether `text` calls a store writer or names the store's class. */
export function writesStore(text: string): string | undefined {
  if (/\bLocalStore\b/.test(text)) return "names LocalStore";
  const calls = new RegExp(
    `\\b\\w*(?:store|Store|view|View)(?:\\s+as\\s+[\\w<>]+\\))?\\s*\\.\\s*(${
      STORE_WRITERS.join("|")
    })\\b\\s*(?:\\(|=(?!=))`,
  );
  const m = calls.exec(text);
  return m ? `calls ${m[0].trim()}` : undefined;
}

Deno.test("Freshness alone owns the store and the state of rules 1-3 and 6", async (t) => {
  assert.ok(viewHasNoWriter);
  const files = await tsFiles("src");
  await t.step("CacheCore declares none of the state Freshness owns", async () => {
    const fields = coreFields(await Deno.readTextFile(new URL("src/cache/core.ts", ROOT)));
    const back = FRESHNESS_STATE.filter((f) => fields.includes(f));
    assert.deepEqual(back, [], `back on CacheCore: ${back.join(", ")}`);
  });
  await t.step("every field of Freshness is #private", async () => {
    const source = code(await Deno.readTextFile(new URL(FRESHNESS, ROOT)));
    assert.ok(source.includes("export class Freshness"));
    assert.deepEqual(publicFields(source, "Freshness"), []);
  });
  await t.step("no other module names LocalStore or calls a writer of the store", async () => {
    const offenders: string[] = [];
    for (const f of files) {
      if (FRESHNESS_FILES.has(f) || STORE_FILES.test(f)) continue;
      const why = writesStore(code(await Deno.readTextFile(new URL(f, ROOT))));
      if (why !== undefined) offenders.push(`${f}: ${why}`);
    }
    assert.deepEqual(
      offenders,
      [],
      `the store written outside ${FRESHNESS}:\n${offenders.join("\n")}`,
    );
  });
});

Deno.test("the store-writer finder sees writes and names, and no read", () => {
  for (
    const w of [
      "c.freshness.view.put(k, 1, 0, raw)",
      "this.#store.putValue(k, v)",
      "store.delete(k)",
      "store.bucketTtlMs = 5",
      "(c.freshness.view as any).dropBelow(3)",
      "const s: LocalStore = x",
    ]
  ) {
    assert.ok(writesStore(w) !== undefined, w);
  }
  for (
    const r of [
      "store.peek(k)",
      "c.freshness.view.find(k)",
      "c.reservations.delete(k)",
      "store.bucketTtlMs === 5",
      "c.freshness.apply(change)",
    ]
  ) {
    assert.equal(writesStore(r), undefined, r);
  }
  assert.deepEqual(
    publicFields(
      "export class Freshness {\n  #a = 0;\n  b = 1;\n  constructor() {}\n}",
      "Freshness",
    ),
    ["b"],
  );
});
