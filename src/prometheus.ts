/**
 * The Prometheus text exposition format (0.0.4), once: metric family
 * headers, label escaping and sample values. `src/http/metrics.ts` (the edge)
 * and `workers/projector.ts` render with it.
 *
 * @module
 */

/** Kinds of metric families kvedge exposes. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Content type of the exposition text. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** A label value escaped for the exposition format (backslash, quote, newline). */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** A sample value as the format spells it (`NaN`, `+Inf`, `-Inf`). */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** The `# HELP` and `# TYPE` lines that open a metric family. */
export function familyHeader(name: string, type: MetricType, help: string): [string, string] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}
