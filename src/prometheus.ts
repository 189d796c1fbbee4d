/**
 * The Prometheus text exposition format (0.0.4), once: {@link renderMetrics}
 * writes metric families (headers, samples, label escaping, values). Every
 * `/metrics` renders with it: `src/http/metrics.ts` (the edge) and
 * `workers/_projector_metrics.ts` (the projector) only say which families
 * and samples there are.
 *
 * @module
 */

/** Kinds of metric families kvedge exposes. */
export type MetricType = "counter" | "gauge" | "histogram";

/** Content type of the exposition text. */
export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/**
 * A label value escaped for the exposition format (backslash, quote, newline).
 *
 * @example
 * ```ts
 * import { escapeLabel } from "./prometheus.ts";
 * console.log(escapeLabel('say "hi"')); // say \"hi\"
 * ```
 */
export function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/**
 * A sample value as the format spells it (`NaN`, `+Inf`, `-Inf`).
 *
 * @example
 * ```ts
 * import { formatValue } from "./prometheus.ts";
 * console.log(formatValue(Infinity)); // "+Inf"
 * ```
 */
export function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}

/** The `# HELP` and `# TYPE` lines that open a metric family. */
function familyHeader({ name, type, help }: MetricFamily): [string, string] {
  return [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`];
}

/** Label names and values of a sample, in the order written. */
export type Labels = readonly (readonly [name: string, value: string | number])[];

/** One sample of a family. */
export interface Sample {
  /** Appended to the family name: `_bucket`, `_sum`, `_count` for a histogram. Default none. */
  suffix?: string;
  /** Its labels; values are escaped here. Default none. */
  labels?: Labels;
  /** Its value. */
  value: number;
}

/** A metric family: its name, type, help text and samples (none is fine: the header stays). */
export interface MetricFamily {
  /** Family name, e.g. `kvedge_cache_hits_total`. */
  name: string;
  /** Its type. */
  type: MetricType;
  /** One line of help. */
  help: string;
  /** Its samples, read once at render time. */
  samples: Iterable<Sample>;
}

/**
 * The exposition text of `families`: each family's `# HELP` and `# TYPE`
 * lines, then one line per sample, the whole ending with a newline.
 *
 * @example
 * ```ts
 * import { renderMetrics } from "./prometheus.ts";
 * const text = renderMetrics([{
 *   name: "jobs_total",
 *   type: "counter",
 *   help: "Jobs done.",
 *   samples: [{ labels: [["queue", "a"]], value: 3 }],
 * }]);
 * console.log(text); // # HELP jobs_total Jobs done.\n# TYPE jobs_total counter\njobs_total{queue="a"} 3\n
 * ```
 */
export function renderMetrics(families: Iterable<MetricFamily>): string {
  const out: string[] = [];
  for (const f of families) {
    out.push(...familyHeader(f));
    for (const s of f.samples) {
      const name = s.suffix === undefined ? f.name : f.name + s.suffix;
      out.push(`${name}${labelSet(s.labels)} ${formatValue(s.value)}`);
    }
  }
  return out.join("\n") + "\n";
}

/** `{a="x",b="y"}`, or nothing without labels. */
function labelSet(labels: Labels | undefined): string {
  if (labels === undefined || labels.length === 0) return "";
  return `{${labels.map(([k, v]) => `${k}="${escapeLabel(String(v))}"`).join(",")}}`;
}
