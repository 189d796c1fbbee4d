/**
 * One owner per piece of the cache's state, checked: every field of
 * `CacheCore` (src/cache/core.ts) is written by at most one module of src/
 * (its owner; the lifecycle is `Lifecycle`'s, `#private` there, checked with
 * `Reached` in tests/unit/lifecycle_owner_test.ts; the counters behind
 * `Counters`…); the local store and
 * the state of the rules of freshness (reservations, tombstones, sweeps,
 * `lossy`…) are `Freshness`'s (src/cache/freshness.ts) alone, `#private`
 * there, and no other module names the store's class or calls a writer of
 * it; nothing outside src/watcher.ts writes a watcher's fields (it is placed
 * with `Watcher.place()` before it starts), whose lifecycle is one phase
 * (src/watcher_phase.ts) with no flag beside it. The sync loop's state (the
 * watcher, the connection's handles, timers, binding) is `SyncLoop`'s
 * (src/cache/sync_loop.ts), `#private` there: none of it comes back to
 * `CacheCore`, no other module writes it, makes the cache's watcher or calls
 * its controls. A second writer fails here with the files that write the
 * field. The projection runner wires its own fields once (constructor,
 * `start()`) and keeps what changes while it runs in its owners (`RunStatus`,
 * `PullPhase`, `StatusRefresh`), whose state is `#private`, with no setter
 * and no boolean beside the union it is. Starts no server.
 */
import assert from "node:assert/strict";
import type { StoreView } from "../../src/cache/freshness_change.ts";
import { ROOT, tsFiles } from "./_source.ts";
import {
  code,
  coreFields,
  declaredFields,
  flagFields,
  members,
  publicFields,
  writes,
} from "./_owners.ts";

/** The cache core as the parts name it: `c`, `core`, the facade's `#c`. */
const CORE = "\\bc|\\bcore|this\\.#c";

Deno.test("every field of CacheCore has one writer in src/", async () => {
  const source = await Deno.readTextFile(new URL("src/cache/core.ts", ROOT));
  const fields = coreFields(source);
  // 13 since the lifecycle became its own owner (23 before, 51 before the owners).
  assert.ok(fields.length > 10, `found ${fields.length} fields of CacheCore`);
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

/** The projection runner, and the owners of what changes while it runs (file → class). */
const RUNNER = "src/projection/runner.ts";
const RUN_OWNERS: Record<string, string> = {
  "src/projection/run_status.ts": "RunStatus",
  "src/projection/pull_phase.ts": "PullPhase",
  "src/projection/status_refresh.ts": "StatusRefresh",
};
/** The runner's members that wire its fields; every other member only asks its owners. */
const RUNNER_WIRING = new Set(["constructor", "start"]);

/** Writes to the runner's own fields (`this.<field> =`, `+=`, `++`…) in `text`. */
export function ownWrites(text: string): string[] {
  const op = "(?:\\+\\+|--|(?:[-+*/%|&^]|\\|\\||&&|\\?\\?)?=(?!=))";
  const re = new RegExp(`\\bthis\\.(#?\\w+)\\s*${op}|(?:\\+\\+|--)\\s*this\\.(#?\\w+)`, "g");
  return [...text.matchAll(re)].map((m) => `this.${m[1] ?? m[2]}`);
}

Deno.test("the projection runner keeps no state beside its owners", async (t) => {
  const runner = code(await Deno.readTextFile(new URL(RUNNER, ROOT)));
  await t.step("its fields are wired in the constructor and start() only", () => {
    const all = members(runner, "Runner");
    assert.ok(all.some((m) => m.name === "#run"), "found the runner's loop");
    const stray = all.filter((m) => !RUNNER_WIRING.has(m.name))
      .flatMap((m) => ownWrites(m.text).map((w) => `${m.name}: ${w}`));
    assert.deepEqual(
      stray,
      [],
      `the runner writes its own fields while it runs (give the state to its owner):\n${
        stray.join("\n")
      }`,
    );
  });
  await t.step("it declares no flag beside the state", () => {
    assert.ok(declaredFields(runner, "Runner").has("#s"));
    assert.deepEqual(flagFields(runner, "Runner"), []);
  });
  await t.step("it writes nothing of its owners but through their methods", () => {
    for (const owner of ["#s", "#pull"]) {
      assert.ok(!writes(runner, `this\\.${owner}`, "#?\\w+"), `the runner writes this.${owner}.*`);
    }
  });
  for (const [file, cls] of Object.entries(RUN_OWNERS)) {
    await t.step(`${cls}: state #private, no setter, no flag beside its state`, async () => {
      const source = code(await Deno.readTextFile(new URL(file, ROOT)));
      assert.ok(declaredFields(source, cls).size > 0, `found the fields of ${cls}`);
      assert.deepEqual(publicFields(source, cls), [], `public fields of ${cls}`);
      const setters = members(source, cls).filter((m) => /^ {2}(?:\w+\s+)*set\s/.test(m.text));
      assert.deepEqual(setters.map((m) => m.name), [], `setters of ${cls}`);
      assert.deepEqual(flagFields(source, cls), [], `flags of ${cls}`);
    });
  }
});

Deno.test("the runner's field and member finders see what they look for", () => {
  const source = [
    "class Runner {",
    "  readonly #s: RunStatus;",
    "  #busy = false;",
    "  #done: boolean | undefined;",
    "  #loop: Promise<void> = Promise.resolve();",
    "  constructor() {",
    "    this.#loop = x;",
    "  }",
    "  async start(): Promise<void> {",
    "    this.#loop = this.#run();",
    "  }",
    "  get #stopping(): boolean {",
    "    return this.#busy === true;",
    "  }",
    "  async #run(): Promise<void> {",
    "    this.#busy = true;",
    "    this.#s.fail(err);",
    "  }",
    "  set state(v: string) {",
    "    this.#n++;",
    "  }",
    "}",
  ].join("\n");
  assert.deepEqual([...declaredFields(source, "Runner").keys()], ["#s", "#busy", "#done", "#loop"]);
  assert.deepEqual(flagFields(source, "Runner"), ["#busy", "#done"]);
  assert.deepEqual(
    members(source, "Runner").map((m) => m.name),
    ["constructor", "start", "#stopping", "#run", "state"],
  );
  const byName = new Map(members(source, "Runner").map((m) => [m.name, m.text]));
  assert.deepEqual(ownWrites(byName.get("#run")!), ["this.#busy"]);
  assert.deepEqual(ownWrites(byName.get("#stopping")!), []);
  assert.deepEqual(ownWrites(byName.get("state")!), ["this.#n"]);
  assert.ok(writes("this.#s.state = 1", "this\\.#s", "#?\\w+"));
  assert.ok(!writes("this.#s.fail(err)", "this\\.#s", "#?\\w+"));
});

/** The watcher and the owner of its lifecycle (src/watcher_phase.ts). */
const WATCHER = "src/watcher.ts";
const WATCHER_PHASE = "src/watcher_phase.ts";
/** Names of a lifecycle kept in loose fields (`#closed`, `#restartAgain`, `#resyncNext`, `#diverged`…). */
const LIFECYCLE_NAME = /closed|connect|caught|restart|resync|again|diverg|rebuild/i;

Deno.test("the watcher keeps its lifecycle in one phase, no flag beside it", async (t) => {
  const watcher = code(await Deno.readTextFile(new URL(WATCHER, ROOT)));
  await t.step("Watcher: one #phase, no flag and no lifecycle field beside it", () => {
    const fields = declaredFields(watcher, "Watcher");
    assert.ok(fields.has("#phase"), `Watcher declares no #phase: ${[...fields.keys()].join(", ")}`);
    assert.deepEqual(flagFields(watcher, "Watcher"), [], "flags of Watcher");
    const loose = [...fields.keys()].filter((f) => f !== "#phase" && LIFECYCLE_NAME.test(f));
    assert.deepEqual(loose, [], "lifecycle fields of Watcher beside #phase");
  });
  await t.step(
    "WatcherLifecycle: state #private, no setter, no flag beside its phase",
    async () => {
      const source = code(await Deno.readTextFile(new URL(WATCHER_PHASE, ROOT)));
      assert.ok(declaredFields(source, "WatcherLifecycle").has("#now"), "found its phase");
      assert.deepEqual(publicFields(source, "WatcherLifecycle"), []);
      const setters = members(source, "WatcherLifecycle").filter((m) =>
        /^ {2}(?:\w+\s+)*set\s/.test(m.text)
      );
      assert.deepEqual(setters.map((m) => m.name), [], "setters of WatcherLifecycle");
      assert.deepEqual(flagFields(source, "WatcherLifecycle"), [], "flags of WatcherLifecycle");
    },
  );
});

/** The state `SyncLoop` owns: none of it may come back to `CacheCore`. */
const SYNC_STATE = [
  "watcher",
  "d",
  "link",
  "prefix",
  "writePrefix",
  "watching",
  "bound",
  "binding",
  "lastInfo",
  "resyncs",
  "lastResyncReason",
  "emittedRev",
  "lastCreated",
  "reconcileTimer",
  "snapshotTimer",
  "stopStatus",
];
const SYNC_LOOP = "src/cache/sync_loop.ts";
/** The sync loop as the other parts name it: the core's `sync`, the facade's `#sync`. */
const SYNC = "(?:(?:\\bc|\\bcore|this\\.#c)\\.sync|this\\.#sync)";
/** The controls of a watcher: who calls them drives the cache's sync loop. */
const WATCHER_CONTROLS = "place|start|restart|resync|close|disconnected|reconnected";

/** What `text` does to the sync loop's state from outside it, if anything. */
export function drivesSyncLoop(text: string): string | undefined {
  const write = new RegExp(
    `${SYNC}\\.\\w+\\s*(?:\\+\\+|--|(?:[-+*/%|&^]|\\|\\||&&|\\?\\?)?=(?!=))|(?:\\+\\+|--)\\s*${SYNC}\\.\\w+`,
  ).exec(text);
  if (write) return `writes ${write[0].trim()}`;
  const control = new RegExp(`${SYNC}\\.watcher\\s*\\.\\s*(?:${WATCHER_CONTROLS})\\s*\\(`).exec(
    text,
  );
  if (control) return `calls ${control[0].trim()}`;
  if (/\bnew Watcher\b/.test(text)) return "makes a Watcher";
  return undefined;
}

Deno.test("SyncLoop alone owns the watcher, the connection, its timers and binding", async (t) => {
  await t.step("CacheCore declares none of the state SyncLoop owns", async () => {
    const fields = coreFields(await Deno.readTextFile(new URL("src/cache/core.ts", ROOT)));
    assert.ok(fields.includes("sync"), `CacheCore has no sync: ${fields.join(", ")}`);
    const back = SYNC_STATE.filter((f) => fields.includes(f));
    assert.deepEqual(back, [], `back on CacheCore: ${back.join(", ")}`);
  });
  await t.step("every field of SyncLoop is #private", async () => {
    const source = code(await Deno.readTextFile(new URL(SYNC_LOOP, ROOT)));
    assert.ok(source.includes("export class SyncLoop"));
    assert.ok(/^ {2}#watcher\b/m.test(source), "SyncLoop declares no #watcher");
    assert.deepEqual(publicFields(source, "SyncLoop"), []);
  });
  await t.step("no other module writes its state, makes the watcher or drives it", async () => {
    const offenders: string[] = [];
    for (const f of await tsFiles("src")) {
      // replay.ts makes a watcher of its own for changes({ fromRevision }), not the cache's.
      if (f === SYNC_LOOP || f === "src/watcher.ts") continue;
      const text = code(await Deno.readTextFile(new URL(f, ROOT)));
      const why = f === "src/cache/replay.ts"
        ? drivesSyncLoop(text.replace(/\bnew Watcher\b/g, ""))
        : drivesSyncLoop(text);
      if (why !== undefined) offenders.push(`${f}: ${why}`);
    }
    assert.deepEqual(
      offenders,
      [],
      `the sync loop driven outside ${SYNC_LOOP}:\n${offenders.join("\n")}`,
    );
  });
});

Deno.test("the sync-loop finder sees writes, controls and a new watcher, and no read", () => {
  for (
    const w of [
      "c.sync.bound = false",
      "this.#c.sync.resyncs++",
      "core.sync.lastInfo ??= info",
      "this.#sync.bound = true",
      'c.sync.watcher.restart("why")',
      "c.sync.watcher . place({ lastRevision: 3 })",
      "const w = new Watcher(options)",
    ]
  ) {
    assert.ok(drivesSyncLoop(w) !== undefined, w);
  }
  for (
    const r of [
      "c.sync.watcher.lastRevision",
      "c.sync.bound === true",
      "c.sync.link.kv.get(key)",
      "c.sync.stopTimers()",
      "c.sync.watcher.caughtUp && !c.sync.watcher.restarting",
    ]
  ) {
    assert.equal(drivesSyncLoop(r), undefined, r);
  }
});
