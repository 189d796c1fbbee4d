/**
 * The projection checker (`deno task torture --projection`): seeded
 * schedules of events published to a source stream, each of which writes
 * several keys of the target (tests/torture/projection_fixture.ts),
 * interleaved with `kill -9` of the projector process (`deno task project`,
 * run as a child and killed by its PID) at random moments, graceful stops,
 * restarts, TCP cuts between projector and server and, on 2.10+, `kill -9`
 * of the server. After the last step every fault is healed and one
 * uninterrupted run catches up; the target must then hold exactly what an
 * uninterrupted reference run of the same events into a second bucket holds,
 * and what the same fold computes in memory.
 *
 * @module
 */
import fc from "fast-check";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { runProjection } from "../../projection.ts";
import { versionAtLeast } from "../../src/server_version.ts";
import { dumpBucket, lines, uniqueBucket } from "../_setup.ts";
import type { Violation } from "./checker.ts";
import { scheduleSeed } from "./schedule.ts";
import type { Site } from "./world.ts";
import {
  addMix,
  type Failure,
  logViolations,
  outcomeOf,
  type ScheduleOutcome,
  summarize,
  type TortureReport,
  withWorld,
} from "./session.ts";
import {
  foldLedger,
  type LedgerEvent,
  type LedgerPlace,
  ledgerProjection,
} from "./projection_fixture.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const WORKER = `${ROOT}workers/projector.ts`;
const FIXTURE = `${ROOT}tests/torture/projection_fixture.ts`;
const CONFIG = `${ROOT}deno.json`;
/** `--ack-wait-ms` of the projector (its minimum): a killed run's event comes back after 1 s. */
const ACK_WAIT_MS = 1_000;
/** The final uninterrupted run and the reference run must catch up within this. */
const CATCH_UP_MS = 60_000;

/** Faults of a projection schedule, until the next heal. */
export type ProjectionFault =
  | "cut" // the TCP proxy between projector and server resets and refuses connections
  | "kill"; // kill -9 of the server (2.10+; 2.9 may lose acknowledged writes to it), restart at heal

/** One step of a projection schedule. */
export type ProjectionStep =
  | { op: "publish"; events: LedgerEvent[] }
  | { op: "start" } // start the projector (if none runs)
  | { op: "sigkill"; afterMs: number } // start it if none runs, wait, then kill -9 it
  | { op: "sigkillAt"; writes: number } // start it if none runs, kill -9 it right after its n-th target write
  | { op: "sigterm" } // a graceful stop
  | { op: "wait"; ms: number }
  | { op: "fault"; fault: ProjectionFault }
  | { op: "heal" };

/** A generated projection schedule. */
export interface ProjectionSchedule {
  seed: number;
  steps: ProjectionStep[];
}

const ORDERS = ["o0", "o1", "o2", "o3", "o4", "o5"] as const;
const CUSTOMERS = ["c0", "c1", "c2"] as const;

const eventArb: fc.Arbitrary<LedgerEvent> = fc.oneof(
  {
    weight: 3,
    arbitrary: fc.record({
      t: fc.constant("created" as const),
      o: fc.constantFrom(...ORDERS),
      c: fc.constantFrom(...CUSTOMERS),
    }),
  },
  {
    weight: 5,
    arbitrary: fc.record({
      t: fc.constant("item" as const),
      o: fc.constantFrom(...ORDERS),
      amount: fc.integer({ min: 1, max: 99 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ t: fc.constant("cancelled" as const), o: fc.constantFrom(...ORDERS) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      t: fc.constant("moved" as const),
      o: fc.constantFrom(...ORDERS),
      c: fc.constantFrom(...CUSTOMERS),
    }),
  },
);

const stepArb: fc.Arbitrary<ProjectionStep> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      op: fc.constant("publish" as const),
      events: fc.array(eventArb, { minLength: 5, maxLength: 60, size: "medium" }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "start" as const }) },
  {
    weight: 3,
    arbitrary: fc.record({
      op: fc.constant("sigkill" as const),
      afterMs: fc.integer({ min: 0, max: 700 }),
    }),
  },
  {
    weight: 8,
    arbitrary: fc.record({
      op: fc.constant("sigkillAt" as const),
      writes: fc.integer({ min: 1, max: 12 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: "sigterm" as const }) },
  {
    weight: 1,
    arbitrary: fc.record({ op: fc.constant("wait" as const), ms: fc.constantFrom(50, 200, 500) }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      op: fc.constant("fault" as const),
      fault: fc.constantFrom("cut" as const, "kill" as const),
    }),
  },
  { weight: 2, arbitrary: fc.constant({ op: "heal" as const }) },
);

/**
 * The schedule of `seed` (6–16 steps); `keep` selects steps (a replay of part of it).
 *
 * @example
 * ```ts ignore
 * const { steps } = generateProjection(7920); // the same steps on every machine
 * ```
 */
export function generateProjection(seed: number, keep?: readonly number[]): ProjectionSchedule {
  const [steps] = fc.sample(fc.array(stepArb, { minLength: 6, maxLength: 16 }), {
    seed,
    numRuns: 1,
  });
  return {
    seed,
    steps: keep
      ? keep.map((i) => steps![i]).filter((s): s is ProjectionStep => s !== undefined)
      : steps!,
  };
}

/**
 * One line per step, for failure reports.
 *
 * @example
 * ```ts ignore
 * describeProjectionStep({ op: "sigkillAt", writes: 3 }); // "kill -9 the projector right after its 3th …"
 * ```
 */
export function describeProjectionStep(s: ProjectionStep): string {
  switch (s.op) {
    case "publish": {
      const kinds = new Map<string, number>();
      for (const e of s.events) kinds.set(e.t, (kinds.get(e.t) ?? 0) + 1);
      return `publish ${s.events.length} events (${
        [...kinds].map(([k, n]) => `${n} ${k}`).join(", ")
      })`;
    }
    case "sigkill":
      return `kill -9 the projector ${s.afterMs} ms after it started (starting one if none runs)`;
    case "sigkillAt":
      return `kill -9 the projector right after its ${s.writes}th target write (starting one if none runs)`;
    case "sigterm":
      return "SIGTERM the projector (graceful stop)";
    case "start":
      return "start the projector";
    case "wait":
      return `wait ${s.ms} ms`;
    case "fault":
      return `fault ${s.fault === "kill" ? "kill -9 the server" : "cut projector ↔ server"}`;
    case "heal":
      return "heal every fault";
  }
}

/** A projector child process. */
class Projector {
  readonly child: Deno.ChildProcess;
  readonly out: string[] = [];
  readonly started: Promise<boolean>;
  readonly #done: Promise<unknown>;
  constructor(natsUrl: string, place: LedgerPlace, extra: string[]) {
    this.child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--config",
        CONFIG,
        WORKER,
        "--ack-wait-ms",
        String(ACK_WAIT_MS),
        "--status-every",
        "60",
        ...extra,
        FIXTURE,
      ],
      env: { NATS_URL: natsUrl, NO_COLOR: "1", KVEDGE_TORTURE_PROJECTION: JSON.stringify(place) },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let onStarted!: (ok: boolean) => void;
    this.started = new Promise((r) => onStarted = r);
    const pump = async (s: ReadableStream<Uint8Array>) => {
      for await (const l of lines(s)) {
        if (this.out.length < 400) this.out.push(l);
        if (l.includes('"projection started"')) onStarted(true);
      }
    };
    this.#done = Promise.all([pump(this.child.stdout), pump(this.child.stderr)]).catch(() => {});
    void this.child.status.then(() => onStarted(false));
  }
  /** Kills it with `signal` (by its PID) and waits for it to end. */
  async stop(signal: Deno.Signal): Promise<Deno.CommandStatus> {
    try {
      this.child.kill(signal);
    } catch {
      // Already ended.
    }
    const status = await this.child.status;
    await this.#done;
    return status;
  }
  /** Waits for it to end by itself, at most `ms`; undefined if it did not. */
  async ended(ms: number): Promise<Deno.CommandStatus | undefined> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms));
    try {
      const s = await Promise.race([this.child.status, late]);
      if (s) await this.#done;
      return s;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** How many times the projector was killed with SIGKILL. */
function kills(mix: Map<string, number>): number {
  let n = 0;
  for (const [k, v] of mix) if (k.startsWith("projector kill -9") && !k.includes("holding")) n += v;
  return n;
}

/** The error of a projector's last error line, shortened. */
function lastError(out: readonly string[]): string {
  for (const l of [...out].reverse()) {
    try {
      const j = JSON.parse(l) as { level?: string; msg?: string; error?: string };
      if (j.level === "error") return `${j.msg}${j.error ? `: ${j.error.slice(0, 80)}` : ""}`;
    } catch {
      // Not a JSON line.
    }
  }
  return "no error line";
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

function diff(name: string, actual: Map<string, string>, expected: Map<string, string>): string[] {
  const out: string[] = [];
  for (const k of new Set([...actual.keys(), ...expected.keys()])) {
    const a = actual.get(k);
    const e = expected.get(k);
    if (a !== e) out.push(`${k}: target ${a ?? "absent"}, ${name} ${e ?? "absent"}`);
  }
  return out;
}

/**
 * Runs one projection schedule on `site`: its own source stream, target and
 * reference buckets (deleted at the end), every step, the final uninterrupted
 * run and the comparison. Leaves the site healed.
 *
 * @example
 * ```ts ignore
 * const res = await runProjectionSchedule(await new World().single(), generateProjection(1));
 * ```
 */
export async function runProjectionSchedule(
  site: Site,
  schedule: ProjectionSchedule,
): Promise<ScheduleOutcome> {
  const t0 = Date.now();
  const mix = new Map<string, number>();
  const count = (k: string) => mix.set(k, (mix.get(k) ?? 0) + 1);
  const violations: Violation[] = [];
  const stream = uniqueBucket("TP").toUpperCase();
  const place: LedgerPlace = { name: uniqueBucket("tp"), stream, target: uniqueBucket("tpt") };
  const refPlace: LedgerPlace = { name: uniqueBucket("tpr"), stream, target: uniqueBucket("tpr") };
  const serverKills = versionAtLeast(site.version, "2.10.0");
  const jsm = await jetstreamManager(site.writer, { checkAPI: false });
  const js = jetstream(site.writer);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const events: LedgerEvent[] = [];
  let projector: Projector | undefined;
  const start = () => {
    if (projector) return;
    projector = new Projector(String(site.cacheUrl), place, []);
    count("projector start");
  };
  /** Whether the projector has events left to apply (or a first run to make). */
  const backlog = async () => {
    if (events.length === 0) return false;
    const ci = await jsm.consumers.info(stream, `projection_${place.name}`).catch(() => undefined);
    return ci === undefined || ci.num_pending + ci.num_ack_pending > 0;
  };
  try {
    for (const step of schedule.steps) {
      switch (step.op) {
        case "publish": {
          // The writer connects to the server itself; a killed server comes back first.
          if (site.active.has("kill")) await site.heal();
          for (const e of step.events) {
            events.push(e);
            await js.publish(`${stream}.ev`, JSON.stringify(e), {
              msgID: `${stream}-${events.length}`,
              timeout: 10_000,
            });
          }
          count("publish");
          break;
        }
        case "start":
          start();
          break;
        case "sigkill": {
          start();
          // From the moment it runs its projection (a startup stuck on a fault counts from now).
          await Promise.race([projector!.started, sleep(5_000)]);
          await sleep(step.afterMs);
          const p = projector!;
          const s = await p.stop("SIGKILL");
          projector = undefined;
          if (s.signal !== "SIGKILL") {
            count(`projector had ended (${s.code}): ${lastError(p.out)}`);
            break;
          }
          count("projector kill -9");
          // Did the kill land while it held an event (mid-event, or between write and ack)?
          const ci = await jsm.consumers.info(stream, `projection_${place.name}`).catch(() =>
            undefined
          );
          if (ci && ci.num_ack_pending > 0) count("projector kill -9 holding an event");
          break;
        }
        case "sigkillAt": {
          // Seen on the wire: the kill follows the n-th write within a round trip,
          // mostly between two writes of one event or between its last write and its ack.
          const sub = site.writer.subscribe(`$KV.${place.target}.>`, { max: step.writes });
          await site.writer.flush().catch(() => {}); // the server may be killed: it resubscribes
          const work = site.active.size === 0 && await backlog();
          start();
          const p = projector!;
          let timer: ReturnType<typeof setTimeout> | undefined;
          const seen = (async () => {
            for await (const _ of sub) { /* counting to max */ }
            return true;
          })();
          // No backlog (or none reachable): killed idle, once running (or 1.5 s after).
          const idle = Promise.race([p.started, sleep(5_000)]).then(() =>
            new Promise<false>((r) => timer = setTimeout(() => r(false), work ? 1_500 : 0))
          );
          const hit = await Promise.race([seen, idle, p.child.status.then(() => false)]);
          clearTimeout(timer);
          const s = await p.stop("SIGKILL");
          sub.unsubscribe();
          projector = undefined;
          if (s.signal !== "SIGKILL") {
            count(`projector had ended (${s.code}): ${lastError(p.out)}`);
            break;
          }
          count(hit ? "projector kill -9 after a write" : "projector kill -9 idle");
          break;
        }
        case "sigterm":
          if (projector) {
            await projector.stop("SIGTERM");
            projector = undefined;
            count("projector SIGTERM");
          }
          break;
        case "wait":
          await sleep(step.ms);
          break;
        case "fault":
          if (step.fault === "kill" && !serverKills) {
            count("fault kill (skipped before 2.10)");
            break;
          }
          await site.fault(step.fault, place.target);
          count(`fault ${step.fault}`);
          break;
        case "heal":
          await site.heal();
          break;
      }
    }
    await site.heal();
    if (projector) {
      // One more kill at wherever it is.
      const s = await projector.stop("SIGKILL");
      projector = undefined;
      if (s.signal === "SIGKILL") count("projector kill -9 at the end");
    }
    // The uninterrupted run that finishes the job and, at the same time, the
    // reference: the same events in one uninterrupted run into a second bucket.
    const last = new Projector(String(site.cacheUrl), place, ["--until-caught-up"]);
    const ref = await runProjection(site.writer, ledgerProjection(refPlace), {
      fromStart: true,
      statusIntervalMs: 0,
    });
    let status: Deno.CommandStatus | undefined;
    try {
      [status] = await Promise.all([
        last.ended(CATCH_UP_MS),
        ref.caughtUp({ signal: AbortSignal.timeout(CATCH_UP_MS) }),
      ]);
    } finally {
      await ref.stop();
    }
    if (status === undefined || status.code !== 0) {
      if (status === undefined) await last.stop("SIGKILL");
      violations.push({
        rule: "projection",
        message: `the final run did not catch up and exit 0 (${
          status ? `code ${status.code}` : `still running after ${CATCH_UP_MS} ms`
        }); its last lines:\n    ${last.out.slice(-5).join("\n    ")}`,
      });
      return { violations, mix, ms: Date.now() - t0 };
    }
    const ci = await jsm.consumers.info(stream, `projection_${place.name}`);
    if (ci.ack_floor.stream_seq !== events.length) {
      violations.push({
        rule: "projection",
        message:
          `checkpoint ${ci.ack_floor.stream_seq} after the final run, ${events.length} events`,
      });
    }
    const actual = await dumpBucket(site.writer, place.target);
    const reference = await dumpBucket(site.writer, refPlace.target);
    const folded = await foldLedger(events);
    for (const line of diff("reference run", actual, reference)) {
      violations.push({ rule: "projection", message: line });
    }
    for (const line of diff("in-memory fold", reference, folded)) {
      violations.push({ rule: "projection", message: `reference run: ${line}` });
    }
  } finally {
    if (projector) await projector.stop("SIGKILL");
    await site.heal().catch(() => {});
    for (const b of [place.target, refPlace.target]) {
      await jsm.streams.delete(`KV_${b}`).catch(() => {});
    }
    await jsm.streams.delete(stream).catch(() => {});
  }
  return { violations, mix, ms: Date.now() - t0 };
}

/** Options of {@linkcode tortureProjections}. */
export interface ProjectionTortureOptions {
  seed: number;
  schedules: number;
  budgetMs: number;
  steps?: number[];
  server?: string;
  failFast: boolean;
}

/**
 * The one-line command that replays projection schedule `seed`.
 *
 * @example
 * ```ts ignore
 * projectionReplayCommand(7920, undefined); // "deno task torture --projection --seed 7920 --schedules 1"
 * ```
 */
export function projectionReplayCommand(
  seed: number,
  server: string | undefined,
  steps?: readonly number[],
): string {
  return [
    "deno task torture --projection",
    `--seed ${seed}`,
    "--schedules 1",
    ...(server ? [`--server ${server}`] : []),
    ...(steps ? [`--steps ${steps.join(",")}`] : []),
  ].join(" ");
}

/**
 * Runs projection schedules (schedule i has seed `scheduleSeed(o.seed, i)`)
 * on one server with a proxy in front; `log` gets every line it prints.
 *
 * @example
 * ```ts ignore
 * const r = await tortureProjections({ seed: 1, schedules: 5, budgetMs: 60_000, failFast: false });
 * ```
 */
export function tortureProjections(
  o: ProjectionTortureOptions,
  log: (line: string) => void = console.log,
): Promise<TortureReport> {
  return withWorld(o.server, async (world) => {
    const started = Date.now();
    const mix = new Map<string, number>();
    const failures: Failure[] = [];
    let ran = 0;
    const site = await world.single();
    for (let i = 0; i < o.schedules; i++) {
      if (Date.now() - started > o.budgetMs) break;
      const seed = scheduleSeed(o.seed, i);
      const schedule = generateProjection(seed, o.steps);
      const res = await outcomeOf(() => runProjectionSchedule(site, schedule));
      ran++;
      addMix(mix, res.mix);
      const events = schedule.steps.reduce(
        (n, s) => n + (s.op === "publish" ? s.events.length : 0),
        0,
      );
      log(
        `projection schedule ${i} seed ${seed}: ${schedule.steps.length} steps, ${events} events, ` +
          `${kills(res.mix)} projector kills, ${res.ms} ms: ${
            res.violations.length === 0 ? "ok" : "FAILED"
          }`,
      );
      if (res.violations.length === 0) continue;
      const failure: Failure = {
        seed,
        replay: projectionReplayCommand(seed, o.server, o.steps),
        violations: res.violations,
      };
      failures.push(failure);
      logViolations(log, failure);
      schedule.steps.forEach((s, j) => log(`  ${j}. ${describeProjectionStep(s)}`));
      log(`  replay: ${failure.replay}`);
      if (o.failFast) break;
    }
    const report = { schedules: ran, failures, mix, ms: Date.now() - started };
    return summarize(log, "projection schedules", report);
  });
}
