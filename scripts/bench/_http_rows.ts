/**
 * The rows of the HTTP bench's table (`http.ts`), from the figures of every
 * variant: throughput against each baseline, the server's CPU and memory,
 * two isolates against one, and latency.
 *
 * @module
 */
import { absRow, infoRow, ratioRow, type Row, stat } from "./_harness.ts";
import type { Variant } from "./_http_servers.ts";

/** The figures of one variant, one entry per run. */
export interface VariantFigures {
  rps: number[];
  p50: number[];
  p99: number[];
  errors: number[];
  /** The server's CPU per request, in µs. */
  cpuUs: number[];
  /** The server's resident memory after a run, in MB. */
  rssMb: number[];
}

/** Every variant's figures (the variants run: Hono + ioredis only with Redis). */
export type HttpFigures = Record<Variant, VariantFigures>;

/** The servers run on two isolates, and the one-isolate server each is compared with. */
const TWO_ISOLATES = [
  ["edge_w2", "edge", "kvedge"],
  ["bare_w2", "bare", "bare Deno.serve + Map"],
  ["bare_headers_w2", "bare_headers", "bare, six headers"],
] as const;

/** The table: `redis` says whether the Hono + ioredis variant ran. */
export function httpRows(fig: HttpFigures, redis: boolean): Row[] {
  return [...throughputRows(fig, redis), ...isolateRows(fig), ...latencyRows(fig, redis)];
}

/** kvedge's throughput and CPU per request against the one-isolate baselines. */
function throughputRows(fig: HttpFigures, redis: boolean): Row[] {
  const rows: Row[] = [
    ratioRow(
      "GET hit throughput",
      "rps",
      stat(fig.edge.rps),
      "bare Deno.serve + Map",
      stat(fig.bare.rps),
      "ge",
      0.85,
    ),
  ];
  rows.push(
    ratioRow(
      "GET hit throughput",
      "rps",
      stat(fig.edge.rps),
      "bare Deno.serve + Map, kvedge's six headers",
      stat(fig.bare_headers.rps),
      "ge",
      0.95,
    ),
    infoRow("GET hit throughput", "rps", stat(fig.edge.rps), {
      baselineName: "bare, six headers, reads If-None-Match",
      baseline: stat(fig.bare_headers_inm.rps),
      note: "info: what reading a request header costs",
    }),
  );
  if (redis) {
    rows.push(
      ratioRow(
        "GET hit throughput",
        "rps",
        stat(fig.edge.rps),
        "Hono + ioredis cache-aside",
        stat(fig.hono_redis.rps),
        "ge",
        1.2,
      ),
    );
  } else {
    rows.push({
      metric: "GET hit throughput vs Hono + ioredis",
      unit: "rps",
      kvedge: null,
      note: "skipped: Redis is not reachable on 127.0.0.1:6379",
    });
  }
  if (fig.edge.cpuUs.length > 0) {
    // The server's own CPU per request: the figure other jobs on the machine disturb least.
    for (
      const [v, name] of [["bare", "bare Deno.serve + Map"], [
        "bare_headers",
        "bare, six headers",
      ]] as const
    ) {
      rows.push(
        infoRow("server CPU per GET hit", "µs", stat(fig.edge.cpuUs), {
          baselineName: name,
          baseline: stat(fig[v].cpuUs),
          note: "info: CPU time of the server process / requests; lower is better",
        }),
      );
    }
  }
  return rows;
}

/** Two isolates against one, and kvedge on two against the bare servers on two. */
function isolateRows(fig: HttpFigures): Row[] {
  const rows: Row[] = [];
  // More than one core: each server on two isolates against itself on one,
  // and kvedge on two against the bare servers on two.
  for (const [two, one, name] of TWO_ISOLATES) {
    rows.push(
      infoRow("GET hit throughput, 2 isolates vs 1", "rps", stat(fig[two].rps), {
        baselineName: `${name}, 1 isolate`,
        baseline: stat(fig[one].rps),
        note: `info: ${name} on 2 isolates (KVEDGE_WORKERS=2 / deno serve --parallel)`,
      }),
    );
  }
  for (
    const [v, name] of [["bare_w2", "bare, 2 isolates"], [
      "bare_headers_w2",
      "bare, six headers, 2 isolates",
    ]] as const
  ) {
    rows.push(
      infoRow("GET hit throughput, kvedge on 2 isolates", "rps", stat(fig.edge_w2.rps), {
        baselineName: name,
        baseline: stat(fig[v].rps),
        note: "info: both on 2 isolates",
      }),
    );
  }
  if (fig.edge_w2.cpuUs.length > 0) {
    rows.push(
      infoRow("server CPU per GET hit, 2 isolates", "µs", stat(fig.edge_w2.cpuUs), {
        baselineName: "bare, six headers, 2 isolates",
        baseline: stat(fig.bare_headers_w2.cpuUs),
        note: "info: CPU time of the server process (all isolates) / requests",
      }),
      infoRow("server CPU per GET hit, 2 isolates vs 1", "µs", stat(fig.edge_w2.cpuUs), {
        baselineName: "kvedge, 1 isolate",
        baseline: stat(fig.edge.cpuUs),
        note: "info",
      }),
    );
  }
  if (fig.edge.rssMb.length > 0) {
    for (const [two, one, name] of TWO_ISOLATES) {
      rows.push(
        infoRow("server RSS after a run, 2 isolates vs 1", "MB", stat(fig[two].rssMb), {
          baselineName: `${name}, 1 isolate`,
          baseline: stat(fig[one].rssMb),
          note: `info: ${name}, whole process (one cache per isolate for kvedge)`,
        }),
      );
    }
  }
  return rows;
}

/** Latency against the baselines, and wrk's errors if there were any. */
function latencyRows(fig: HttpFigures, redis: boolean): Row[] {
  const rows: Row[] = [];
  rows.push(
    infoRow("GET hit p99 latency", "ms", stat(fig.edge.p99), {
      baselineName: "bare Deno.serve + Map",
      baseline: stat(fig.bare.p99),
      note: "info",
    }),
  );
  if (redis) {
    rows.push(
      infoRow("GET hit p99 latency", "ms", stat(fig.edge.p99), {
        baselineName: "Hono + ioredis cache-aside",
        baseline: stat(fig.hono_redis.p99),
        note: "info",
      }),
    );
  }
  rows.push(
    infoRow("GET hit p50 latency", "ms", stat(fig.edge.p50), {
      baselineName: "bare Deno.serve + Map",
      baseline: stat(fig.bare.p50),
      note: "info",
    }),
  );
  if (Object.values(fig).some((f) => f.errors.some((e) => e > 0))) {
    rows.push(absRow("wrk errors (non-2xx, socket)", "errors", stat(fig.edge.errors), "eq", 0));
  }

  return rows;
}
