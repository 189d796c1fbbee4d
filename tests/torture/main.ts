/**
 * `deno task torture`: the fault-schedule checker. Runs seeded schedules of
 * operations and faults against real nats-server processes (one set shared
 * by every schedule, a new bucket each), judges every read against KV's own
 * history, prints each failing schedule's seed and replay command, and
 * shrinks it. Exit code 1 when a schedule failed, 2 on bad arguments.
 *
 * @module
 */
import { parseArgs, replayCommand, type TortureOptions, USAGE } from "./args.ts";
import { UsageError } from "../../host/usage_error.ts";
import { describeSchedule, runSchedule } from "./runner.ts";
import { generate, type ModeName, pickMode, type Schedule, scheduleSeed } from "./schedule.ts";
import { shrink } from "./shrink.ts";
import type { World } from "./world.ts";
import { tortureProjections } from "./projection.ts";
import {
  addMix,
  type Failure,
  logExcused,
  logViolations,
  outcomeOf,
  summarize,
  type TortureReport,
  withWorld,
} from "./session.ts";

export type { Failure, TortureReport } from "./session.ts";

/** Runs the checker with `o`; `log` gets every line it prints. */
export function torture(
  o: TortureOptions,
  log: (line: string) => void = console.log,
): Promise<TortureReport> {
  return withWorld(o.server, async (world) => {
    const started = Date.now();
    const mix = new Map<string, number>();
    const failures: Failure[] = [];
    let ran = 0;
    for (let i = 0; i < o.schedules; i++) {
      if (Date.now() - started > o.budgetMs) break;
      const seed = scheduleSeed(o.seed, i);
      const mode = pickMode(seed, o.modes);
      const schedule = generate(seed, [mode], { keep: o.steps, gen: o.gen });
      const res = await outcomeOf(() => runSchedule(world, schedule));
      ran++;
      addMix(mix, res.mix);
      const faults = [...res.mix.keys()].filter((k) => k.startsWith("fault")).join(",");
      log(
        `schedule ${i} seed ${seed} ${mode}: ${schedule.steps.length} steps, ${res.ms} ms` +
          `${faults ? `, ${faults}` : ""}: ${verdict(res)}`,
      );
      if (res.excused) logExcused(log, seed, res.excused);
      if (res.violations.length === 0) continue;
      const failure: Failure = {
        seed,
        replay: replayCommand(seed, mode, o, o.steps),
        violations: res.violations,
      };
      failures.push(failure);
      report(log, schedule, failure);
      if (o.shrinkMs > 0 && !o.steps) {
        await shrinkFailure({ world, o, log, schedule, mode, failure });
      }
      if (o.failFast) break;
    }
    return summarize(log, "schedules", { schedules: ran, failures, mix, ms: Date.now() - started });
  });
}

/** Shrinks a failing schedule to the fewest steps that still break its first rule, and logs it. */
async function shrinkFailure(
  a: {
    world: World;
    o: TortureOptions;
    log: (l: string) => void;
    schedule: Schedule;
    mode: ModeName;
    failure: Failure;
  },
): Promise<void> {
  const { world, o, log, schedule, mode, failure } = a;
  const rule = failure.violations[0]!.rule;
  const replayRules = async (s: Schedule) =>
    new Set((await runSchedule(world, s)).violations.map((v) => v.rule));
  const keep = await shrink(
    schedule,
    mode,
    rule,
    replayRules,
    o.shrinkMs,
    (k, still) => log(`  shrink: ${k.length} steps: ${still ? `still breaks ${rule}` : "passes"}`),
  );
  if (keep.length >= schedule.steps.length) return;
  failure.shrunk = replayCommand(failure.seed, mode, o, keep);
  log(`  shrunk to ${keep.length} of ${schedule.steps.length} steps (${rule}):`);
  log(describeSchedule(generate(failure.seed, [mode], { keep, gen: o.gen })));
  log(`  replay: ${failure.shrunk}`);
}

function verdict(res: { violations: unknown[]; excused?: unknown }): string {
  return res.violations.length > 0 ? "FAILED" : res.excused ? "excused" : "ok";
}

function report(log: (l: string) => void, s: Schedule, f: Failure) {
  logViolations(log, f);
  log(describeSchedule(s));
  log(`  replay: ${f.replay}`);
}

if (import.meta.main) {
  let o: TortureOptions;
  try {
    o = parseArgs(Deno.args);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    console.error(`Cannot run torture: ${err.message}\n${USAGE}`);
    Deno.exit(2);
  }
  if (o.help) {
    console.log(USAGE);
    Deno.exit(0);
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
