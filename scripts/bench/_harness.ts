/**
 * Shared benchmark harness: statistics over repetitions, rows with targets,
 * the printed table, the JSON result files, child processes and servers that
 * are always cleaned up.
 *
 * Figures are medians of repetitions with min/max; a ratio compares the
 * kvedge median with the median of a competitor measured in the same run.
 *
 * @module
 */
import { connect } from "@nats-io/transport-node";
import type { NatsConnection } from "@nats-io/nats-core";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { natsServerBinary } from "../../host/nats_binary.ts";
import { type ClusterHandle, startCluster } from "../_cluster.ts";
import { type ServerHandle, startServer } from "../_server.ts";

/** Median, min and max of repeated measurements, plus the raw values. */
export interface Stat {
  /** Median of `values` (mean of the middle two for an even count). */
  median: number;
  /** Smallest value. */
  min: number;
  /** Largest value. */
  max: number;
  /** Every repetition, in the order measured. */
  values: number[];
}

/**
 * Summarises repetitions.
 *
 * @example
 * ```ts
 * import { stat } from "./_harness.ts";
 * console.log(stat([3, 1, 2]).median); // 2
 * ```
 */
export function stat(values: number[]): Stat {
  if (values.length === 0) throw new RangeError("Cannot summarise: no values");
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  return { median, min: sorted[0]!, max: sorted[sorted.length - 1]!, values };
}

/**
 * A percentile of samples (nearest rank), e.g. `percentile(xs, 0.99)`.
 *
 * @example
 * ```ts
 * import { percentile } from "./_harness.ts";
 * console.log(percentile([1, 2, 3, 4], 0.5)); // 2
 * ```
 */
export function percentile(samples: ArrayLike<number>, p: number): number {
  const sorted = Float64Array.from(samples as ArrayLike<number>).sort();
  if (sorted.length === 0) return NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank]!;
}

/** One line of a result table. */
export interface Row {
  /** What is measured, e.g. `"get() hit"`. */
  metric: string;
  /** Unit of the figures, e.g. `"ns/op"`, `"rps"`, `"ms"`. */
  unit: string;
  /** The kvedge figure, or `null` when the row was skipped. */
  kvedge: Stat | null;
  /** Name of the competitor the ratio is taken against. */
  baselineName?: string;
  /** The competitor's figure. */
  baseline?: Stat;
  /** `kvedge.median / baseline.median`. */
  ratio?: number;
  /** The target, in words (`"≤ 1.3×"`, `"≤ 2 ms"`). */
  target?: string;
  /** Whether the target is met; undefined for information rows and skipped rows. */
  pass?: boolean;
  /** Why a row was skipped, or anything a reader must know to read it. */
  note?: string;
}

/** What a scenario hands back. */
export interface ScenarioResult {
  /** Scenario name (file name, JSON name). */
  name: string;
  /** Human title. */
  title: string;
  /** Parameters the figures depend on (sizes, repetitions, durations). */
  params: Record<string, unknown>;
  /** Table rows. */
  rows: Row[];
  /** Extra raw figures (per-repetition details, other competitors). */
  raw?: Record<string, unknown>;
  /** Set when the whole scenario could not run. */
  skipped?: string;
}

/** What every scenario gets. */
export interface BenchContext {
  /** Smoke mode: tiny sizes, few repetitions, seconds in total. */
  quick: boolean;
  /** Repetitions per figure (≥ 5 unless `quick`). */
  reps: number;
  /** Also the slow large sizes (`--big`: the 3M-key point of `scale`). */
  big?: boolean;
  /** Directory the JSON results go to (plots are written next to them). */
  out?: string;
  /** Prints a progress line (stderr, so stdout stays the tables). */
  log(message: string): void;
  /**
   * Figures one scenario hands to a later one of the same run (e.g. the
   * cold 1M bootstrap times that warm start compares with).
   */
  shared: Map<string, unknown>;
}

/** A benchmark scenario. */
export interface Scenario {
  /** Name used on the command line and for `bench/results/<name>.json`. */
  name: string;
  /** One-line description. */
  title: string;
  /** Measures and returns the rows. */
  run(ctx: BenchContext): Promise<ScenarioResult>;
}

// ---- rows -------------------------------------------------------------------

/** Direction of a ratio target: kvedge must be at most (`le`) or at least (`ge`) `limit`× the baseline. */
export type Direction = "le" | "ge";

/**
 * A row comparing kvedge with a competitor against a ratio target.
 *
 * @example
 * ```ts
 * import { ratioRow, stat } from "./_harness.ts";
 * const row = ratioRow("get() hit", "ns/op", stat([110]), "lru-cache", stat([100]), "le", 1.3);
 * console.log(row.pass); // true
 * ```
 */
export function ratioRow(
  metric: string,
  unit: string,
  kvedge: Stat,
  baselineName: string,
  baseline: Stat,
  direction?: Direction,
  limit?: number,
  note?: string,
): Row {
  const ratio = kvedge.median / baseline.median;
  const row: Row = { metric, unit, kvedge, baselineName, baseline, ratio };
  if (direction !== undefined && limit !== undefined) {
    row.target = `${direction === "le" ? "≤" : "≥"} ${limit}×`;
    row.pass = direction === "le" ? ratio <= limit : ratio >= limit;
  }
  if (note) row.note = note;
  return row;
}

/**
 * A row with an absolute target on the kvedge figure (its median).
 *
 * @example
 * ```ts
 * import { absRow, stat } from "./_harness.ts";
 * const row = absRow("p99", "ms", stat([1.5]), "le", 2);
 * console.log(row.target, row.pass); // "≤ 2 ms" true
 * ```
 */
export function absRow(
  metric: string,
  unit: string,
  kvedge: Stat,
  direction: Direction | "eq",
  limit: number,
  extra: Partial<Row> = {},
): Row {
  const v = kvedge.median;
  const sign = direction === "le" ? "≤" : direction === "ge" ? "≥" : "=";
  const pass = direction === "le" ? v <= limit : direction === "ge" ? v >= limit : v === limit;
  return { metric, unit, kvedge, ...extra, target: `${sign} ${limit} ${unit}`, pass };
}

/** A row without a target (reported for context). */
export function infoRow(metric: string, unit: string, kvedge: Stat, extra: Partial<Row> = {}): Row {
  const row: Row = { metric, unit, kvedge, ...extra };
  if (row.baseline && row.ratio === undefined) row.ratio = kvedge.median / row.baseline.median;
  return row;
}

/** A row that could not be measured, and why. */
export function skippedRow(metric: string, reason: string): Row {
  return { metric, unit: "", kvedge: null, note: `skipped: ${reason}` };
}

// ---- formatting ---------------------------------------------------------------

/** Formats a number with about three significant digits. */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) && Math.abs(n) < 100_000) return String(n);
  const a = Math.abs(n);
  if (a >= 100_000) return Math.round(n).toLocaleString("en-US");
  if (a >= 100) return n.toFixed(0);
  if (a >= 10) return n.toFixed(1);
  if (a >= 1) return n.toFixed(2);
  if (a === 0) return "0";
  return n.toPrecision(2);
}

function fmtStat(s: Stat | undefined | null, unit: string): string {
  if (!s) return "—";
  if (s.values.length === 1) return `${fmt(s.median)} ${unit}`;
  return `${fmt(s.median)} ${unit} (${fmt(s.min)}–${fmt(s.max)})`;
}

function mark(pass: boolean | undefined): string {
  return pass === undefined ? "" : pass ? "✓" : "✗";
}

const HEADER =
  "| scenario | metric | kvedge median (min–max) | measured against | ratio | target | |";
const RULE = "|---|---|---|---|---|---|---|";

function rowLine(scenario: string, r: Row): string {
  const against = r.baselineName
    ? `${r.baselineName}: ${fmtStat(r.baseline, r.unit)}`
    : r.note && !r.kvedge
    ? r.note
    : "";
  const kv = r.kvedge ? fmtStat(r.kvedge, r.unit) : "—";
  const ratio = r.ratio === undefined ? "" : `${r.ratio.toFixed(2)}×`;
  const note = r.note && r.kvedge ? ` (${r.note})` : "";
  return `| ${scenario} | ${r.metric}${note} | ${kv} | ${against} | ${ratio} | ${
    r.target ?? ""
  } | ${mark(r.pass)} |`;
}

/** The markdown table of some results. */
export function table(results: ScenarioResult[]): string {
  const lines = [HEADER, RULE];
  for (const res of results) {
    if (res.skipped) {
      lines.push(`| ${res.name} | — | — | skipped: ${res.skipped} | | | |`);
      continue;
    }
    for (const r of res.rows) lines.push(rowLine(res.name, r));
  }
  return lines.join("\n");
}

// ---- result files -----------------------------------------------------------------

async function commandOutput(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    return text.trim().split("\n")[0];
  } catch {
    return undefined;
  }
}

function cpuModel(): string | undefined {
  try {
    const info = Deno.readTextFileSync("/proc/cpuinfo");
    return /^model name\s*:\s*(.+)$/m.exec(info)?.[1];
  } catch {
    return undefined;
  }
}

function npmVersions(): Record<string, string> {
  const wanted = ["@nats-io/kv", "@nats-io/jetstream", "@nats-io/transport-node", "lru-cache"];
  const out: Record<string, string> = {};
  try {
    const lock = JSON.parse(Deno.readTextFileSync(new URL("../../deno.lock", import.meta.url)));
    for (const id of Object.keys(lock.npm ?? {})) {
      const at = id.lastIndexOf("@");
      const name = id.slice(0, at);
      if (wanted.includes(name) || ["hono", "ioredis"].includes(name)) {
        out[name] = id.slice(at + 1).split("_")[0]!;
      }
    }
  } catch {
    // No lock file: versions unknown.
  }
  return out;
}

/** Machine, runtime and dependency versions, recorded with every result. */
export async function machineInfo(): Promise<Record<string, unknown>> {
  const mem = Deno.systemMemoryInfo();
  return {
    date: new Date().toISOString(),
    hostname: Deno.hostname(),
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    arch: Deno.build.arch,
    cpus: navigator.hardwareConcurrency,
    cpuModel: cpuModel(),
    memoryTotalMB: Math.round(mem.total / 2 ** 20),
    loadavg: Deno.loadavg(),
    deno: Deno.version,
    // The binary the scenarios start (KVEDGE_NATS_SERVER, .tools/bin, Debian's), not PATH's.
    natsServer: await commandOutput(natsServerBinary(), ["--version"]),
    natsServerBinary: natsServerBinary(),
    wrk: await commandOutput("wrk", ["--version"]),
    gitCommit: await commandOutput("git", ["rev-parse", "--short", "HEAD"]),
    npm: npmVersions(),
  };
}

/** Writes `<dir>/<name>.json` with machine info, parameters, rows and raw figures. */
export async function writeResult(
  dir: string,
  result: ScenarioResult,
  machine: Record<string, unknown>,
  command: string,
): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  const path = `${dir}/${result.name}.json`;
  const body = { command, machine, ...result };
  await Deno.writeTextFile(path, JSON.stringify(body, null, 2) + "\n");
  return path;
}

// ---- processes -------------------------------------------------------------------

const children = new Set<Deno.ChildProcess>();
const cleanups = new Set<() => Promise<void>>();

// Whatever happens (failure, Ctrl-C), no child or server outlives the bench.
globalThis.addEventListener("unload", () => {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
});

/** Runs every registered cleanup (servers, children); used on signals and at the end. */
export async function cleanupAll(): Promise<void> {
  for (const child of children) {
    try {
      child.kill("SIGKILL");
    } catch {
      // Already gone.
    }
  }
  for (const fn of [...cleanups]) {
    cleanups.delete(fn);
    await fn().catch(() => {});
  }
}

/** A single nats-server on free loopback ports, stopped (and its dir removed) by `stop()`. */
export async function benchServer(): Promise<ServerHandle> {
  const s = await startServer();
  const stop = () => s.stop();
  cleanups.add(stop);
  const original = s.stop.bind(s);
  return Object.assign(s, {
    stop: async () => {
      cleanups.delete(stop);
      await original();
    },
  });
}

/** A 3-node JetStream cluster on free loopback ports. */
export async function benchCluster(): Promise<ClusterHandle> {
  const c = await startCluster({ size: 3 });
  const stop = () => c.stop();
  cleanups.add(stop);
  const original = c.stop.bind(c);
  return Object.assign(c, {
    stop: async () => {
      cleanups.delete(stop);
      await original();
    },
  });
}

/** A spawned process tracked for cleanup. */
export interface Spawned {
  /** The process. */
  child: Deno.ChildProcess;
  /** The last few KB the process wrote to stderr (for error messages). */
  stderrTail(): string;
  /** Kills it (SIGTERM, then SIGKILL after 3 s) and waits for its exit. Idempotent. */
  stop(): Promise<void>;
}

/**
 * Spawns a long-running process (a server under test). Its stdout is
 * discarded; its stderr is drained continuously (a full pipe would block
 * it) and its tail kept for error messages.
 */
export function spawn(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string> } = {},
): Spawned {
  const child = new Deno.Command(cmd, {
    args,
    env: options.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  children.add(child);
  let tail = "";
  const dec = new TextDecoder();
  const drained = (async () => {
    for await (const chunk of child.stderr) {
      tail = (tail + dec.decode(chunk, { stream: true })).slice(-4096);
    }
  })().catch(() => {});
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      const timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // Already exited.
        }
      }, 3_000);
      await child.status;
      clearTimeout(timer);
      await drained;
      children.delete(child);
    })();
    return stopping;
  };
  return { child, stop, stderrTail: () => tail };
}

/** Path of the deno executable running the bench. */
export const DENO = Deno.execPath();
/** Repository root. */
export const ROOT = new URL("../../", import.meta.url).pathname.replace(/\/$/, "");

/**
 * Runs `deno run -A [flags] <module> <args>` to completion and returns the
 * JSON object printed on the last line of its stdout. Used for measurements
 * that need a fresh process (memory, RSS, JIT isolation).
 */
export async function runChild<T>(
  module: string,
  args: string[],
  options: { v8Flags?: string[]; env?: Record<string, string>; denoFlags?: string[] } = {},
): Promise<T> {
  const flags = ["run", "-A", "--config", `${ROOT}/deno.json`, ...(options.denoFlags ?? [])];
  if (options.v8Flags?.length) flags.push(`--v8-flags=${options.v8Flags.join(",")}`);
  const child = new Deno.Command(DENO, {
    args: [...flags, module, ...args],
    env: { NO_COLOR: "1", ...options.env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  children.add(child);
  try {
    const out = await child.output();
    const stdout = new TextDecoder().decode(out.stdout).trim();
    if (!out.success) {
      const stderr = new TextDecoder().decode(out.stderr).trim();
      throw new Error(
        `bench child ${module} ${args.join(" ")} failed (${out.code}): ${
          stderr.length > 3000 ? `${stderr.slice(0, 1500)} … ${stderr.slice(-1500)}` : stderr
        }`,
      );
    }
    const last = stdout.split("\n").pop() ?? "";
    return JSON.parse(last) as T;
  } finally {
    children.delete(child);
  }
}

/** Prints a child's result as the last stdout line (read by {@link runChild}). */
export function emit(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** Parses `--name value` style arguments of a child. */
export function childArgs(args: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if (a.startsWith("--")) {
      const next = args[i + 1];
      if (next !== undefined && !next.startsWith("--")) {
        out[a.slice(2)] = next;
        i++;
      } else {
        out[a.slice(2)] = "true";
      }
    }
  }
  return out;
}

// ---- helpers ------------------------------------------------------------------------

/** A fresh bucket name for the bench. */
export function benchBucket(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(4));
  return `${prefix}_${Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("")}`;
}

/** Fisher–Yates shuffle in place with a seeded xorshift, so runs are reproducible. */
export function shuffle<T>(items: T[], seed = 0x2545f491): T[] {
  let x = seed | 0;
  for (let i = items.length - 1; i > 0; i--) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    const j = (x >>> 0) % (i + 1);
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
  return items;
}

/** Waits `ms` milliseconds (pacing only, never to wait for a condition). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `fn` until it is truthy or `timeoutMs` passes. */
export async function until(
  fn: () => boolean | Promise<boolean>,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await fn())) {
    if (Date.now() > deadline) {
      throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await sleep(10);
  }
}

/** Peak resident set size of this process (VmHWM), in bytes; falls back to current RSS. */
export function peakRss(): number {
  try {
    const status = Deno.readTextFileSync("/proc/self/status");
    const kb = /^VmHWM:\s+(\d+)\s+kB/m.exec(status)?.[1];
    if (kb) return Number(kb) * 1024;
  } catch {
    // Not Linux.
  }
  return Deno.memoryUsage().rss;
}

/**
 * Creates `bucket` and loads `count` keys fast: core publishes on the KV
 * subjects (the stream captures them) with a flush every 5 000, then waits
 * until the stream holds them all. Only for setting up a bench's data; the
 * seed scenario measures acknowledged puts.
 */
export async function fillBucket(
  nc: NatsConnection,
  bucket: string,
  count: number,
  key: (i: number) => string,
  value: (i: number) => Uint8Array,
  options: { replicas?: number; history?: number } = {},
): Promise<void> {
  await new Kvm(nc).create(bucket, {
    history: options.history ?? 1,
    replicas: options.replicas ?? 1,
  });
  const subject = `$KV.${bucket}.`;
  for (let i = 0; i < count; i++) {
    nc.publish(subject + key(i), value(i));
    if (i % 5_000 === 4_999) await nc.flush();
  }
  await nc.flush();
  const jsm = await jetstreamManager(nc);
  await until(
    async () => {
      const info = await jsm.streams.info(`KV_${bucket}`);
      return info.state.messages >= count;
    },
    60_000 + count / 10,
    `${count} keys in bucket ${bucket}`,
  );
}

/** Connects a raw nats.js client (no reconnect games: the bench owns the servers). */
export function connectRaw(servers: string): Promise<NatsConnection> {
  return connect({ servers: servers.split(","), maxReconnectAttempts: 10 });
}
