/**
 * One owner per piece of the cache's state, checked: every field of
 * `CacheCore` (src/cache/core.ts) is written by at most one module of src/
 * (its owner; the lifecycle fields by `transition()` in sync_state.ts, the
 * counters behind `Counters`, `lossy`/`partial`/`tombstones` by apply.ts…),
 * and nothing outside src/watcher.ts writes a watcher's fields (it is placed
 * with `Watcher.place()` before it starts). A second writer fails here with
 * the files that write the field. Starts no server.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await tsFiles(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** `text` without comments (a comment may show an assignment). */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/^\s*\/\/.*$/gm, "").replace(
    /\s\/\/.*$/gm,
    "",
  );
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
