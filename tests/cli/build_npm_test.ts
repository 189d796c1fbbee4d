/**
 * The pure parts of scripts/build_npm.ts (the whole build is run by
 * tests/packages/packages_test.ts): specifier rewriting, package names and
 * version ranges. Starts no server.
 */
import assert from "node:assert/strict";
import { entryPoints, packageOf, rangeOf, rewriteImports } from "../../scripts/build_npm.ts";

Deno.test("build_npm: relative .ts imports become .js; comments and bare imports stay", () => {
  const source = [
    "/**",
    " * @example",
    ' * import { openCache } from "../../mod.ts";',
    " */",
    'import { a } from "./a.ts";',
    'export { b } from "../b.ts";',
    "import {",
    "  c,",
    '} from "./c/d.ts";',
    'import type { E } from "@nats-io/kv";',
    'import { HTTPException } from "hono/http-exception";',
    'import { createHash } from "node:crypto";',
    'const fs = await import("node:fs/promises");',
    'const t = await import("@nats-io/transport-node");',
    "// see ./x.ts",
  ].join("\n");
  const { text, bare, local } = rewriteImports(source);
  assert.deepEqual(local, ["./a.ts", "../b.ts", "./c/d.ts"]);
  assert.deepEqual(bare, ["@nats-io/kv", "hono/http-exception", "@nats-io/transport-node"]);
  assert.match(text, /from "\.\/a\.js";/);
  assert.match(text, /from "\.\.\/b\.js";/);
  assert.match(text, /\} from "\.\/c\/d\.js";/);
  assert.match(text, / \* import \{ openCache \} from "\.\.\/\.\.\/mod\.ts";/, "JSDoc untouched");
  assert.equal(text.split("\n").length, source.split("\n").length);
});

Deno.test("build_npm: package names, version ranges and entry points come from deno.json", () => {
  assert.equal(packageOf("hono/http-exception"), "hono");
  assert.equal(packageOf("@nats-io/kv"), "@nats-io/kv");
  const imports = {
    "@nats-io/kv": "npm:@nats-io/kv@^3.4.0",
    "hono": "npm:hono@^4.13.0",
    "hono/": "npm:/hono@^4.13.0/",
  };
  assert.equal(rangeOf(imports, "@nats-io/kv"), "^3.4.0");
  assert.equal(rangeOf(imports, "hono"), "^4.13.0");
  assert.throws(() => rangeOf(imports, "zod"), /no npm version of "zod"/);
  assert.deepEqual(entryPoints("./mod.ts"), { ".": "./mod.ts" });
  assert.deepEqual(entryPoints({ ".": "./mod.ts", "./http": "./src/http/app.ts" }), {
    ".": "./mod.ts",
    "./http": "./src/http/app.ts",
  });
});
