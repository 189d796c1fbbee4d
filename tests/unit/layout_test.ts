/**
 * The house rules of the source tree, checked: the library (`src/`, `mod.ts`)
 * never imports the host side (`host/`), the workers, the scripts or the
 * tests; host, workers, scripts and the harness in `testing/` never import
 * from `tests/`; no test fixture lives under `scripts/`, whose top level has
 * no `_` helpers; no static import cycle anywhere reachable from the entry
 * points; and one place per piece of knowledge (describe, UsageError, waits,
 * NATS error classification, the reconnect policy, the Prometheus renderer,
 * the worker's facade bounds). No error is told apart by its message text and
 * no file reads `Deno.args` but through a parser. Starts no server.
 */
import assert from "node:assert/strict";
import { ROOT, tsFiles, withoutComments } from "./_source.ts";

const IMPORT =
  /(?:^|\s)(?:import|export)\s[^;]*?from\s*["']([^"']+)["']|import\(\s*["']([^"']+)["']\s*\)|^import\s*["']([^"']+)["']/gm;

/**
 * The project-relative targets of the relative imports of `file`; with
 * `staticOnly`, without the `import("...")` calls.
 */
async function importsOf(file: string, staticOnly = false): Promise<string[]> {
  const text = withoutComments(await Deno.readTextFile(new URL(file, ROOT)));
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT)) {
    if (staticOnly && m[2] !== undefined) continue;
    const spec = m[1] ?? m[2] ?? m[3]!;
    if (!spec.startsWith(".")) continue;
    const target = new URL(spec, new URL(file, ROOT)).href.slice(ROOT.href.length);
    out.push(target);
  }
  return out;
}

/** Every `.ts` file under `tests/` but the tests of the scripts (`tests/cli/*_test.ts`). */
async function notCliTests(): Promise<string[]> {
  return (await tsFiles("tests")).filter((f) => !/^tests\/cli\/[^/]+_test\.ts$/.test(f));
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
  const bad = await crossings(
    ["mod.ts", "http.ts", "projection.ts", "workerd.ts", "src"],
    ["host/", "workers/", "scripts/", "tests/"],
  );
  assert.deepEqual(bad, []);
});

Deno.test("host, workers, scripts and testing never import from tests/", async () => {
  const bad = await crossings(["host", "workers", "scripts", "testing"], ["tests/"]);
  assert.deepEqual(bad, []);
});

Deno.test("the harness in testing/ is used by tests and scripts only, and uses no script", async () => {
  assert.deepEqual(await crossings(["mod.ts", "src", "host", "workers"], ["testing/"]), []);
  assert.deepEqual(await crossings(["testing"], ["scripts/"]), []);
});

Deno.test("no fixture under scripts/: only the tests of the scripts (tests/cli/*_test.ts) import it", async () => {
  // A fixture (a server, a proxy, waitFor) moved back under scripts/ is
  // imported by tests/_setup.ts or by tests of other areas; the tests of the
  // CLI tools and the bench import the modules they test, which is allowed.
  const others = [
    "mod.ts",
    "http.ts",
    "projection.ts",
    "workerd.ts",
    "src",
    "host",
    "workers",
    "testing",
  ];
  // The one argv parser is not a fixture: tests/torture reads its flags with it.
  const bad = (await crossings([...others, ...await notCliTests()], ["scripts/"]))
    .filter((b) => !(b.startsWith("tests/") && b.endsWith(" → scripts/cli/args.ts")));
  assert.deepEqual(bad, []);
});

Deno.test("scripts/ has no _-prefixed files at its top level: helpers live in a tool's folder", async () => {
  const bad: string[] = [];
  for await (const e of Deno.readDir(new URL("scripts/", ROOT))) {
    if (e.isFile && e.name.startsWith("_")) bad.push(`scripts/${e.name}`);
  }
  assert.deepEqual(bad, []);
});

Deno.test("the import scanner sees the imports it judges", async () => {
  // Guards the two tests above against a pattern that matches nothing.
  const seen = await importsOf("workers/edge.ts");
  assert.ok(seen.some((t) => t.startsWith("host/")), seen.join(", "));
  assert.ok(seen.includes("mod.ts") || seen.some((t) => t.startsWith("src/")), seen.join(", "));
});

/**
 * The static import graph of the `.ts` files reachable from `entries`
 * (files or folders), followed through every relative import.
 */
async function importGraph(entries: string[]): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const todo: string[] = [];
  for (const entry of entries) {
    todo.push(...(entry.endsWith(".ts") ? [entry] : await tsFiles(entry)));
  }
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (graph.has(file) || !file.endsWith(".ts")) continue;
    const targets = await importsOf(file, true);
    graph.set(file, targets);
    todo.push(...targets);
  }
  return graph;
}

/** Every import cycle of `graph`: its strongly connected components of two or more files (or a file importing itself). */
function cycles(graph: Map<string, string[]>): string[][] {
  // Tarjan's algorithm, iterative over an explicit stack of (file, next edge).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const out: string[][] = [];
  let next = 0;
  for (const root of graph.keys()) {
    if (index.has(root)) continue;
    const work: [string, number][] = [[root, 0]];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const top = work[work.length - 1]!;
      const [file, i] = top;
      const edges = graph.get(file) ?? [];
      if (i < edges.length) {
        top[1]++;
        const to = edges[i]!;
        if (!graph.has(to)) continue;
        if (!index.has(to)) {
          index.set(to, next);
          low.set(to, next++);
          stack.push(to);
          onStack.add(to);
          work.push([to, 0]);
        } else if (onStack.has(to)) {
          low.set(file, Math.min(low.get(file)!, index.get(to)!));
        }
        continue;
      }
      work.pop();
      const parent = work[work.length - 1];
      if (parent) low.set(parent[0], Math.min(low.get(parent[0])!, low.get(file)!));
      if (low.get(file) === index.get(file)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== file);
        if (component.length > 1 || edges.includes(file)) out.push(component.sort());
      }
    }
  }
  return out;
}

const ENTRIES = [
  "mod.ts",
  "http.ts",
  "projection.ts",
  "workerd.ts",
  "workers",
  "scripts",
  "host",
  "src",
];

Deno.test("no import cycle in src/ or host/ (static imports from every entry point)", async () => {
  const graph = await importGraph(ENTRIES);
  // Guards against a walk that reaches nothing: the facade and the gate are in it.
  assert.ok(
    graph.has("src/cache.ts") && graph.has("host/edge_listener.ts"),
    [...graph.keys()].join(),
  );
  const found = cycles(graph).filter((c) => c.some((f) => /^(src|host)\//.test(f)));
  assert.deepEqual(found.map((c) => c.join(" ↔ ")), []);
});

Deno.test("no import cycle anywhere reachable from the entry points", async () => {
  const found = cycles(await importGraph(ENTRIES));
  assert.deepEqual(found.map((c) => c.join(" ↔ ")), []);
});

Deno.test("the cycle finder finds a cycle, a self-import and nothing in a tree", () => {
  // Guards the cycle tests against a finder that finds nothing.
  const graph = new Map([
    ["a.ts", ["b.ts"]],
    ["b.ts", ["c.ts", "d.ts"]],
    ["c.ts", ["a.ts"]],
    ["d.ts", ["d.ts"]],
    ["e.ts", ["a.ts"]],
  ]);
  assert.deepEqual(cycles(graph).map((c) => c.join(" ")).sort(), ["a.ts b.ts c.ts", "d.ts"]);
  assert.deepEqual(cycles(new Map([["x.ts", ["y.ts"]], ["y.ts", []]])), []);
});

// ---------------------------------------------------------------------------
// One place per piece of knowledge (docs/architecture.md). Each check looks
// for a precise spelling of a second copy in the comment-free source.

/** The comment-free text of every `.ts` file under `dirs`, by path. */
async function sources(dirs: string[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const dir of dirs) {
    for (const file of await tsFiles(dir)) {
      out.set(file, withoutComments(await Deno.readTextFile(new URL(file, ROOT))));
    }
  }
  return out;
}

/** `file: line` for every line of `texts` (but `allowed` files) that `pattern` matches. */
function matching(texts: Map<string, string>, pattern: RegExp, allowed: string[] = []): string[] {
  const bad: string[] = [];
  for (const [file, text] of texts) {
    if (allowed.includes(file)) continue;
    for (const line of text.split("\n")) {
      if (pattern.test(line)) bad.push(`${file}: ${line.trim()}`);
    }
  }
  return bad;
}

const PRODUCT = ["src", "host", "workers"];
const EVERYWHERE = ["src", "host", "workers", "scripts", "testing"];

Deno.test("one describe(err): src/describe.ts", async () => {
  const texts = await sources(EVERYWHERE);
  assert.deepEqual(
    matching(texts, /\bfunction\s+describe\s*\(|\b(?:const|let)\s+describe\s*=/, [
      "src/describe.ts",
    ]),
    [],
  );
});

Deno.test("one UsageError: host/usage_error.ts", async () => {
  const texts = await sources(EVERYWHERE);
  assert.deepEqual(matching(texts, /\bclass\s+UsageError\b/, ["host/usage_error.ts"]), []);
});

Deno.test("waiting is src/async.ts: no other timer-based wait, deadline or sleep", async () => {
  // The timers left act (they are not waits): the region link's nudge and the log's flush.
  const texts = await sources(EVERYWHERE);
  const counts: Record<string, number> = {};
  for (const [file, text] of texts) {
    const n = text.match(/\bsetTimeout\s*\(/g)?.length ?? 0;
    if (n > 0 && file !== "src/async.ts") counts[file] = n;
  }
  assert.deepEqual(counts, { "src/region.ts": 1, "workers/_log.ts": 1 });
  assert.deepEqual(
    matching(texts, /\bfunction\s+(?:withDeadline|within|sleep|delay|pause|abortable)\s*\(/, [
      "src/async.ts",
    ]),
    [],
  );
});

/**
 * A test of an error's text: `.message` compared, searched (`includes`,
 * `match`, `startsWith`…) or given to a regex's `.test`/`.exec`, and
 * `String(err)` given to a regex or searched.
 */
const MESSAGE_TEST = new RegExp(
  [
    /\.message\s*(?:[!=]==|\.(?:includes|startsWith|endsWith|match|matchAll|search)\()/,
    /\.(?:test|exec)\((?:[^()]|\([^()]*\))*\.message\b/,
    /\.(?:test|exec)\(\s*String\(\s*(?:err|e|error|cause|reason)\b/,
    /\bString\(\s*(?:err|e|error|cause|reason)\s*\)\s*\.(?:includes|startsWith|endsWith|match|search)\(/,
  ].map((r) => r.source).join("|"),
);

/** Files that test a message, each with the reason it may. */
const MESSAGE_TESTS_ALLOWED: Record<string, string> = {
  "src/http/request_bound_socket.ts": "workerd's cross-request refusal has no class and no code",
  "src/nats_errors.ts":
    "nats.js's max_payload refusal has no class or code of its own; compared whole with nats.js's own wording",
};

/** Files that still test a message and should not: known debt, each with why it is still here. */
const MESSAGE_TESTS_DEBT: Record<string, string> = {};

Deno.test("errors are told apart by class or code, never by their message text", async (t) => {
  const all = await sources(EVERYWHERE);
  await t.step("no test of err.message or String(err) outside the known cases", () => {
    const allowed = [...Object.keys(MESSAGE_TESTS_ALLOWED), ...Object.keys(MESSAGE_TESTS_DEBT)];
    assert.deepEqual(matching(all, MESSAGE_TEST, allowed), []);
  });
  await t.step("the pattern sees each form it judges", () => {
    for (
      const line of [
        'if (err.message.includes("gone")) return;',
        "const m = e?.message.match(/(\\d+)$/);",
        "if (/wrong last sequence/.test(err.message)) throw x;",
        "const m = /(\\d+)\\s*$/.exec((err as Error).message)?.[1];",
        "if (!/^(Invalid input|Too small)/.test(issue.message)) return issue.message;",
        "if (attempt >= 3 || !/address already in use/i.test(String(err))) throw err;",
        'if (String(error).includes("EADDRINUSE")) continue;',
        "return e.message === MAX_PAYLOAD;",
      ]
    ) {
      assert.ok(MESSAGE_TEST.test(line), line);
    }
    for (
      const line of [
        "throw new CliError(err.message);",
        "const text = err instanceof Error ? err.message : String(err);",
        'return new HttpProblem("bad_key", err.message.replace(/^Cannot [^:]*: /, ""));',
        'const m = /v?(\\d+\\.\\d+\\.\\d+)/.exec(String(version ?? ""));',
      ]
    ) {
      assert.ok(!MESSAGE_TEST.test(line), line);
    }
  });
  await t.step("JetStream codes are named in src/nats_errors.ts only", () => {
    assert.deepEqual(matching(all, /\bJetStreamApiCodes\b/, ["src/nats_errors.ts"]), []);
  });
});

/**
 * A line that reads `Deno.args` other than by handing it whole to a parser:
 * the project's (`parse(Deno.args)`, scripts/cli/args.ts) or `node:util`'s
 * (`args: Deno.args`) where that one cannot be imported (workers/, a test's
 * child process).
 */
function readsArgvByHand(line: string): boolean {
  const handed = line.replace(/\(\s*Deno\.args\s*\)|\bargs:\s*Deno\.args\b(?!\s*[.[])/g, "");
  return /\bDeno\.args\b/.test(handed);
}

Deno.test("argv goes whole to a parser: nothing reads Deno.args by hand", async (t) => {
  await t.step("no file indexes, searches or destructures Deno.args", async () => {
    const texts = await sources([...EVERYWHERE, "tests", "examples"]);
    texts.delete("tests/unit/layout_test.ts"); // its own examples below
    const bad: string[] = [];
    for (const [file, text] of texts) {
      for (const line of text.split("\n")) {
        if (readsArgvByHand(line)) bad.push(`${file}: ${line.trim()}`);
      }
    }
    assert.deepEqual(bad, []);
  });
  await t.step("the check tells handing from reading", () => {
    for (
      const line of [
        'const at = Deno.args.indexOf("--n");',
        "const [url, bucket] = Deno.args;",
        'if (Deno.args.includes("--child")) await child();',
        'const command = `deno task bench ${Deno.args.join(" ")}`;',
        "parseArgs({ args: Deno.args.slice(1) });",
      ]
    ) {
      assert.ok(readsArgvByHand(line), line);
    }
    for (
      const line of [
        'await runMain("kv", () => main(Deno.args));',
        "const a = childArgs(Deno.args);",
        "const { values } = parseArgs({ args: Deno.args, options: {} });",
      ]
    ) {
      assert.ok(!readsArgvByHand(line), line);
    }
  });
});

Deno.test("one reconnect policy: RECONNECT_POLICY in src/connect.ts", async () => {
  const texts = await sources(PRODUCT);
  assert.deepEqual(
    matching(
      texts,
      /\b(?:maxReconnectAttempts|reconnectTimeWait|reconnectJitter|pingInterval|noAsyncTraces)\s*:/,
      [
        "src/connect.ts",
      ],
    ),
    [],
  );
});

Deno.test("one Prometheus renderer: src/prometheus.ts writes every # HELP and # TYPE", async () => {
  const texts = await sources(EVERYWHERE);
  assert.deepEqual(matching(texts, /# (?:HELP|TYPE) /, ["src/prometheus.ts"]), []);
});

Deno.test("the worker's facade bounds are listed once, in host/edge_config.ts EDGE_LIMITS", async () => {
  const texts = await sources(["host", "workers"]);
  const names = [
    "maxBodyBytes",
    "maxSseStreams",
    "sseBufferBytes",
    "maxJsonDepth",
    "maxConcurrentScans",
    "maxHistoryBytes",
    "maxReplays",
    "maxReplaysPerClient",
    "maxHeaderCount",
    "maxHeaderBytes",
  ];
  const bad: string[] = [];
  for (const [file, text] of texts) {
    for (const name of names) {
      const n = text.match(new RegExp(`\\b${name}\\s*:`, "g"))?.length ?? 0;
      const allowed = file === "host/edge_config.ts" ? 1 : 0;
      if (n > allowed) bad.push(`${file}: ${name} × ${n}`);
    }
  }
  assert.deepEqual(bad, []);
  assert.match(texts.get("host/edge_config.ts")!, /export const EDGE_LIMITS = \{/);
});
