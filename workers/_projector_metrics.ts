/**
 * The projector's HTTP endpoint on 127.0.0.1: `/metrics` (Prometheus text,
 * one series per projection) and `/healthz` (200 while every projection runs
 * or retries, else 503).
 *
 * @module
 */
import type { ProjectionRunner, ProjectionStatus } from "../projection.ts";
import { type MetricFamily, PROMETHEUS_CONTENT_TYPE, renderMetrics } from "../src/prometheus.ts";
import type { JsonLogger } from "./_log.ts";

const METRICS: [keyof ProjectionStatus, string, "gauge" | "counter", string][] = [
  ["lag", "kvedge_projection_lag", "gauge", "Matching source events not applied yet."],
  ["checkpoint", "kvedge_projection_checkpoint", "gauge", "Source sequence of the checkpoint."],
  ["sourceSeq", "kvedge_projection_source_seq", "gauge", "Last sequence of the source stream."],
  ["events", "kvedge_projection_events_total", "counter", "Source events processed."],
  ["applied", "kvedge_projection_writes_applied_total", "counter", "Target writes made."],
  [
    "skipped",
    "kvedge_projection_writes_skipped_total",
    "counter",
    "Target writes skipped: already applied (fenced by source sequence).",
  ],
  ["ignored", "kvedge_projection_ignored_total", "counter", "Events map returned nothing for."],
  ["conflicts", "kvedge_projection_conflicts_total", "counter", "Compare-and-sets lost."],
  ["retries", "kvedge_projection_retries_total", "counter", "Attempts repeated after a failure."],
  ["mapErrors", "kvedge_projection_map_errors_total", "counter", "Events whose map failed."],
];

/**
 * The projector's `/metrics` text: one sample per projection of each series.
 *
 * @example
 * ```ts ignore
 * import { metricsText } from "./_projector_metrics.ts";
 * console.log(metricsText([runner.status()]));
 * ```
 */
export function metricsText(statuses: ProjectionStatus[]): string {
  const labels = (s: ProjectionStatus) => [["projection", s.name]] as const;
  const families: MetricFamily[] = METRICS.map(([field, name, type, help]) => ({
    name,
    type,
    help,
    samples: statuses.map((s) => ({ labels: labels(s), value: Number(s[field]) })),
  }));
  families.push({
    name: "kvedge_projection_up",
    type: "gauge",
    help: "1 while the projection runs (or retries), 0 otherwise.",
    samples: statuses.map((s) => ({
      labels: labels(s),
      value: s.state === "running" || s.state === "retrying" ? 1 : 0,
    })),
  });
  return renderMetrics(families);
}

/** Serves `/metrics` and `/healthz` for `runners` on 127.0.0.1:`port`; resolves once listening. */
export async function serveMetrics(
  port: number,
  options: { runners: ProjectionRunner[]; log: JsonLogger["log"] },
): Promise<Deno.HttpServer> {
  const { runners, log } = options;
  const listening = Promise.withResolvers<void>();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) => {
      log("info", "metrics listening", { url: `http://127.0.0.1:${port}/metrics` });
      listening.resolve();
    },
  }, (req) => {
    const path = new URL(req.url).pathname;
    const statuses = runners.map((r) => r.status());
    if (path === "/metrics") {
      return new Response(metricsText(statuses), {
        headers: { "content-type": PROMETHEUS_CONTENT_TYPE },
      });
    }
    if (path === "/healthz") {
      const ok = statuses.every((s) => s.state === "running" || s.state === "retrying");
      return Response.json({ ok, projections: statuses }, { status: ok ? 200 : 503 });
    }
    return new Response("not found\n", { status: 404 });
  });
  await listening.promise;
  return server;
}
