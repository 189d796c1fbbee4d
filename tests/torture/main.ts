/**
 * `deno task torture`: the fault-schedule checker. Runs seeded schedules of
 * operations and faults against real nats-server processes (one set shared
 * by every schedule, a new bucket each), judges every read against KV's own
 * history, prints each failing schedule's seed and replay command, and
 * shrinks it. Exit code 1 when a schedule failed, 2 on bad arguments.
 *
 * @module
 */
import { parseArgs, replayCommand, type TortureOptions } from "./args.ts";
import { describeSchedule, runSchedule } from "./runner.ts";
import { generate, pickMode, type Schedule, scheduleSeed } from "./schedule.ts";
import { shrink } from "./shrink.ts";
import { World } from "./world.ts";
import { tortureProjections } from "./projection.ts";
import type { Violation } from "./checker.ts";

/** One failing schedule. */
export interface Failure {
  seed: number;
  replay: string;
  violations: Violation[];
  /** The shrunk replay command, when shrinking found a shorter schedule. */
  shrunk?: string;
}

/** The summary of a run. */
export interface TortureReport {
  schedules: number;
  failures: Failure[];
  mix: Map<string, number>;
  ms: number;
}

/** Runs the checker with `o`; `log` gets every line it prints. */
export async function torture(
  o: TortureOptions,
  log: (line: string) => void = console.log,
): Promise<TortureReport> {
  if (o.server) Deno.env.set("KVEDGE_NATS_SERVER", o.server);
  const world = new World();
  const started = Date.now();
  const mix = new Map<string, number>();
  const failures: Failure[] = [];
  let ran = 0;
  // Interrupted (Ctrl-C, a timeout's SIGTERM): stop the servers, even a paused one, first.
  const stop = () => void world.close().finally(() => Deno.exit(130));
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const sig of signals) Deno.addSignalListener(sig, stop);
  try {
    for (let i = 0; i < o.schedules; i++) {
      if (Date.now() - started > o.budgetMs) break;
      const seed = scheduleSeed(o.seed, i);
      const mode = pickMode(seed, o.modes);
      const schedule = generate(seed, [mode], { keep: o.steps, gen: o.gen });
      // A harness error (a server that did not come back) fails the schedule, with its seed.
      const res = await runSchedule(world, schedule).catch((err) => ({
        violations: [{ rule: "harness", message: String(err?.stack ?? err) }],
        mix: new Map<string, number>(),
        ms: 0,
      }));
      ran++;
      for (const [k, n] of res.mix) mix.set(k, (mix.get(k) ?? 0) + n);
      const faults = [...res.mix.keys()].filter((k) => k.startsWith("fault")).join(",");
      log(
        `schedule ${i} seed ${seed} ${mode}: ${schedule.steps.length} steps, ${res.ms} ms` +
          `${faults ? `, ${faults}` : ""}: ${res.violations.length === 0 ? "ok" : "FAILED"}`,
      );
      if (res.violations.length === 0) continue;
      const replay = replayCommand(seed, mode, o, o.steps);
      const failure: Failure = { seed, replay, violations: res.violations };
      failures.push(failure);
      report(log, schedule, failure);
      if (o.shrinkMs > 0 && !o.steps) {
        const rule = res.violations[0]!.rule;
        const replayRules = async (s: Schedule) =>
          new Set((await runSchedule(world, s)).violations.map((v) => v.rule));
        const keep = await shrink(
          schedule,
          mode,
          rule,
          replayRules,
          o.shrinkMs,
          (k, still) =>
            log(`  shrink: ${k.length} steps: ${still ? `still breaks ${rule}` : "passes"}`),
        );
        if (keep.length < schedule.steps.length) {
          failure.shrunk = replayCommand(seed, mode, o, keep);
          log(`  shrunk to ${keep.length} of ${schedule.steps.length} steps (${rule}):`);
          log(describeSchedule(generate(seed, [mode], { keep, gen: o.gen })));
          log(`  replay: ${failure.shrunk}`);
        }
      }
      if (o.failFast) break;
    }
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, stop);
    await world.close();
  }
  const ms = Date.now() - started;
  log(
    `${ran} schedules in ${(ms / 1000).toFixed(0)} s, ${failures.length} failed; mix: ${
      [...mix].sort().map(([k, n]) => `${k} ${n}`).join(", ")
    }`,
  );
  for (const f of failures) log(`FAILED seed ${f.seed}: ${f.shrunk ?? f.replay}`);
  return { schedules: ran, failures, mix, ms };
}

function report(log: (l: string) => void, s: Schedule, f: Failure) {
  log(`FAILED seed ${f.seed}`);
  for (const v of f.violations.slice(0, 10)) log(`  [${v.rule}] ${v.message}`);
  if (f.violations.length > 10) log(`  … and ${f.violations.length - 10} more`);
  log(describeSchedule(s));
  log(`  replay: ${f.replay}`);
}

if (import.meta.main) {
  let o: TortureOptions;
  try {
    o = parseArgs(Deno.args);
  } catch (err) {
    console.error((err as Error).message);
    Deno.exit(2);
  }
  if (o.projection) {
    console.log(`torture: seed ${o.seed}, ${o.schedules} projection schedules`);
    const r = await tortureProjections(o);
    Deno.exit(r.failures.length > 0 ? 1 : 0);
  }
  console.log(`torture: seed ${o.seed}, ${o.schedules} schedules, modes ${o.modes.join(",")}`);
  const r = await torture(o);
  Deno.exit(r.failures.length > 0 ? 1 : 0);
}
