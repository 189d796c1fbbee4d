/**
 * The core loop of `deno task seed`, callable in-process (the benchmark
 * compares it with a raw pipelined `kv.put` loop of the same window).
 *
 * Records are validated (key grammar, optional schema, size) and written with
 * up to `window` puts in flight; the loop awaits only when the window is full.
 * It tracks the last input line below which every record is acknowledged, so a
 * run that stops can be resumed with `--from-line <that + 1>`.
 *
 * @module
 */
import type { KV } from "@nats-io/kv";
import { JetStreamApiError } from "@nats-io/jetstream";
import { keyProblem } from "../../src/keys.ts";
import type { SeedRecord } from "./record.ts";
import { WriteWindow } from "./window.ts";

/**
 * Default number of puts in flight.
 *
 * @example
 * ```ts
 * import { DEFAULT_WINDOW } from "./loop.ts";
 * console.log(DEFAULT_WINDOW); // 256
 * ```
 */
export const DEFAULT_WINDOW = 256;

/** What to do with a bad record. */
export type OnError = "skip" | "fail";

/** A snapshot of a running seed, for progress display. */
export interface SeedProgress {
  /** Records acknowledged by the server (validated, in a dry run). */
  written: number;
  /** Bad records so far. */
  skipped: number;
  /** Last input line read. */
  lastLine: number;
  /** Time since the start, in milliseconds. */
  elapsedMs: number;
}

/** Options of {@link seed}. */
export interface SeedOptions {
  /** The bucket to write to; only `put` is used. Required unless `dryRun`. */
  kv?: Pick<KV, "put">;
  /** Batches of records, e.g. from `readRecords()` or `generateRecords()`. */
  records: AsyncIterable<SeedRecord[]> | Iterable<SeedRecord[]>;
  /** Most puts in flight at once; a positive integer. Default {@link DEFAULT_WINDOW}. */
  window?: number;
  /**
   * `"skip"` (default) reports a bad record and goes on; `"fail"` stops at the
   * first one, after the writes already in flight have settled.
   */
  onError?: OnError;
  /** Validate and count only; write nothing (no `kv` needed). Default false. */
  dryRun?: boolean;
  /** The first line the records start from (they skip earlier lines themselves). Default 1. */
  fromLine?: number;
  /** Checks a value; returns the problem, or `undefined` if it is fine. */
  validate?: (value: unknown) => string | undefined;
  /** Largest encoded value accepted, in bytes; larger ones are bad records. Default unlimited. */
  maxValueBytes?: number;
  /** Called for every bad record with its line and the problem. */
  onBadRecord?: (line: number, problem: string) => void;
  /** Called every `progressIntervalMs` while running. */
  onProgress?: (progress: SeedProgress) => void;
  /** Period of `onProgress`, in milliseconds. Default 250. */
  progressIntervalMs?: number;
  /** Aborting stops reading; in-flight writes settle and the result says where to resume. */
  signal?: AbortSignal;
}

/** Why a seed stopped before the end of its input. */
export interface SeedStop {
  /** The line that could not be handled. */
  line: number;
  /** What went wrong. */
  reason: string;
}

/** The outcome of {@link seed}. */
export interface SeedResult {
  /** Records acknowledged (validated, in a dry run). */
  written: number;
  /** Bad records skipped (or the one that stopped a `fail` run). */
  skipped: number;
  /** Last input line read. */
  lastLine: number;
  /**
   * Every line up to this one is fully handled (written and acknowledged, or
   * skipped); resume a stopped run with `fromLine: lastAckedLine + 1`.
   */
  lastAckedLine: number;
  /** Wall time, in milliseconds. */
  elapsedMs: number;
  /** `written` per second of `elapsedMs`. */
  keysPerSecond: number;
  /** Whether nothing was written on purpose. */
  dryRun: boolean;
  /** Set when the run stopped early (bad record with `fail`, write failure, abort). */
  stopped?: SeedStop;
}

/**
 * Whether a failed put is about that one record (the server refused the
 * message: too large, limits…) rather than about the connection or server.
 */
function isRecordRejection(err: unknown): boolean {
  return err instanceof JetStreamApiError;
}

/**
 * Seeds records into a bucket with a bounded window of pipelined puts.
 * Values are stored JSON-encoded unless a record carries pre-encoded bytes.
 *
 * @example
 * ```ts ignore
 * import { Kvm } from "@nats-io/kv";
 * import { seed } from "./loop.ts";
 * import { generateRecords } from "./generate.ts";
 * const kv = await new Kvm(nc).open("demo");
 * const r = await seed({ kv, records: generateRecords({ count: 10_000 }) });
 * console.log(`${r.written} keys at ${Math.round(r.keysPerSecond)} keys/s`);
 * ```
 */
export async function seed(options: SeedOptions): Promise<SeedResult> {
  const o = resolveOptions(options);
  const start = performance.now();
  let written = 0;
  let skipped = 0;
  let lastLine = o.fromLine - 1;
  let handledLine = o.fromLine - 1; // every line up to here is done, if nothing is in flight
  let stopped: SeedStop | undefined;
  const ring = new WriteWindow(o.window);
  const stop = (line: number, reason: string) => {
    if (!stopped || line < stopped.line) stopped = { line, reason };
  };
  const acked = (seq: number) => {
    written++;
    ring.settle(seq, true);
  };
  const failed = (seq: number, line: number, err: unknown) => {
    const message = err instanceof Error ? err.message : String(err);
    if (isRecordRejection(err)) {
      skipped++;
      o.onBad?.(line, `the server refused the write: ${message}`);
      if (o.failFast) stop(line, `the server refused the write: ${message}`);
      ring.settle(seq, !o.failFast);
    } else {
      stop(line, `write failed: ${message}`);
      ring.settle(seq, false);
    }
  };
  const timer = progressTimer(
    options,
    () => ({ written, skipped, lastLine, elapsedMs: performance.now() - start }),
  );
  try {
    outer: for await (const batch of options.records) {
      if (o.signal?.aborted) {
        stop(lastLine + 1, "interrupted");
        break;
      }
      for (const r of batch) {
        const line = r.line;
        lastLine = line;
        const { problem, bytes } = checkRecord(r, o);
        if (problem !== undefined) {
          skipped++;
          o.onBad?.(line, problem);
          if (o.failFast) {
            stop(line, problem);
            break outer;
          }
        } else if (o.dryRun) {
          written++;
        } else {
          while (ring.full && stopped === undefined) await ring.next();
          if (stopped !== undefined) break outer;
          const seq = ring.begin(line);
          o.kv!.put(r.key, bytes!).then(() => acked(seq), (err) => failed(seq, line, err));
        }
        handledLine = line;
      }
    }
  } finally {
    while (ring.inFlight > 0) await ring.next();
    if (timer !== undefined) clearInterval(timer);
  }
  const elapsedMs = performance.now() - start;
  return {
    written,
    skipped,
    lastLine,
    lastAckedLine: safeLine(ring, { handledLine, lastLine, stopped }),
    elapsedMs,
    keysPerSecond: elapsedMs > 0 ? (written * 1000) / elapsedMs : 0,
    dryRun: o.dryRun,
    ...(stopped ? { stopped } : {}),
  };
}

/** The options of a seed with their defaults, checked. */
function resolveOptions(options: SeedOptions) {
  const window = options.window ?? DEFAULT_WINDOW;
  if (!Number.isInteger(window) || window < 1) {
    throw new RangeError(`Cannot seed: "window" must be a positive integer, got ${window}`);
  }
  const dryRun = options.dryRun ?? false;
  if (!dryRun && !options.kv) {
    throw new TypeError('Cannot seed: "kv" is required unless "dryRun" is set');
  }
  return {
    window,
    dryRun,
    kv: options.kv,
    failFast: (options.onError ?? "skip") === "fail",
    validate: options.validate,
    maxValueBytes: options.maxValueBytes ?? Infinity,
    onBad: options.onBadRecord,
    signal: options.signal,
    fromLine: options.fromLine ?? 1,
  };
}

const encoder = new TextEncoder();

/** What is wrong with record `r` (key, schema, size), if anything, and its encoded value. */
function checkRecord(
  r: SeedRecord,
  check: { validate: SeedOptions["validate"]; maxValueBytes: number },
): { problem: string | undefined; bytes: Uint8Array | undefined } {
  let problem = r.problem;
  let bytes = r.bytes;
  if (problem === undefined) {
    problem = keyProblem(r.key);
    if (problem !== undefined) {
      problem = `bad key ${JSON.stringify(r.key.slice(0, 64))}: ${problem}`;
    } else if (check.validate !== undefined && bytes === undefined) {
      problem = check.validate(r.value);
    }
    if (problem === undefined) {
      bytes ??= encoder.encode(JSON.stringify(r.value));
      if (bytes.length > check.maxValueBytes) {
        problem = `value is ${bytes.length} bytes, more than the limit of ${check.maxValueBytes}`;
      }
    }
  }
  return { problem, bytes };
}

/** Calls `onProgress` every `progressIntervalMs` with `now()`, if asked for (an unref'd timer). */
function progressTimer(
  options: SeedOptions,
  now: () => SeedProgress,
): ReturnType<typeof setInterval> | undefined {
  if (!options.onProgress) return undefined;
  const report = options.onProgress;
  const t = setInterval(() => report(now()), options.progressIntervalMs ?? 250);
  Deno.unrefTimer(t);
  return t;
}

/**
 * The last line below which everything is handled: the oldest unacknowledged
 * write bounds it; with none left, the last line handled (or the one before
 * the record that stopped the run) is.
 */
function safeLine(
  ring: WriteWindow,
  at: { handledLine: number; lastLine: number; stopped: SeedStop | undefined },
): number {
  const pending = ring.oldestPendingLine();
  if (pending !== undefined) return pending - 1;
  if (at.stopped !== undefined) return Math.min(at.handledLine, at.stopped.line - 1);
  return Math.max(at.handledLine, at.lastLine);
}
