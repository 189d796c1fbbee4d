import assert from "node:assert/strict";

const SCRIPT = new URL("../../scripts/soak.ts", import.meta.url).pathname;
/** Generous ceiling: a 100k-entry cache plus the load generators stay far below it. */
const MAX_RSS_MIB = 1536;

Deno.test("soak (1 minute): steady load over 1M keys with a 100k bound completes and reports", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      SCRIPT,
      "--minutes",
      "1",
      "--report-every-s",
      "10",
      "--max-rss-mib",
      String(MAX_RSS_MIB),
    ],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  const stderr = new TextDecoder().decode(out.stderr);
  // The figures are for the reader of the CI log (the verdict is printed, not asserted).
  console.log(stdout.trim().split("\n").map((l) => `  ${l}`).join("\n"));
  assert.equal(out.code, 0, `soak exited with ${out.code}\n${stdout}\n${stderr}`);
  const reports = stdout.split("\n").filter((l) => /^t=\d+s rss=[\d.]+MiB .*hitRatio=/.test(l));
  assert.ok(reports.length >= 5, `expected a report line every 10 s, got ${reports.length}`);
  const result = /^soak result: .*reads=(\d+) .*writes=(\d+) .*hitRatio=([\d.]+)/m.exec(stdout);
  assert.ok(result, "no result line");
  assert.ok(Number(result[1]) > 0 && Number(result[2]) > 0, "no load was generated");
  const rss = /^soak rss: start=[\d.]+MiB max=([\d.]+)MiB .*verdict=(\w+)/m.exec(stdout);
  assert.ok(rss, "no RSS trend line");
  assert.ok(Number(rss[1]) < MAX_RSS_MIB, `RSS reached ${rss[1]} MiB`);
});
