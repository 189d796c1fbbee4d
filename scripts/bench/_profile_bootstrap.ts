/**
 * In-process CPU profile of the replica bootstrap (issue 21): one nats-server,
 * one bucket of `--keys` keys (scripts/bench/bootstrap.ts's keys and values),
 * then `--reps` kvedge bootstrap children run with `deno run --cpu-prof`, each
 * summarised as self time per function (top `--top`). `--roots a,b` runs the
 * child of each checkout root in turn (a base and a branch, back to back on
 * the same bucket). Not a bench scenario: a tool for reading where the time goes.
 *
 * `deno run -A scripts/bench/_profile_bootstrap.ts --keys 1000000 --reps 3 --roots /tmp/base,.`
 *
 * @module
 */
import { benchServer, childArgs, DENO, ROOT } from "./_processes.ts";
import { benchBucket, connectRaw, fillBucket } from "./_helpers.ts";
import { keyOf, valueOf } from "./bootstrap.ts";

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time (ms) per function of a `.cpuprofile`, largest first. */
function selfTimes(p: Profile): [string, number][] {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const out = new Map<string, number>();
  for (let i = 0; i < p.samples.length; i++) {
    const n = byId.get(p.samples[i]!)!;
    const f = n.callFrame;
    const where = f.url
      ? `${f.url.replace(/^.*\/(node_modules|src|scripts)\//, "$1/")}:${f.lineNumber + 1}`
      : "";
    const name = `${f.functionName || "(anonymous)"} ${where}`.trim();
    out.set(name, (out.get(name) ?? 0) + (p.timeDeltas[i] ?? 0) / 1000);
  }
  return [...out].sort((a, b) => b[1] - a[1]);
}

const a = childArgs(Deno.args);
const keys = Number(a.keys ?? 1_000_000);
const reps = Number(a.reps ?? 2);
const top = Number(a.top ?? 25);
const roots = (a.roots ?? ROOT).split(",").map((r) => Deno.realPathSync(r));
const server = await benchServer();
try {
  const nc = await connectRaw(server.url);
  const bucket = benchBucket("prof_boot");
  await fillBucket(nc, bucket, keys, keyOf, valueOf);
  for (let r = 0; r < reps; r++) {
    for (const root of roots) {
      const dir = await Deno.makeTempDir({ prefix: "kvedge_prof_" });
      const out = await new Deno.Command(DENO, {
        args: [
          "run",
          "-A",
          "--config",
          `${root}/deno.json`,
          "--cpu-prof",
          "--cpu-prof-dir",
          dir,
          `${root}/scripts/bench/bootstrap.ts`,
          "--child",
          "kvedge",
          "--url",
          server.url,
          "--bucket",
          bucket,
          "--n",
          String(keys),
        ],
        cwd: root,
        env: { NO_COLOR: "1" },
        stdin: "null",
      }).output();
      const last = new TextDecoder().decode(out.stdout).trim().split("\n").pop() ?? "";
      if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
      const figures = JSON.parse(last) as { ms: number; entries: number };
      const file = [...Deno.readDirSync(dir)].find((e) => e.name.endsWith(".cpuprofile"))!;
      const p = JSON.parse(Deno.readTextFileSync(`${dir}/${file.name}`)) as Profile;
      const times = selfTimes(p);
      const total = times.reduce((s, [, t]) => s + t, 0);
      console.log(
        `\n== ${root} rep ${r + 1}: ready ${
          figures.ms.toFixed(0)
        } ms, ${figures.entries} entries, ` +
          `profile ${total.toFixed(0)} ms`,
      );
      for (const [name, ms] of times.slice(0, top)) {
        console.log(`${ms.toFixed(0).padStart(7)} ms  ${name}`);
      }
      await Deno.remove(dir, { recursive: true });
    }
  }
  await nc.close();
} finally {
  await server.stop();
}
