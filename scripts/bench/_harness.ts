/**
 * The vocabulary of the benchmarks: statistics over repetitions, a scenario
 * and what it gets and returns, and result rows with their targets. The
 * printed table is in `_table.ts`, the JSON result files in `_results.ts`,
 * child processes and servers in `_processes.ts`, and small shared helpers in
 * `_helpers.ts`.
 *
 * Figures are medians of repetitions with min/max; a ratio compares the
 * kvedge median with the median of a competitor measured in the same run.
 *
 * @module
 */

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
  /** `--keys`: the scale scenario measures its keys axis (only it, without `--edges`), at these sizes. */
  keys?: number[];
  /** Only these edge counts of `scale`'s edges axis, and not its keys axis unless `--keys` is given (`--edges 1000`). */
  edges?: number[];
  /** History of `scale`'s edges bucket (`--history N`; default 1, as a KV bucket's). */
  history?: number;
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
