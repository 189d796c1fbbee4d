/**
 * The house rules of the source tree, checked: the library (`src/`, `mod.ts`)
 * never imports the host side (`host/`), the workers, the scripts or the
 * tests; scripts and workers never import from `tests/`. Starts no server.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const IMPORT =
  /(?:^|\s)(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;
/(?:^|\s)(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)/g;

/** Every `.ts` file under `dir` (relative to the project root). */
async function tsFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(new URL(dir, ROOT))) {
    const path = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await tsFiles(path));
    else if (e.name.endsWith(".ts")) out.push(path);
  }
  return out;
}

/** The project-relative targets of the relative imports of `file`. */
async function importsOf(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(new URL(file, ROOT));
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (!spec.startsWith(".")) continue;
    const target = new URL(spec, new URL(file, ROOT)).href.slice(ROOT.href.length);
    out.push(target);
  }
  return out;
}

/** `file → target` for every import of a file under `from` into one of `forbidden`. */
async function crossings(from: string[], forbidden: string[]): Promise<string[]> {
  const bad: string[] = [];
  for (const dir of from) {
    const files = dir.endsWith(".ts") ? [dir] : await tsFiles(dir);
    for (const file of files) {
      for (const target of await importsOf(file)) {
        if (forbidden.some((f) => target.startsWith(f))) bad.push(`${file} → ${target}`);
      }
    }
  }
  return bad;
}

Deno.test("the library imports neither the host side, the workers, the scripts nor the tests", async () => {
  const bad = await crossings(["mod.ts", "src"], ["host/", "workers/", "scripts/", "tests/"]);
  assert.deepEqual(bad, []);
});

Deno.test("host, workers and scripts never import from tests/", async () => {
  const bad = await crossings(["host", "workers", "scripts"], ["tests/"]);
  assert.deepEqual(bad, []);
});

Deno.test("the import scanner sees the imports it judges", async () => {
  // Guards the two tests above against a pattern that matches nothing.
  const seen = await importsOf("workers/edge.ts");
  assert.ok(seen.some((t) => t.startsWith("host/")), seen.join(", "));
  assert.ok(seen.includes("mod.ts") || seen.some((t) => t.startsWith("src/")), seen.join(", "));
});
