/**
 * Command-line options of `deno task torture`, and the one-line command that
 * replays a schedule.
 *
 * @module
 */
import { type FlagSpec, parseArgs as parseFlags } from "../../scripts/cli/args.ts";
import { UsageError } from "../../host/usage_error.ts";
import { GENERATIONS, LATEST_GEN, MODE_NAMES, type ModeName } from "./schedule.ts";

/** Options of a checker run. */
export interface TortureOptions {
  /** Seed of the first schedule (schedule i: `scheduleSeed(seed, i)`). Default: random. */
  seed: number;
  /** Schedules to run at most. Default 20. */
  schedules: number;
  /** Mode families to pick from. Default: all. */
  modes: ModeName[];
  /** nats-server executable (sets `KVEDGE_NATS_SERVER`). Default: host/nats_binary.ts decides. */
  server?: string;
  /** Stop starting schedules after this long, ms. Default: none. */
  budgetMs: number;
  /** Replay only these steps of the schedule (a shrunk schedule). */
  steps?: number[];
  /** Shrink a failing schedule (default true); time allowed for it, ms. */
  shrinkMs: number;
  /** Stop at the first failing schedule. Default false. */
  failFast: boolean;
  /** The step generator's generation (a recorded seed replays with its own). Default: the newest. */
  gen: number;
  /**
   * Run projection schedules instead (tests/torture/projection.ts): the
   * projector killed while it applies events that write several keys.
   * Default false.
   */
  projection: boolean;
  /** `--help` was given: print {@linkcode USAGE} and run nothing. */
  help?: boolean;
}

/** The usage line of `deno task torture`, printed by `--help` and after a bad argument. */
export const USAGE = `usage: deno task torture [--seed N] [--schedules N] [--modes ${
  MODE_NAMES.join(",")
}]
                          [--server PATH] [--budget-ms MS] [--steps i,j,…] [--shrink-ms MS]
                          [--fail-fast] [--gen ${GENERATIONS.join("|")}] [--projection]`;

/** The flags of {@linkcode USAGE}, for the project's one argv parser. */
const FLAGS: Record<string, FlagSpec> = {
  seed: { type: "int", min: 0, help: "seed of the first schedule (default: random)" },
  schedules: { type: "int", min: 0, help: "schedules to run at most", default: 20 },
  modes: { type: "string", help: "mode families to pick from (default: all)" },
  server: { type: "string", help: "nats-server executable (sets KVEDGE_NATS_SERVER)" },
  "budget-ms": { type: "int", min: 0, help: "stop starting schedules after this long" },
  steps: { type: "string", help: "replay only these steps of the schedule" },
  "shrink-ms": { type: "int", min: 0, help: "time allowed to shrink a failing schedule" },
  "fail-fast": { type: "boolean", help: "stop at the first failing schedule" },
  gen: { type: "int", min: 0, help: "the step generator's generation" },
  projection: { type: "boolean", help: "run projection schedules instead" },
};

/**
 * Parses `args` with the project's one argv parser (scripts/cli/args.ts, on
 * `node:util`); throws its `UsageError` on a bad one (print it with
 * {@linkcode USAGE}).
 */
export function parseArgs(args: string[]): TortureOptions {
  const p = parseFlags(args, [FLAGS]);
  const bad = (reason: string) => new UsageError(reason);
  if (p.positionals.length > 0) throw bad(`unknown argument "${p.positionals[0]}"`);
  const f = p.flags;
  const o: TortureOptions = {
    seed: (f.seed as number | undefined) ?? Math.floor(Math.random() * 2 ** 31),
    schedules: f.schedules as number,
    modes: [...MODE_NAMES],
    budgetMs: (f["budget-ms"] as number | undefined) ?? Infinity,
    shrinkMs: (f["shrink-ms"] as number | undefined) ?? 180_000,
    failFast: f["fail-fast"] === true,
    gen: (f.gen as number | undefined) ?? LATEST_GEN,
    projection: f.projection === true,
    help: p.help,
  };
  if (f.server !== undefined) o.server = f.server as string;
  if (f.modes !== undefined) {
    o.modes = (f.modes as string).split(",").map((m) => {
      if (!(MODE_NAMES as readonly string[]).includes(m)) throw bad(`unknown mode "${m}"`);
      return m as ModeName;
    });
  }
  if (f.steps !== undefined) {
    o.steps = (f.steps as string).split(",").filter(Boolean).map((v) => {
      if (!/^\d{1,15}$/.test(v)) throw bad(`flag --steps takes integers, got ${JSON.stringify(v)}`);
      return Number(v);
    });
  }
  if (!(GENERATIONS as readonly number[]).includes(o.gen)) {
    throw bad(`unknown generation ${o.gen}`);
  }
  return o;
}

/** The one-line command that replays schedule `seed` (its mode family and generation, on `server`). */
export function replayCommand(
  seed: number,
  mode: ModeName,
  run: { server?: string; gen: number },
  steps?: readonly number[],
): string {
  return [
    "deno task torture",
    `--seed ${seed}`,
    "--schedules 1",
    `--modes ${mode}`,
    `--gen ${run.gen}`,
    ...(run.server ? [`--server ${run.server}`] : []),
    ...(steps ? [`--steps ${steps.join(",")}`] : []),
  ].join(" ");
}
