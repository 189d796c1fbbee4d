import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/soak.ts", import.meta.url).pathname;
/** Generous ceiling: a 100k-entry cache plus the load generators stay far below it. */
const MAX_RSS_MIB = 1536;

Deno.test("soak (1 minute): steady load over 20k keys with a 5k bound completes, and its memory plateaus", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--v8-flags=--expose-gc", // the live heap after a GC is what the verdict judges
      SCRIPT,
      "--minutes",
      "1",
      "--report-every-s",
      "10",
      // The store must fill early, on a busy machine too, so the last half of
      // the minute is judged on a full store. Over 1M keys most skewed reads
      // find a never-written key, and negative entries may hold only a quarter
      // of the store (local.maxNegativeShare): 20 000 entries never filled in
      // a minute, 2 000 did on an idle machine but not under CI's load
      // (UNDECIDED). Over 20 000 keys, all written within the first 10 s,
      // reads find values and 5 000 entries fill within seconds.
      "--keys",
      "20000",
      "--max-items",
      "5000",
      "--max-rss-mib",
      String(MAX_RSS_MIB),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  // The figures are for the reader of the CI log; the verdict is asserted below.
  console.log(stdout.trim().split("\n").map((l) => `  ${l}`).join("\n"));
  assert.equal(out.code, 0, `soak exited with ${out.code}\n${stdout}\n${stderr}`);
  const reports = stdout.split("\n").filter((l) => /^t=\d+s rss=[\d.]+MiB .*hitRatio=/.test(l));
  assert.ok(reports.length >= 5, `expected a report line every 10 s, got ${reports.length}`);
  const result = /^soak result: .*reads=(\d+) .*writes=(\d+) .*hitRatio=([\d.]+)/m.exec(stdout);
  assert.ok(result, "no result line");
  assert.ok(Number(result[1]) > 0 && Number(result[2]) > 0, "no load was generated");
  const rss = /^soak rss: start=[\d.]+MiB max=([\d.]+)MiB .*judged=(\w+) .*verdict=(\w+)/m.exec(
    stdout,
  );
  assert.ok(rss, "no RSS trend line");
  assert.ok(Number(rss[1]) < MAX_RSS_MIB, `RSS reached ${rss[1]} MiB`);
  assert.equal(rss[2], "liveHeap", "the verdict was not judged on the live heap");
  assert.equal(rss[3], "PLATEAU", `memory did not plateau:\n${stdout}`);
});
