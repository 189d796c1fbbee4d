/**
 * `deno run -A scripts/build_npm.ts [--out DIR]`: builds the npm package from
 * the same sources JSR publishes: ESM JavaScript and `.d.ts` beside it, one
 * entry point per `exports` entry of deno.json, into `dist/npm/` (or DIR),
 * ready for `npm pack` / `npm publish`.
 *
 * How: every module reachable from the entry points is copied to a staging
 * folder with its relative `.ts` import specifiers rewritten to `.js`, then
 * compiled by `tsc` (TypeScript 5.9 from npm, installed into .runtimes/build by
 * scripts/setup.sh; `@types/node` for the `node:` imports). The package's
 * `dependencies` are the npm packages those modules import, at the ranges of
 * deno.json's `imports`. Node refuses to strip types under node_modules, so
 * the package ships JavaScript.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { parseArgs } from "node:util";

const ROOT = fileURLToPath(new URL("../", import.meta.url));
const TSC = join(ROOT, ".runtimes/build/node_modules/typescript/bin/tsc");
const TYPES = join(ROOT, ".runtimes/build/node_modules/@types");
const IMPORT =
  /((?:^|\s)(?:import|export)\s[^;]*?from\s*|import\(\s*|^import\s*)(["'])([^"']+)\2/gm;

interface DenoJson {
  name: string;
  version: string;
  license: string;
  exports: string | Record<string, string>;
  imports: Record<string, string>;
}

/** A failure of the build, printed without a stack. */
class BuildError extends Error {}

/** `{ "./sub": "./sub.ts" }` from deno.json's `exports` (a string means `"."`). */
export function entryPoints(exports: DenoJson["exports"]): Record<string, string> {
  return typeof exports === "string" ? { ".": exports } : exports;
}

/**
 * `source` with the relative `.ts` specifiers of its imports made `.js`, and
 * the specifiers it imports. Lines of comments (JSDoc examples import
 * `../../mod.ts`) are left alone: a line starting with `*` or `//` is one.
 */
export function rewriteImports(source: string): { text: string; bare: string[]; local: string[] } {
  const bare: string[] = [];
  const local: string[] = [];
  const lines = source.split("\n");
  const code = lines.map((l) => /^\s*(\*|\/\/|\/\*)/.test(l) ? "" : l);
  const text = code.join("\n").replace(
    IMPORT,
    (whole, head: string, quote: string, spec: string) => {
      if (spec.startsWith(".")) {
        local.push(spec);
        return `${head}${quote}${spec.replace(/\.ts$/, ".js")}${quote}`;
      }
      if (!spec.startsWith("node:")) bare.push(spec);
      return whole;
    },
  ).split("\n").map((l, i) => l === "" ? lines[i] : l).join("\n");
  return { text, bare, local };
}

/** The npm package a bare specifier names: `hono/http-exception` → `hono`. */
export function packageOf(spec: string): string {
  const parts = spec.split("/");
  return spec.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!;
}

/** The version range deno.json gives `pkg`: `"npm:@nats-io/kv@^3.4.0"` → `"^3.4.0"`. */
export function rangeOf(imports: Record<string, string>, pkg: string): string {
  const target = imports[pkg] ?? imports[`${pkg}/`];
  const m = target?.match(/^npm:\/?(@?[^@]+)@([^/]+)\/?$/);
  if (!m || m[1] !== pkg) {
    throw new BuildError(`Cannot build: deno.json's imports give no npm version of "${pkg}"`);
  }
  return m[2]!;
}

async function run(cmd: string, args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
    .output();
  if (!out.success) {
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    throw new BuildError(`Cannot build: ${relative(ROOT, cmd)} failed:\n${text}`);
  }
}

/** Builds the package into `out` (emptied first); returns its package.json. */
export async function buildNpm(out: string): Promise<Record<string, unknown>> {
  try {
    await Deno.stat(TSC);
  } catch {
    throw new BuildError(`Cannot build: no tsc at ${TSC}; run bash scripts/setup.sh`);
  }
  const deno = JSON.parse(await Deno.readTextFile(join(ROOT, "deno.json"))) as DenoJson;
  const entries = entryPoints(deno.exports);
  // Inside the repository, so that tsc finds the dependencies in its node_modules/;
  // its own name, so that two builds at once do not share it.
  const stage = join(ROOT, `dist/.stage-${crypto.randomUUID().slice(0, 8)}`);
  await Deno.remove(out, { recursive: true }).catch(() => {});

  try {
    // Copy the module graph of the entry points, specifiers rewritten.
    const packages = new Set<string>();
    const todo = Object.values(entries).map((e) => join(ROOT, e));
    const seen = new Set<string>();
    while (todo.length > 0) {
      const file = todo.pop()!;
      if (seen.has(file)) continue;
      seen.add(file);
      const { text, bare, local } = rewriteImports(await Deno.readTextFile(file));
      for (const spec of bare) packages.add(packageOf(spec));
      for (const spec of local) todo.push(join(dirname(file), spec));
      const target = join(stage, relative(ROOT, file));
      await Deno.mkdir(dirname(target), { recursive: true });
      await Deno.writeTextFile(target, text);
    }
    await Deno.writeTextFile(join(stage, "package.json"), JSON.stringify({ type: "module" }));
    await Deno.writeTextFile(
      join(stage, "tsconfig.json"),
      JSON.stringify({
        compilerOptions: {
          target: "ES2022",
          module: "NodeNext",
          moduleResolution: "NodeNext",
          lib: ["ES2024", "DOM", "DOM.Iterable"],
          types: ["node"],
          typeRoots: [TYPES],
          declaration: true,
          strict: true,
          noImplicitOverride: true,
          skipLibCheck: true,
          outDir: out,
          rootDir: stage,
        },
        files: Object.values(entries).map((e) => join(stage, e)),
      }),
    );
    // `node` runs tsc: the one on PATH is enough (tsc runs on Node 14+).
    await run("node", [TSC, "-p", join(stage, "tsconfig.json")], stage);

    const exportsMap: Record<string, { types: string; default: string }> = {};
    for (const [name, file] of Object.entries(entries)) {
      const js = file.replace(/\.ts$/, ".js");
      exportsMap[name] = { types: js.replace(/\.js$/, ".d.ts"), default: js };
    }
    const pkg = {
      name: deno.name,
      version: deno.version,
      description:
        "An edge cache for NATS JetStream KV: a bounded in-process LRU kept fresh by a " +
        "revision-checked watcher, with an HTTP facade and projections.",
      license: deno.license,
      type: "module",
      exports: exportsMap,
      engines: { node: ">=22" },
      dependencies: Object.fromEntries(
        [...packages].sort().map((p) => [p, rangeOf(deno.imports, p)]),
      ),
    };
    await Deno.writeTextFile(join(out, "package.json"), JSON.stringify(pkg, null, 2) + "\n");
    for (const f of ["README.md", "LICENSE"]) await Deno.copyFile(join(ROOT, f), join(out, f));
    return pkg;
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  let dir: string | undefined;
  try {
    dir = parseArgs({ args: Deno.args, options: { out: { type: "string" } } }).values.out;
  } catch {
    console.error("usage: deno run -A scripts/build_npm.ts [--out DIR]");
    Deno.exit(2);
  }
  const out = dir !== undefined ? resolve(dir) : join(ROOT, "dist/npm");
  try {
    const pkg = await buildNpm(out);
    console.log(`built ${pkg.name}@${pkg.version} into ${relative(Deno.cwd(), out) || "."}`);
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    console.error(err.message);
    Deno.exit(1);
  }
}
