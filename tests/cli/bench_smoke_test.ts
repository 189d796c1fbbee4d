/**
 * Keeps the benchmark scripts working: `deno task bench --quick` must run
 * every scenario to the end and write its JSON. Figures are not judged here
 * (no timing assertions); the real numbers come from a full run.
 */
import assert from "node:assert/strict";
import { percentile, stat } from "../../scripts/bench/_harness.ts";
import { parseWrk } from "../../scripts/bench/_wrk.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const SCENARIOS = [
  "local_hit",
  "memory",
  "http",
  "propagation",
  "regions",
  "bootstrap",
  "warm_start",
  "seed",
  "csv",
  "stampede",
  "miss",
  "bookmark",
  "websocket",
  "workerd",
  "scale",
];

/** The only reason a scenario may skip: a benchmark tool that is not installed. */
const SKIP_ALLOWED = /^\w+ is not installed\b/;

interface ResultFile {
  name: string;
  command: string;
  machine: { cpus: number; deno: unknown };
  params: Record<string, unknown>;
  rows: { metric: string; kvedge: { median: number; values: number[] } | null }[];
  skipped?: string;
}

/** Throws unless `file` is a finished run of scenario `name` (or one skipped for a missing tool). */
function judgeScenario(name: string, file: ResultFile): void {
  assert.equal(file.name, name);
  assert.equal(file.params.quick, true);
  assert.ok(file.machine.cpus > 0);
  // A scenario may be skipped only for a tool this machine lacks (wrk);
  // "failed", "not implemented" or any other reason fails the smoke test.
  assert.ok(
    file.skipped === undefined || SKIP_ALLOWED.test(file.skipped),
    `${name} was skipped: ${file.skipped}`,
  );
  if (file.skipped === undefined) {
    assert.ok(file.rows.length > 0, `${name} has no rows`);
    for (const row of file.rows) {
      if (row.kvedge === null) continue;
      assert.ok(Number.isFinite(row.kvedge.median), `${name}/${row.metric} is not a number`);
    }
  }
}

Deno.test("the bench smoke check refuses a scenario skipped for anything but a missing tool", () => {
  const file = (skipped?: string): ResultFile => ({
    name: "warm_start",
    command: "",
    machine: { cpus: 2, deno: {} },
    params: { quick: true },
    rows: skipped ? [] : [{ metric: "m", kvedge: { median: 1, values: [1] } }],
    skipped,
  });
  judgeScenario("warm_start", file());
  judgeScenario("warm_start", file("wrk is not installed (scripts/setup.sh --bench)"));
  for (
    const reason of ["not implemented (the snapshot option wrote no file on close)", "failed: x"]
  ) {
    assert.throws(() => judgeScenario("warm_start", file(reason)), /was skipped/);
  }
});

Deno.test("bench harness summarises repetitions as median, min and max", () => {
  assert.deepEqual(stat([5, 1, 3]), { median: 3, min: 1, max: 5, values: [5, 1, 3] });
  assert.equal(stat([1, 2, 3, 4]).median, 2.5);
  assert.equal(percentile([4, 1, 3, 2], 0.5), 2);
  assert.equal(percentile([4, 1, 3, 2], 0.99), 4);
});

Deno.test("bench reads wrk's report with latency percentiles", () => {
  const out = `Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   812.00us  300.00us   9.00ms   90.00%
  Latency Distribution
     50%  750.00us
     75%    0.90ms
     90%    1.10ms
     99%    2.50ms
  780000 requests in 10.00s, 120.00MB read
Requests/sec:  78000.12
Transfer/sec:     12.00MB
`;
  assert.deepEqual(parseWrk(out), {
    rps: 78000.12,
    requests: 780000,
    p50Ms: 0.75,
    p99Ms: 2.5,
    errors: 0,
  });
});

Deno.test({
  name: "deno task bench --quick runs every scenario and writes its JSON",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const out = await Deno.makeTempDir({ prefix: "kvedge_bench_smoke_" });
    try {
      const child = new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "scripts/bench.ts", "--quick", "--reps", "1", "--out", out],
        cwd: ROOT,
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      // A guard against a hang, not a timing assertion.
      const guard = setTimeout(() => child.kill("SIGKILL"), 900_000);
      const result = await child.output();
      clearTimeout(guard);
      const stdout = new TextDecoder().decode(result.stdout);
      const stderr = new TextDecoder().decode(result.stderr);
      // A failed scenario says so in the middle of a long log: its own lines first.
      const failures = [...stderr.matchAll(/^bench \S+ failed:[\s\S]{0,1500}/gm)].map((m) => m[0]);
      assert.equal(
        result.code,
        0,
        `bench exited ${result.code}:\n${failures.join("\n---\n") || stderr.slice(-4000)}`,
      );
      assert.match(stdout, /\| scenario \| metric \|/);
      for (const name of SCENARIOS) {
        const file = JSON.parse(await Deno.readTextFile(`${out}/${name}.json`)) as ResultFile;
        judgeScenario(name, file);
      }
      assert.ok((await Deno.stat(`${out}/summary.md`)).isFile);
      // The scale scenario draws its curves next to the JSON.
      for (
        const plot of [
          "keys_ready",
          "keys_rss",
          "keys_warm",
          "keys_bytes",
          "edges_latency",
          "edges_cpu",
        ]
      ) {
        const svg = await Deno.readTextFile(`${out}/scale_${plot}.svg`);
        assert.match(svg, /^<svg [^>]*>[\s\S]*<polyline [\s\S]*<\/svg>\n$/, plot);
      }
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
