/**
 * The lifecycle and the bookmark waiters as owners, checked: every field of
 * `Lifecycle` (src/cache/lifecycle.ts) and of `Reached`
 * (src/cache/reached.ts) is `#private` and neither has a setter; none of the
 * lifecycle's facts, nor `onFresh` or `savedRevision`, is back on `CacheCore`;
 * the `ready` promise is settled only in lifecycle.ts; and no module of src/
 * casts the core, the lifecycle or `Reached` to a type it could write through
 * (`as unknown as`, `as any`, a `-readonly` mapped type). The rest of the
 * owner checks are tests/unit/owners_test.ts. Starts no server.
 */
import assert from "node:assert/strict";
import { code, coreFields, declaredFields, members, publicFields } from "./_owners.ts";
import { ROOT, tsFiles } from "./_source.ts";

const LIFECYCLE = "src/cache/lifecycle.ts";
/** The owners whose state must be `#private` (file → class). */
const OWNERS: Record<string, string> = {
  [LIFECYCLE]: "Lifecycle",
  "src/cache/reached.ts": "Reached",
  "src/cache/snapshot_mark.ts": "SnapshotMark",
};
/** The facts `Lifecycle` owns, and what used to be written from outside: none on `CacheCore`. */
const LIFECYCLE_STATE = [
  "state",
  "since",
  "connected",
  "disconnectedAt",
  "resyncing",
  "resyncEpoch",
  "isReady",
  "closed",
  "closing",
  "fresh",
  "ready",
  "lastError",
  "onFresh",
  "savedRevision",
];

/** The core, the lifecycle and `Reached` as src/ names them. */
const OWNED = "(?:\\bc|\\bcore|this\\.#c|this\\.#core|\\blife|\\w+\\.life|\\w*\\.?reached)";

/** How `text` gets a writable handle on the core, the lifecycle or `Reached`, if it does. */
export function writableCast(text: string): string | undefined {
  const patterns = [
    // `(c as unknown as X)`, `life as any`, `c.reached as Writable<…>`
    new RegExp(`${OWNED}\\s*\\)?\\s+as\\s+(?!const\\b)[\\w<{(]`),
    // `x as unknown as CacheCore<T>`, `as Mutable<Lifecycle>`
    /\bas\s+(?:unknown\s+as\s+)?[^;,)\n]*\b(?:CacheCore|Lifecycle|Reached|SnapshotMark)\b/,
    // `{ -readonly [K in …]: … }`: the mapped type that made the core writable before.
    /-readonly\b/,
  ];
  for (const p of patterns) {
    const m = p.exec(text);
    if (m) return m[0].trim();
  }
  return undefined;
}

/** Where `text` settles a `ready` promise (`ready.resolve(`, `#ready.reject(`…), if it does. */
export function settlesReady(text: string): string | undefined {
  const m = /#?\bready\s*\??\.\s*(?:resolve|reject)\s*\(/.exec(text);
  return m ? m[0] : undefined;
}

Deno.test("the lifecycle, Reached and the snapshot mark own their state", async (t) => {
  for (const [file, cls] of Object.entries(OWNERS)) {
    await t.step(`${cls}: every field #private, no setter`, async () => {
      const source = code(await Deno.readTextFile(new URL(file, ROOT)));
      assert.ok(declaredFields(source, cls).size > 0, `found the fields of ${cls}`);
      assert.deepEqual(publicFields(source, cls), [], `public fields of ${cls}`);
      const all = [...declaredFields(source, cls).keys()].filter((f) => !f.startsWith("#"));
      assert.deepEqual(all, [], `fields of ${cls} that are not #private`);
      const setters = members(source, cls).filter((m) => /^ {2}(?:\w+\s+)*set\s/.test(m.text));
      assert.deepEqual(setters.map((m) => m.name), [], `setters of ${cls}`);
    });
  }
  await t.step("CacheCore declares none of the lifecycle's facts", async () => {
    const fields = coreFields(await Deno.readTextFile(new URL("src/cache/core.ts", ROOT)));
    assert.ok(fields.includes("life"), `CacheCore has no life: ${fields.join(", ")}`);
    const back = LIFECYCLE_STATE.filter((f) => fields.includes(f));
    assert.deepEqual(back, [], `back on CacheCore: ${back.join(", ")}`);
  });
  await t.step("only lifecycle.ts settles `ready`; no module casts an owner writable", async () => {
    const offenders: string[] = [];
    for (const f of await tsFiles("src")) {
      const text = code(await Deno.readTextFile(new URL(f, ROOT)));
      const settles = f === LIFECYCLE ? undefined : settlesReady(text);
      if (settles !== undefined) offenders.push(`${f}: settles ready (${settles})`);
      const cast = writableCast(text);
      if (cast !== undefined) offenders.push(`${f}: casts (${cast})`);
    }
    assert.deepEqual(offenders, [], offenders.join("\n"));
  });
});

Deno.test("the cast and ready finders see what they look for, and no innocent code", () => {
  for (
    const w of [
      "const l = core as unknown as Lifecycle<T>;",
      "(c as any).state = 'synced'",
      "(this.#c as Mutable<CacheCore<T>>).closed = true",
      "c.life as unknown as { closed: boolean }",
      "const r = c.reached as { applied: number };",
      "x as unknown as Reached",
      "type W<T> = { -readonly [K in F]: CacheCore<T>[K] };",
    ]
  ) {
    assert.ok(writableCast(w) !== undefined, w);
  }
  for (
    const r of [
      "const next = { seq } as unknown as MsgRequest;",
      "const c = x as const;",
      "if (c.life.closed) throw err;",
      "c.reached.advance(rev)",
      "return undefined as unknown as string;",
      "const core: CacheCore<T> = new CacheCore(deps, parts);",
    ]
  ) {
    assert.equal(writableCast(r), undefined, r);
  }
  for (const w of ["c.ready.resolve()", "this.#ready.reject(err)", "c.life.ready?.reject(e)"]) {
    assert.ok(settlesReady(w) !== undefined, w);
  }
  for (const r of ["this.#c.life.ready", "c.life.startFailed(e)", "alreadyResolved()"]) {
    assert.equal(settlesReady(r), undefined, r);
  }
});
