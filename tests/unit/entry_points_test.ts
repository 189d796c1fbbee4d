/**
 * The entry points, one per audience: `mod.ts` the cache, `http.ts` the HTTP
 * facade, `projection.ts` projections, `workerd.ts` Cloudflare's runtime.
 * Each is declared in deno.json's `exports` and published; `mod.ts` neither
 * exports the facade or projections nor loads them (the reason it does not
 * re-export them: docs/architecture.md, "Entry points"); every export of
 * every entry has JSDoc (`deno doc --lint`) with an `@example` that
 * type-checks (`deno check --doc`). Starts no server (`deno info`, `deno doc`
 * and `deno check` subprocesses only).
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as cache from "../../mod.ts";
import * as http from "../../http.ts";
import * as projection from "../../projection.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const ENTRIES: Record<string, string> = {
  ".": "./mod.ts",
  "./http": "./http.ts",
  "./projection": "./projection.ts",
  "./workerd": "./workerd.ts",
};

async function deno(args: string[]): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.ok(out.success, `deno ${args.join(" ")} failed:\n${text}`);
  return new TextDecoder().decode(out.stdout);
}

Deno.test("deno.json declares one entry point per audience and publishes each", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}deno.json`));
  assert.deepEqual(config.exports, ENTRIES);
  for (const file of Object.values(ENTRIES)) {
    assert.ok(config.publish.include.includes(file.slice(2)), `${file} is not published`);
    assert.match(config.tasks.ok, new RegExp(`doc --lint[^&]*${file.slice(2)}`), file);
  }
});

Deno.test("each audience's names come from its own entry point", () => {
  assert.equal(typeof cache.openCache, "function");
  assert.equal(typeof cache.Bookmark, "function");
  assert.equal(typeof cache.ProjectionMapError, "function", "every error class is in mod.ts");
  assert.equal(typeof http.createApp, "function");
  assert.equal(typeof http.createFetchHandler, "function");
  assert.equal(typeof projection.defineProjection, "function");
  assert.equal(typeof projection.runProjection, "function");
  assert.equal(projection.ProjectionMapError, cache.ProjectionMapError);
  const moved = ["createApp", "createFetchHandler", "defineProjection", "runProjection"];
  assert.deepEqual(moved.filter((name) => name in cache), [], "mod.ts re-exports another audience");
});

Deno.test("mod.ts loads neither the HTTP facade nor projections (nor Hono)", async () => {
  const info = JSON.parse(await deno(["info", "--json", "mod.ts"])) as {
    modules: { specifier: string }[];
  };
  const specifiers = info.modules.map((m) => m.specifier.replace(`file://${ROOT}`, ""));
  // Guards against a graph that reaches nothing: the cache itself is in it.
  assert.ok(specifiers.includes("src/cache.ts"), specifiers.join(", "));
  const foreign = specifiers.filter((s) =>
    s.startsWith("src/http/") || s.startsWith("src/projection/") || /\bhono@/.test(s)
  );
  assert.deepEqual(foreign, []);
});

Deno.test("every export of every entry point has JSDoc (deno doc --lint)", async () => {
  await deno(["doc", "--lint", ...Object.values(ENTRIES)]);
});

interface DocSymbol {
  name: string;
  file: string;
  hasExample: boolean;
}

/** The exported symbols of `entry`, where each is declared, and whether its JSDoc has an `@example`. */
async function exportsOf(entry: string): Promise<DocSymbol[]> {
  type Decl = { location?: { filename?: string }; jsDoc?: { tags?: { kind: string }[] } };
  type Node = { name?: string; kind?: string; declarations?: Decl[] } & Decl;
  const doc = JSON.parse(await deno(["doc", "--json", entry])) as {
    nodes: Node[] | Record<string, Node[] | { symbols?: Node[] }>;
  };
  const nodes = Array.isArray(doc.nodes)
    ? doc.nodes
    : Object.values(doc.nodes).flatMap((v) => Array.isArray(v) ? v : v.symbols ?? []);
  return nodes.filter((n) => n.name !== undefined && n.kind !== "moduleDoc").map((n) => {
    const decls = n.declarations ?? [n];
    return {
      name: n.name!,
      file: (decls[0]?.location?.filename ?? "").replace(`file://${ROOT}`, ""),
      hasExample: decls.some((d) => (d.jsDoc?.tags ?? []).some((t) => t.kind === "example")),
    };
  });
}

Deno.test("every export of every entry point has an @example, and the examples type-check", async () => {
  const symbols = (await Promise.all(Object.values(ENTRIES).map(exportsOf))).flat();
  // Guards against a walk that sees nothing: openCache and createApp are in it.
  assert.ok(symbols.some((s) => s.name === "openCache" && s.hasExample), "openCache");
  assert.ok(symbols.some((s) => s.name === "createApp" && s.hasExample), "createApp");
  const without = symbols.filter((s) => !s.hasExample);
  assert.deepEqual(without.map((s) => `${s.name} (${s.file})`), []);
  const files = [...new Set(symbols.map((s) => s.file))].filter((f) => f.endsWith(".ts"));
  await deno(["check", "--doc", ...Object.values(ENTRIES), ...files]);
});
