/**
 * The packages, as a user gets them. JSR: `deno publish --dry-run` passes
 * with no warning and publishes only the library. npm: the package built by
 * scripts/build_npm.ts packs, installs from its tarball into a scratch
 * project, type-checks there (tsc, NodeNext), and is imported by name from
 * Node 22, Node 24 and Bun, which open a cache with it against a nats-server
 * this test starts; Node 20 gets `UnsupportedRuntimeError` at open.
 *
 * The scratch install resolves the package's dependencies (nats.js, hono,
 * zod, lru-cache) through npm with --prefer-offline: from npm's cache once a
 * first run has filled it, from the registry before that.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { startServer, uniqueBucket } from "../_setup.ts";
import { NODE_20, RUNTIMES } from "../_runtimes.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const TSC = join(ROOT, ".runtimes/build/node_modules/typescript/bin/tsc");
/** The entry points deno.json's `exports` declares: the cache, the HTTP facade, projections, workerd. */
const ENTRIES = ["mod.ts", "http.ts", "projection.ts", "workerd.ts"];

async function run(
  cmd: string,
  args: string[],
  cwd: string,
  env: Record<string, string> = {},
): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd,
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(300_000),
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(
    out.success,
    `${cmd} ${args.join(" ")} failed (exit ${out.code}):\n${stdout}\n${stderr}`,
  );
  return stdout + stderr;
}

Deno.test("JSR: deno publish --dry-run is clean and publishes only the library", async () => {
  const out = await run(Deno.execPath(), ["publish", "--dry-run", "--allow-dirty"], ROOT);
  assert.doesNotMatch(out, /warning/i, out);
  // One line per file: "   file:///…/src/open.ts (7.64KB)".
  const files = [...out.matchAll(/^\s+file:\/\/(\S+) \(/gm)].map((m) => m[1]!.slice(ROOT.length));
  for (const f of [...ENTRIES, "LICENSE", "README.md", "src/open.ts"]) {
    assert.ok(files.includes(f), `${f} is not published:\n${out}`);
  }
  const outside = files.filter((f) =>
    ![...ENTRIES, "LICENSE", "README.md", "deno.json"].includes(f) &&
    !f.startsWith("src/")
  );
  assert.deepEqual(
    outside,
    [],
    `only the entry points (${
      ENTRIES.join(", ")
    }), src/, README.md, LICENSE (and deno.json) are published`,
  );
});

Deno.test("npm: the package packs, installs from its tarball, type-checks and runs on Node and Bun", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge-npm-" });
  await using srv = await startServer({ websocket: true });
  try {
    const pkgDir = join(dir, "package");
    const app = join(dir, "app");
    let tarball = "";
    await t.step("scripts/build_npm.ts builds it and npm pack packs it", async () => {
      await run(Deno.execPath(), ["run", "-A", "scripts/build_npm.ts", "--out", pkgDir], ROOT);
      await run("npm", ["pack", "--silent", "--pack-destination", dir], pkgDir);
      const packed = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".tgz"));
      assert.equal(packed.length, 1);
      tarball = join(dir, packed[0]!.name);
      const listing = await run("tar", ["-tzf", tarball], dir);
      for (const entry of ENTRIES) {
        const name = entry.replace(/\.ts$/, "");
        assert.match(listing, new RegExp(`^package/${name}\\.js$`, "m"));
        assert.match(listing, new RegExp(`^package/${name}\\.d\\.ts$`, "m"));
      }
      assert.doesNotMatch(listing, /\.ts$(?<!\.d\.ts)/m, "no TypeScript sources are shipped");
      assert.doesNotMatch(listing, /^package\/(tests|scripts|host|workers)\//m);
    });
    await t.step("it installs into a scratch project", async () => {
      await Deno.mkdir(app);
      await Deno.writeTextFile(
        join(app, "package.json"),
        JSON.stringify({ name: "scratch", private: true, type: "module" }),
      );
      await run("npm", [
        "install",
        "--prefer-offline",
        "--no-audit",
        "--no-fund",
        "--silent",
        tarball,
      ], app);
      await Deno.copyFile(
        fileURLToPath(new URL("./_npm_app.mjs", import.meta.url)),
        join(app, "check.mjs"),
      );
    });
    await t.step("its types check from the package name (tsc, NodeNext)", async () => {
      await Deno.writeTextFile(join(app, "types.ts"), TYPES_CHECK);
      await run("node", [
        TSC,
        "--noEmit",
        "--strict",
        "--skipLibCheck",
        "--module",
        "NodeNext",
        "--moduleResolution",
        "NodeNext",
        "--typeRoots",
        join(ROOT, ".runtimes/build/node_modules/@types"),
        "--types",
        "node",
        "types.ts",
      ], app);
    });
    for (const [name, binary] of Object.entries(RUNTIMES)) {
      await t.step(`${name} imports it by name and opens a cache with it`, async () => {
        const out = await run(binary, ["check.mjs", srv.tcpUrl, uniqueBucket()], app);
        const result = JSON.parse(out.trim().split("\n").at(-1)!);
        assert.ok(result.runtime.startsWith(name.split(" ")[0]), result.runtime);
        assert.equal(result.revision, 1);
        assert.deepEqual(result.value, { n: 1 });
        assert.equal(result.source, "hit");
        assert.equal(result.fetchHandler, "function");
        assert.equal(result.runtimeError, "UNSUPPORTED_RUNTIME");
        assert.notEqual(result.internals, "importable", "only the declared exports are importable");
      });
    }
    await t.step(
      "node 20 imports it, and opening a cache fails at once with UnsupportedRuntimeError",
      async () => {
        await Deno.copyFile(
          fileURLToPath(new URL("./_npm_node20.mjs", import.meta.url)),
          join(app, "node20.mjs"),
        );
        const out = await run(NODE_20, ["node20.mjs", srv.tcpUrl, srv.wsUrl!], app);
        const results = out.trim().split("\n").map((l) => JSON.parse(l));
        assert.deepEqual(
          results,
          [srv.tcpUrl, srv.wsUrl].map((servers) => ({
            servers,
            name: "UnsupportedRuntimeError",
            code: "UNSUPPORTED_RUNTIME",
            missing: "Promise.withResolvers",
          })),
        );
      },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const TYPES_CHECK = `
import { type Cache, type CacheOptions, openCache, type SnapshotStorage } from "@kvedge/kvedge";
import { createFetchHandler, type FetchHandler } from "@kvedge/kvedge/http";
import { defineProjection, type Projection } from "@kvedge/kvedge/projection";

const options: CacheOptions<{ n: number }> = {
  servers: "nats://127.0.0.1:4222",
  bucket: "b",
  local: { maxItems: 10 },
};
const storage: SnapshotStorage = {
  read: () => Promise.resolve(undefined),
  write: () => Promise.resolve(),
};
export const opening: Promise<Cache<{ n: number }>> = openCache({
  ...options,
  mode: "replica",
  snapshot: { storage },
});
export const handler: FetchHandler = createFetchHandler({
  servers: "wss://nats.example.com",
  buckets: { config: { mode: "lazy" } },
  local: { maxItems: 10 },
});
export const latest: Projection<{ n: number }> = defineProjection<{ n: number }>({
  name: "latest",
  source: { stream: "EVENTS" },
  target: "latest",
  map: (event) => ({ key: event.subject, value: { n: 1 } }),
});
// @ts-expect-error: a cache of another type is refused by the types.
export const wrong: Promise<Cache<string>> = openCache<{ n: number }>(options);
`;
