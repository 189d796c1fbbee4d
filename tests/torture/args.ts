/**
 * Command-line options of `deno task torture`, and the one-line command that
 * replays a schedule.
 *
 * @module
 */
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
}

const USAGE = `usage: deno task torture [--seed N] [--schedules N] [--modes ${MODE_NAMES.join(",")}]
                          [--server PATH] [--budget-ms MS] [--steps i,j,…] [--shrink-ms MS]
                          [--fail-fast] [--gen ${GENERATIONS.join("|")}] [--projection]`;

/** Parses `args`; throws a `TypeError` with the usage on a bad one. */
export function parseArgs(args: string[]): TortureOptions {
  const o: TortureOptions = {
    seed: Math.floor(Math.random() * 2 ** 31),
    schedules: 20,
    modes: [...MODE_NAMES],
    budgetMs: Infinity,
    shrinkMs: 180_000,
    failFast: false,
    gen: LATEST_GEN,
    projection: false,
  };
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    const next = () => {
      const v = args[++i];
      if (v === undefined) throw new TypeError(`Cannot run torture: ${a} needs a value\n${USAGE}`);
      return v;
    };
    const int = (v: string) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) {
        throw new TypeError(`Cannot run torture: ${a} must be a non-negative integer, got ${v}`);
      }
      return n;
    };
    switch (a) {
      case "--seed":
        o.seed = int(next());
        break;
      case "--schedules":
        o.schedules = int(next());
        break;
      case "--modes":
        o.modes = next().split(",").map((m) => {
          if (!(MODE_NAMES as readonly string[]).includes(m)) {
            throw new TypeError(`Cannot run torture: unknown mode "${m}"\n${USAGE}`);
          }
          return m as ModeName;
        });
        break;
      case "--server":
        o.server = next();
        break;
      case "--budget-ms":
        o.budgetMs = int(next());
        break;
      case "--steps":
        o.steps = next().split(",").filter(Boolean).map(int);
        break;
      case "--shrink-ms":
        o.shrinkMs = int(next());
        break;
      case "--fail-fast":
        o.failFast = true;
        break;
      case "--gen": {
        const g = int(next());
        if (!(GENERATIONS as readonly number[]).includes(g)) {
          throw new TypeError(`Cannot run torture: unknown generation ${g}\n${USAGE}`);
        }
        o.gen = g;
        break;
      }
      case "--projection":
        o.projection = true;
        break;
      default:
        throw new TypeError(`Cannot run torture: unknown argument "${a}"\n${USAGE}`);
    }
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
