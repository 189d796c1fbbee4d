/**
 * `deno task bench [scenario...] [--quick] [--out DIR] [--update-readme]`:
 * runs the benchmark scenarios of `scripts/bench/`, prints one table of
 * kvedge figures against the competitor measured in the same run (median of
 * repetitions, min–max, ratio, target ✓/✗), and writes
 * `bench/results/nats-v<version>/<scenario>.json` (machine, versions,
 * parameters, raw figures), one folder per nats-server version
 * (`KVEDGE_NATS_SERVER` picks the server).
 *
 * `--quick` is a smoke run (tiny sizes, seconds); its results go to a
 * temporary directory unless `--out` says otherwise, so they never replace
 * real figures. `--update-readme` replaces this server's table in
 * `bench/README.md`.
 *
 * @module
 */
import type { BenchContext, Scenario, ScenarioResult } from "./bench/_harness.ts";
import { cleanupAll, ROOT } from "./bench/_processes.ts";
import { machineInfo, writeResult } from "./bench/_results.ts";
import { table } from "./bench/_table.ts";
import { type FlagSpec, parseArgs } from "./cli/args.ts";
import { UsageError } from "./cli/errors.ts";
import { scenario as bookmark } from "./bench/bookmark.ts";
import { scenario as bootstrap } from "./bench/bootstrap.ts";
import { scenario as csv } from "./bench/csv.ts";
import { scenario as http } from "./bench/http.ts";
import { scenario as localHit } from "./bench/local_hit.ts";
import { scenario as memory } from "./bench/memory.ts";
import { scenario as miss } from "./bench/miss.ts";
import { scenario as propagation } from "./bench/propagation.ts";
import { scenario as regions } from "./bench/regions.ts";
import { scenario as runtimes } from "./bench/runtimes.ts";
import { scenario as scale } from "./bench/scale.ts";
import { scenario as seed } from "./bench/seed.ts";
import { scenario as stampede } from "./bench/stampede.ts";
import { scenario as warmStart } from "./bench/warm_start.ts";
import { scenario as websocket } from "./bench/websocket.ts";
import { scenario as workerd } from "./bench/workerd.ts";

/** Every scenario, in the order a full run executes them. */
const SCENARIOS: Scenario[] = [
  localHit,
  memory,
  http,
  propagation,
  regions,
  bootstrap,
  warmStart,
  seed,
  csv,
  stampede,
  miss,
  bookmark,
  websocket,
  runtimes,
  workerd,
  scale,
];

const USAGE = `usage: deno task bench [scenario...] [--quick] [--big] [--out DIR] [--update-readme]

scenarios: ${SCENARIOS.map((s) => s.name).join(", ")} (default: all)
  --quick          smoke run: tiny sizes, few repetitions (results go to a temp dir)
  --out DIR        where to write <scenario>.json (default bench/results)
  --reps N         repetitions per figure (default 5, quick 2)
  --big            also the slow large sizes (scale: 3M keys)
  --keys N,N…      scale: the keys axis at these sizes (e.g. --keys 10000000)
  --edges N,N…     scale: the edges axis at these edge counts (e.g. --edges 1000)
                   (either alone runs only its axis)
  --history N      scale: history of the edges bucket (default 1)
  --update-readme  replace the results table in bench/README.md`;

interface Args {
  names: string[];
  quick: boolean;
  big: boolean;
  keys: number[] | undefined;
  out: string | undefined;
  reps: number | undefined;
  edges: number[] | undefined;
  history: number | undefined;
  updateReadme: boolean;
}

const FLAGS: Record<string, FlagSpec> = {
  quick: { type: "boolean", help: "fewer repetitions, results in a temp dir" },
  big: { type: "boolean", help: "the larger sizes of the scale scenario" },
  keys: { type: "string", help: "scale: only the keys axis, at these comma-separated sizes" },
  "update-readme": { type: "boolean", help: "replace the table in bench/README.md" },
  out: { type: "string", help: "where to write <scenario>.json" },
  reps: { type: "int", help: "repetitions per figure", min: 1 },
  edges: { type: "string", help: "scale: only the edges axis, at these edge counts" },
  history: { type: "int", help: "scale: history of the edges bucket", min: 1 },
};

function parse(argv: string[]): Args {
  let p;
  try {
    p = parseArgs(argv, [FLAGS]);
  } catch (err) {
    if (err instanceof UsageError) throw new TypeError(`Cannot run bench: ${err.message}`);
    throw err;
  }
  if (p.help) {
    console.log(USAGE);
    Deno.exit(0);
  }
  return {
    names: p.positionals,
    quick: p.flags.quick === true,
    big: p.flags.big === true,
    keys: countList(p.flags.keys, "--keys"),
    out: p.flags.out as string | undefined,
    reps: p.flags.reps as number | undefined,
    edges: countList(p.flags.edges, "--edges"),
    history: p.flags.history as number | undefined,
    updateReadme: p.flags["update-readme"] === true,
  };
}

/**
 * `--keys 100000,10000000` or `--edges 100,1000`: positive integers
 * (underscores allowed); undefined when the flag is absent, else a `TypeError`.
 */
function countList(flag: unknown, name: string): number[] | undefined {
  if (flag === undefined) return undefined;
  const counts = String(flag).split(",").map((t) => Number(t.trim().replaceAll("_", "")));
  if (counts.some((n) => !Number.isSafeInteger(n) || n < 1)) {
    throw new TypeError(
      `Cannot run bench: ${name} wants counts like 1000 or 100,1000, not "${flag}"`,
    );
  }
  return counts;
}

/**
 * Which nats-server the scenarios run against, as a folder and marker name:
 * `"nats-v2.15.2"` from `nats-server: v2.15.2` (the binary's `--version`).
 */
function serverTag(version: unknown): string {
  const m = /v?(\d+\.\d+\.\d+)/.exec(String(version ?? ""));
  return m ? `nats-v${m[1]}` : "nats-unknown";
}

/** Replaces the table between this server's markers in `bench/README.md` (one table per server). */
async function updateReadme(text: string, tag: string): Promise<void> {
  const path = `${ROOT}/bench/README.md`;
  const readme = await Deno.readTextFile(path);
  const startMark = `<!-- bench:table:${tag}:start -->`;
  const endMark = `<!-- bench:table:${tag}:end -->`;
  const start = readme.indexOf(startMark);
  const end = readme.indexOf(endMark);
  if (start < 0 || end < start) {
    throw new Error(
      `Cannot update ${path}: markers ${startMark} / ${endMark} not found (add them where this server's table goes)`,
    );
  }
  const next = readme.slice(0, start + startMark.length) + "\n" + text + "\n" +
    readme.slice(end);
  await Deno.writeTextFile(path, next);
  // Keep the committed README as `deno fmt` wants it (the gate checks it).
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", path] }).output();
}

/**
 * The README's table for one server: this run's results, and for every
 * scenario it did not run, the latest result in `out` (so that re-running
 * one scenario does not drop the others), each from its own JSON.
 */
async function latestTable(out: string, ran: ScenarioResult[], header: string): Promise<string> {
  const older: { result: ScenarioResult; command: string; date: string }[] = [];
  for (const s of SCENARIOS) {
    if (ran.some((r) => r.name === s.name)) continue;
    try {
      const saved = JSON.parse(await Deno.readTextFile(`${out}/${s.name}.json`));
      older.push({ result: saved, command: saved.command, date: saved.machine?.date ?? "?" });
    } catch {
      // Never run against this server.
    }
  }
  if (older.length === 0) return header;
  const order = (r: ScenarioResult) => SCENARIOS.findIndex((s) => s.name === r.name);
  const all = [...ran, ...older.map((o) => o.result)].sort((a, b) => order(a) - order(b));
  const from = older.map((o) => `\`${o.result.name}\` (${o.date}, \`${o.command}\`)`);
  return [
    header.slice(0, header.indexOf("\n\n")),
    "",
    `Earlier runs on the same machine and server, kept for the scenarios this one skipped: ${
      from.join("; ")
    }.`,
    "",
    table(all),
  ].join("\n");
}

async function main(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parse(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const unknown = args.names.filter((n) => !SCENARIOS.some((s) => s.name === n));
  if (unknown.length) {
    console.error(`Cannot run bench: unknown scenario ${unknown.join(", ")}\n\n${USAGE}`);
    return 2;
  }
  const chosen = args.names.length
    ? SCENARIOS.filter((s) => args.names.includes(s.name))
    : SCENARIOS;
  const machine = await machineInfo();
  const tag = serverTag(machine.natsServer);
  // One folder of results per nats-server version, so both tables stand.
  const out = args.out ??
    (args.quick
      ? await Deno.makeTempDir({ prefix: "kvedge_bench_quick_" })
      : `${ROOT}/bench/results/${tag}`);
  const ctx: BenchContext = {
    quick: args.quick,
    reps: args.reps ?? (args.quick ? 2 : 5),
    big: args.big,
    keys: args.keys,
    ...(args.edges ? { edges: args.edges } : {}),
    ...(args.history ? { history: args.history } : {}),
    out,
    log: (m) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}`),
    shared: new Map(),
  };
  const command = `deno task bench ${argv.join(" ")}`.trim();
  const results: ScenarioResult[] = [];
  let failed = 0;
  const started = performance.now();
  for (const s of chosen) {
    const { result, ok } = await runScenario(s, ctx, { machine, command, out });
    if (!ok) failed++;
    results.push(result);
  }
  const total = (performance.now() - started) / 1000;
  const text = [
    `Command: \`${command}\` — ${machine.date} — ${machine.cpus} cores (${
      machine.cpuModel ?? "unknown CPU"
    }), ${machine.os}, Deno ${(machine.deno as { deno: string }).deno}, ${
      machine.natsServer ?? "nats-server"
    } — total ${Math.round(total)} s`,
    "",
    table(results),
  ].join("\n");
  console.log(`\n## All results\n\n${text}\n`);
  await Deno.writeTextFile(`${out}/summary.md`, text + "\n");
  if (args.updateReadme) await updateReadme(await latestTable(out, results, text), tag);
  const misses = results.flatMap((r) => r.rows).filter((r) => r.pass === false).length;
  ctx.log(`${misses} row(s) miss their target; results in ${out}`);
  return failed > 0 ? 1 : 0;
}

/**
 * Runs scenario `s` (a failure becomes a skipped result saying why), cleans
 * up after it, notes its time and the machine's load, writes its JSON and
 * prints its table.
 */
async function runScenario(
  s: Scenario,
  ctx: BenchContext,
  run: { machine: Awaited<ReturnType<typeof machineInfo>>; command: string; out: string },
): Promise<{ result: ScenarioResult; ok: boolean }> {
  const t0 = performance.now();
  const load0 = Deno.loadavg()[0];
  ctx.log(`${s.name}: ${s.title}`);
  let result: ScenarioResult;
  let ok = true;
  try {
    result = await s.run(ctx);
  } catch (err) {
    ok = false;
    console.error(`bench ${s.name} failed:`, err);
    result = {
      name: s.name,
      title: s.title,
      params: {},
      rows: [],
      skipped: `failed: ${(err as Error).message?.split("\n")[0]}`,
      raw: { error: String((err as Error).stack ?? err) },
    };
  }
  await cleanupAll();
  const seconds = (performance.now() - t0) / 1000;
  result.params = {
    ...result.params,
    quick: ctx.quick,
    seconds: Math.round(seconds),
    // Other work on the machine shows here: the 1-minute load average
    // before and after, on a machine with `machine.cpus` cores.
    loadavg: { before: load0, after: Deno.loadavg()[0] },
  };
  const path = await writeResult(run.out, result, run.machine, run.command);
  ctx.log(`${s.name}: done in ${seconds.toFixed(1)} s → ${path}`);
  console.log(`\n${table([result])}`);
  return { result, ok };
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(sig, () => {
    cleanupAll().finally(() => Deno.exit(130));
  });
}

let code = 1;
try {
  code = await main(Deno.args);
} finally {
  await cleanupAll();
}
Deno.exit(code);
