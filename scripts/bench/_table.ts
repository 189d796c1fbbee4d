/**
 * The benchmark results as the printed Markdown table, one line per row.
 *
 * @module
 */
import type { Row, ScenarioResult, Stat } from "./_harness.ts";

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
