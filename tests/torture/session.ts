/**
 * What every checker run shares, the fault schedules' and the projection
 * schedules': the servers' World stopped on Ctrl-C or a timeout's SIGTERM
 * (even a paused server) and after the run, a schedule whose harness threw
 * reported like a violation, and the closing summary lines.
 *
 * @module
 */
import type { Violation } from "./checker.ts";
import { World } from "./world.ts";

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

/** What one schedule's run returns. */
export interface ScheduleOutcome {
  violations: Violation[];
  /** Violations set aside as a known server defect, with the evidence (see runner.ts). */
  excused?: { reason: string; violations: Violation[] };
  mix: Map<string, number>;
  ms: number;
}

/**
 * Runs `body` with a new World on `server` (or the default nats-server),
 * closing it after, and on SIGINT/SIGTERM before exiting with 130.
 *
 * @example
 * ```ts ignore
 * const n = await withWorld(undefined, async (world) => (await world.single()).url);
 * ```
 */
export async function withWorld<R>(
  server: string | undefined,
  body: (world: World) => Promise<R>,
): Promise<R> {
  if (server) Deno.env.set("KVEDGE_NATS_SERVER", server);
  const world = new World();
  const stop = () => void world.close().finally(() => Deno.exit(130));
  const signals = ["SIGINT", "SIGTERM"] as const;
  for (const sig of signals) Deno.addSignalListener(sig, stop);
  try {
    return await body(world);
  } finally {
    for (const sig of signals) Deno.removeSignalListener(sig, stop);
    await world.close();
  }
}

/**
 * Runs one schedule; a harness error (a step threw, a server that did not
 * come back) becomes a `harness` violation, so it is reported with its seed.
 *
 * @example
 * ```ts ignore
 * const res = await outcomeOf(() => runSchedule(world, schedule));
 * ```
 */
export function outcomeOf(run: () => Promise<ScheduleOutcome>): Promise<ScheduleOutcome> {
  return run().catch((err) => ({
    violations: [{ rule: "harness", message: String(err?.stack ?? err) }],
    mix: new Map<string, number>(),
    ms: 0,
  }));
}

/** Adds one schedule's counts to the run's. */
export function addMix(into: Map<string, number>, from: Map<string, number>): void {
  for (const [k, n] of from) into.set(k, (into.get(k) ?? 0) + n);
}

/**
 * Logs the run's summary (`what`: "schedules", "projection schedules") and
 * one replay line per failure, and returns the report.
 *
 * @example
 * ```ts ignore
 * return summarize(log, "schedules", { schedules: ran, failures, mix, ms: Date.now() - started });
 * ```
 */
export function summarize(
  log: (line: string) => void,
  what: string,
  r: TortureReport,
): TortureReport {
  log(
    `${r.schedules} ${what} in ${(r.ms / 1000).toFixed(0)} s, ${r.failures.length} failed; mix: ${
      [...r.mix].sort().map(([k, n]) => `${k} ${n}`).join(", ")
    }`,
  );
  for (const f of r.failures) log(`FAILED seed ${f.seed}: ${f.shrunk ?? f.replay}`);
  return r;
}

/** Logs a schedule whose violations were set aside as the server's defect, with the evidence. */
export function logExcused(
  log: (line: string) => void,
  seed: number,
  excused: NonNullable<ScheduleOutcome["excused"]>,
): void {
  log(`  excused (seed ${seed}): ${excused.reason}`);
  for (const v of excused.violations.slice(0, 3)) log(`    [${v.rule}] ${v.message}`);
}

/** Logs a failure's first ten violations under its seed. */
export function logViolations(log: (line: string) => void, f: Failure): void {
  log(`FAILED seed ${f.seed}`);
  for (const v of f.violations.slice(0, 10)) log(`  [${v.rule}] ${v.message}`);
  if (f.violations.length > 10) log(`  … and ${f.violations.length - 10} more`);
}
