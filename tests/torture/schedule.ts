/**
 * Schedules of the fault-schedule checker: what one run does, generated from
 * a seed with fast-check (`fc.sample` with that seed, so one seed is one
 * schedule on every machine). A schedule is a mode (how the edge cache under
 * test is opened) and a list of steps: raw KV writes from another connection,
 * the cache's own writes and reads, closing and reopening the cache, changes
 * of the loader's answers, waits, and faults with their heal.
 *
 * @module
 */
import fc from "fast-check";

/** The named families of modes a run may pick from (`--modes`). */
export const MODE_NAMES = [
  "lazy",
  "replica",
  "snapshot",
  "loader",
  "schema",
  "regional",
  "pair",
  "websocket",
  "cluster",
] as const;
/** One of {@linkcode MODE_NAMES}. */
export type ModeName = typeof MODE_NAMES[number];

/** How the cache under test is opened (and reopened). */
export interface CacheShape {
  mode: "lazy" | "replica";
  /** `local.maxItems`: small values make a replica overflow and a lazy cache evict. */
  maxItems: number;
  /** Warm start from a snapshot file (kept across reopenings of one schedule). */
  snapshot: boolean;
}

/** A schedule's mode: the family, the first shape, and what every shape has. */
export interface Mode {
  name: ModeName;
  shape: CacheShape;
  /** A loader answers keys KV does not hold. */
  loader: boolean;
  /** A zod schema checks values (raw writers sometimes store values it refuses). */
  schema: boolean;
  /** The cache reads a leaf node's mirror and writes to the hub. */
  regional: boolean;
  /** Two caches on the bucket at once (the second of the other mode); reads go to both. */
  pair: boolean;
  /** The cache (and the whole run's connections) over WebSocket. */
  websocket: boolean;
  /** An R3 bucket on a three-node cluster; faults hit its stream leader. */
  cluster: boolean;
}

/** Faults; each stays until the next `heal` (or the end of the schedule). */
export type FaultKind =
  | "kill" // kill -9 of the server (the leaf in regional runs stays up), restart at heal
  | "leader" // cluster: kill -9 of the bucket's stream leader, restart at heal
  | "pause" // SIGSTOP (cluster: of the bucket's stream leader), SIGCONT at heal
  | "cut" // the TCP proxy between the cache and its server resets and refuses connections
  | "delay" // the proxy delays every chunk by 200 ms each way
  | "wan" // regional: the leaf↔hub link is cut
  | "purge" // the bucket's stream is purged (instantaneous)
  | "recreate"; // the bucket is deleted and created again (instantaneous)

/** Faults that make NATS unreachable for the cache while active. */
export const OUTAGES: ReadonlySet<FaultKind> = new Set(["kill", "pause", "cut", "wan", "leader"]);

/** Puts of one `burst` step. */
export const BURST = 12;

/** Keys writers write: few, so that operations collide. */
export const KEYS = ["k0", "k1", "k2", "k3", "k4", "k5"] as const;
/** Keys readers read: also two that KV never holds (only a loader answers them). */
export const READ_KEYS = [...KEYS, "k6", "k7"] as const;

/** One step of a schedule. */
export type Step =
  | { op: "put" | "create" | "update" | "delete" | "purge"; key: string }
  | { op: "putTtl"; key: string } // a put with a per-key TTL of 1 s to k6 or k7 (2.11+; before: a plain put to key)
  | { op: "putBad"; key: string } // a value the schema refuses (schema mode; a put otherwise)
  | { op: "set" | "del"; key: string } // the cache's own writes
  | { op: "get" | "getEntry" | "peek"; key: string }
  // getEntry with the newest acknowledged write as `atLeast` (rule 8); `write`:
  // a raw put to the key just before (another edge's write, then this read)
  | { op: "getAt"; key: string; allowStale: boolean; write: boolean }
  | { op: "readAll" } // getEntry of every key at once
  | { op: "pauseReader" | "resumeReader" } // the slow changes() reader stops / goes on reading
  | { op: "burst" } // BURST raw puts at once, over every key written
  | { op: "reopen"; snapshot: boolean; shape?: CacheShape }
  | { op: "loader"; key: string; present: boolean } // the origin's answer for a key changes
  | { op: "wait"; ms: number }
  | { op: "fault"; fault: FaultKind }
  | { op: "heal" };

/** A generated schedule. */
export interface Schedule {
  seed: number;
  /** The generator's generation ({@linkcode GENERATIONS}). */
  gen: number;
  mode: Mode;
  steps: Step[];
}

const key = fc.constantFrom(...KEYS);
const readKey = fc.constantFrom(...READ_KEYS);

function shapeArb(mode: "lazy" | "replica" | "any", snapshot: boolean | "any") {
  return fc.record({
    mode: mode === "any"
      ? fc.constantFrom("lazy" as const, "replica" as const, "replica" as const)
      : fc.constant(mode),
    maxItems: fc.constantFrom(3, 100, 100, 100),
    snapshot: snapshot === "any" ? fc.constantFrom(true, true, false) : fc.constant(snapshot),
  });
}

function modeArb(name: ModeName): fc.Arbitrary<Mode> {
  const base = {
    name,
    loader: false,
    schema: false,
    regional: false,
    pair: false,
    websocket: false,
    cluster: false,
  };
  switch (name) {
    case "lazy":
      return shapeArb("lazy", false).map((shape) => ({ ...base, shape }));
    case "replica":
      return shapeArb("replica", false).map((shape) => ({ ...base, shape }));
    case "snapshot":
      return shapeArb("replica", true).map((shape) => ({ ...base, shape }));
    case "loader":
      return shapeArb("any", "any").map((shape) => ({ ...base, shape, loader: true }));
    case "schema":
      return shapeArb("any", "any").map((shape) => ({ ...base, shape, schema: true }));
    case "regional":
      return shapeArb("any", false).map((shape) => ({ ...base, shape, regional: true }));
    case "pair":
      return shapeArb("any", "any").map((shape) => ({ ...base, shape, pair: true }));
    case "websocket":
      return shapeArb("any", "any").map((shape) => ({ ...base, shape, websocket: true }));
    case "cluster":
      return shapeArb("any", "any").map((shape) => ({ ...base, shape, cluster: true }));
  }
}

function faultsOf(mode: Mode): FaultKind[] {
  if (mode.regional) return ["wan", "wan", "cut", "delay"];
  if (mode.cluster) return ["leader", "leader", "pause", "purge", "recreate"];
  return ["kill", "pause", "cut", "cut", "delay", "purge", "recreate"];
}

/**
 * Generations of the step generator: a schedule is a function of its seed
 * and its generation, so a recorded seed replays the same steps after new
 * kinds of steps are added (`--gen`). 1: the first set; 2: adds bookmarked
 * reads (rule 8), bursts of puts and pausing the slow `changes()` reader.
 */
export const GENERATIONS = [1, 2] as const;
/** The newest generation, the default. */
export const LATEST_GEN = 2;

function stepArb(mode: Mode, gen: number): fc.Arbitrary<Step> {
  const writes = ["put", "put", "put", "create", "update", "delete", "purge"] as const;
  const options: fc.WeightedArbitrary<Step>[] = [
    { weight: 8, arbitrary: fc.record({ op: fc.constantFrom(...writes), key }) },
    { weight: 1, arbitrary: fc.record({ op: fc.constant("putTtl" as const), key }) },
    {
      weight: 3,
      arbitrary: fc.record({ op: fc.constantFrom("set" as const, "del" as const), key }),
    },
    {
      weight: 10,
      arbitrary: fc.record({
        op: fc.constantFrom("get" as const, "getEntry" as const, "peek" as const),
        key: readKey,
      }),
    },
    { weight: 3, arbitrary: fc.constant({ op: "readAll" as const }) },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("reopen" as const),
        snapshot: fc.constantFrom(true, true, true, false),
        shape: fc.option(shapeArb("any", mode.regional ? false : "any"), {
          nil: undefined,
          freq: 3,
        }),
      }).map((s) => (s.shape === undefined ? { op: s.op, snapshot: s.snapshot } : s)),
    },
    {
      weight: 3,
      arbitrary: fc.record({
        op: fc.constant("wait" as const),
        ms: fc.constantFrom(100, 300, 1000, 2500),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("fault" as const),
        fault: fc.constantFrom(...faultsOf(mode)),
      }),
    },
    { weight: 2, arbitrary: fc.constant({ op: "heal" as const }) },
  ];
  if (mode.loader) {
    options.push({
      weight: 2,
      arbitrary: fc.record({ op: fc.constant("loader" as const), key, present: fc.boolean() }),
    });
  }
  if (mode.schema) {
    options.push({ weight: 2, arbitrary: fc.record({ op: fc.constant("putBad" as const), key }) });
  }
  if (gen >= 2) {
    options.push({
      weight: 2,
      arbitrary: fc.constantFrom({ op: "pauseReader" as const }, { op: "resumeReader" as const }),
    });
    options.push({ weight: 2, arbitrary: fc.constant({ op: "burst" as const }) });
    options.push({
      weight: 4,
      arbitrary: fc.record({
        op: fc.constant("getAt" as const),
        key: readKey,
        allowStale: fc.boolean(),
        write: fc.boolean(),
      }),
    });
  }
  return fc.oneof(...options);
}

/** The arbitrary of a whole schedule in mode family `name` (steps: 8–40) of generation `gen`. */
export function scheduleArb(
  name: ModeName,
  maxSteps = 40,
  gen = LATEST_GEN,
): fc.Arbitrary<Omit<Schedule, "seed" | "gen">> {
  return modeArb(name).chain((mode) =>
    fc.array(stepArb(mode, gen), { minLength: 8, maxLength: maxSteps }).map((steps) => ({
      mode,
      steps,
    }))
  );
}

/** The seed of the `i`-th schedule of a run started with `seed` (schedule 0 has `seed` itself). */
export function scheduleSeed(seed: number, i: number): number {
  return (seed + i * 7919) % 2_147_483_647;
}

/** The mode family a schedule seed picks from `modes` (a pure function of the two). */
export function pickMode(seed: number, modes: readonly ModeName[]): ModeName {
  return modes[Math.abs(Math.imul(seed, 2654435761) >>> 0) % modes.length]!;
}

/** What {@linkcode generate} makes: `keep` selects steps (a shrunk replay). */
export interface GenerateOptions {
  keep?: readonly number[];
  maxSteps?: number;
  /** The generator's generation (default {@linkcode LATEST_GEN}). */
  gen?: number;
}

/** Generates the schedule of `seed` among `modes`. */
export function generate(
  seed: number,
  modes: readonly ModeName[],
  options: GenerateOptions = {},
): Schedule {
  const { keep, maxSteps = 40, gen = LATEST_GEN } = options;
  const name = pickMode(seed, modes);
  const [s] = fc.sample(scheduleArb(name, maxSteps, gen), { seed, numRuns: 1 });
  const steps = keep
    ? keep.map((i) => s!.steps[i]).filter((x): x is Step => x !== undefined)
    : s!.steps;
  return { seed, gen, mode: s!.mode, steps };
}

/** One line per step, for failure reports. */
export function describeStep(s: Step): string {
  switch (s.op) {
    case "reopen":
      return `reopen${s.snapshot ? " (snapshot)" : ""}${
        s.shape ? ` as ${JSON.stringify(s.shape)}` : ""
      }`;
    case "loader":
      return `loader answers ${s.key}: ${s.present ? "a new value" : "absent"}`;
    case "wait":
      return `wait ${s.ms} ms`;
    case "fault":
      return `fault ${s.fault}`;
    case "heal":
      return "heal every fault";
    case "readAll":
      return "getEntry of every key";
    case "burst":
      return `${BURST} puts at once`;
    case "pauseReader":
      return "the slow changes() reader stops reading";
    case "resumeReader":
      return "the slow changes() reader reads again";
    case "getAt":
      return `${s.write ? `put ${s.key} (through the other cache in pair mode), then ` : ""}` +
        `getEntry ${s.key} at the newest acknowledged write${s.allowStale ? " (allowStale)" : ""}`;
    default:
      return `${s.op} ${s.key}`;
  }
}
