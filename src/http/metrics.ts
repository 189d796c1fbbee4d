/**
 * The facade's Prometheus metrics: its HTTP counters and every served cache's
 * stats, as metric families that `src/prometheus.ts` renders.
 *
 * Counting is on the hot path, so each route gets a pre-resolved
 * {@link RouteMetrics} at app construction: observing a request is an array
 * increment and a short loop over histogram bounds, with no string building
 * and no map lookups. Strings are built only when `/metrics` is scraped.
 *
 * @module
 */
import { queuedBytes } from "./sse.ts";
import type { CacheState, CacheStats, CacheStatus } from "../types.ts";
import { type MetricFamily, renderMetrics } from "../prometheus.ts";

/** Upper bounds of the latency histogram, in seconds. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.0001,
  0.00025,
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/**
 * Counters of one route: requests by status and a latency histogram.
 *
 * @example
 * ```ts
 * import { HttpMetrics } from "./metrics.ts";
 * const m = new HttpMetrics();
 * const r = m.route("GET", "/healthz");
 * r.observe(200, 0.0002);
 * console.log(m.render([]).includes('route="/healthz"')); // true
 * ```
 */
export class RouteMetrics {
  /** The route's method label. */
  readonly method: string;
  /** The route's template, e.g. `/v1/buckets/:bucket/keys/:key`. */
  readonly route: string;
  /** Requests by status code (index = status, 100–599). */
  readonly byStatus: Float64Array = new Float64Array(600);
  /** Non-cumulative histogram counts; the last slot is `+Inf`. */
  readonly buckets: Float64Array = new Float64Array(LATENCY_BUCKETS_SECONDS.length + 1);
  /** Sum of observed latencies, in seconds. */
  sumSeconds = 0;
  /** Number of observations. */
  count = 0;

  /** Creates the counters of one route. */
  constructor(method: string, route: string) {
    this.method = method;
    this.route = route;
  }

  /** Counts one request that ended with `status` after `seconds`. */
  observe(status: number, seconds: number): void {
    this.byStatus[status >= 100 && status < 600 ? status : 599]! += 1;
    const b = LATENCY_BUCKETS_SECONDS;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.buckets[i]! += 1;
    this.sumSeconds += seconds;
    this.count++;
  }
}

/** One served cache, as the exposition reads it at scrape time. */
export interface MetricsBucket {
  /** Bucket name (label value). */
  name: string;
  /** Its counters. */
  stats: CacheStats;
  /** Its status. */
  status: CacheStatus;
}

/** SSE gauges and counters, updated by the watch route. */
export interface SseMetrics {
  /** Streams open now. */
  open: number;
  /** Streams refused because the cap was reached. */
  refused: number;
  /** Streams closed because the client read too slowly. */
  slowClients: number;
}

const STATES: readonly CacheState[] = ["starting", "synced", "stale", "resyncing", "closed"];

/** Cache metrics: name, type, help and how to read the value. */
const CACHE_SERIES: readonly {
  name: string;
  type: "counter" | "gauge";
  help: string;
  value: (b: MetricsBucket) => number;
}[] = [
  {
    name: "kvedge_cache_hits_total",
    type: "counter",
    help: "Reads answered locally and fresh.",
    value: (b) => b.stats.hits,
  },
  {
    name: "kvedge_cache_stale_hits_total",
    type: "counter",
    help: "Reads answered locally while stale (NATS unreachable).",
    value: (b) => b.stats.staleHits,
  },
  {
    name: "kvedge_cache_misses_total",
    type: "counter",
    help: "Reads of keys that were not resident.",
    value: (b) => b.stats.misses,
  },
  {
    name: "kvedge_cache_misses_shed_total",
    type: "counter",
    help: "Misses refused at once: maxConcurrentMisses fetches were in flight.",
    value: (b) => b.stats.shedMisses,
  },
  {
    name: "kvedge_cache_fetches_total",
    type: "counter",
    help: "KV reads made for misses.",
    value: (b) => b.stats.fetches,
  },
  {
    name: "kvedge_cache_loads_total",
    type: "counter",
    help: "Calls to the origin loader.",
    value: (b) => b.stats.loads,
  },
  {
    name: "kvedge_cache_evictions_total",
    type: "counter",
    help: "Entries dropped by the local bounds.",
    value: (b) => b.stats.evictions,
  },
  {
    name: "kvedge_cache_negative_evictions_total",
    type: "counter",
    help: "Negative (absent) entries dropped by local.maxNegativeShare.",
    value: (b) => b.stats.negativeEvictions,
  },
  {
    name: "kvedge_cache_rejected_total",
    type: "counter",
    help: "Stored values that failed the codec or schema.",
    value: (b) => b.stats.rejected,
  },
  {
    name: "kvedge_cache_entries",
    type: "gauge",
    help: "Resident entries (values and tombstones).",
    value: (b) => b.stats.entries,
  },
  {
    name: "kvedge_cache_bytes",
    type: "gauge",
    help: "Bytes counted against local.maxBytes.",
    value: (b) => b.stats.bytes,
  },
  {
    name: "kvedge_watcher_applied_total",
    type: "counter",
    help: "Changes applied from the watcher.",
    value: (b) => b.stats.applied,
  },
  {
    name: "kvedge_watcher_last_revision",
    type: "gauge",
    help: "Highest revision the watcher has applied.",
    value: (b) => b.stats.lastRevision,
  },
  {
    name: "kvedge_watcher_lag_revisions",
    type: "gauge",
    help: "Revisions known but not applied yet.",
    value: (b) => b.stats.lagRevisions,
  },
  {
    name: "kvedge_watcher_lag_seconds",
    type: "gauge",
    help: "Age of the oldest unapplied change.",
    value: (b) => b.stats.lagMs / 1000,
  },
  {
    name: "kvedge_cache_resyncs_total",
    type: "counter",
    help: "Full resyncs done.",
    value: (b) => b.stats.resyncs,
  },
  {
    name: "kvedge_nats_connected",
    type: "gauge",
    help: "1 when the cache's NATS connection is up.",
    value: (b) => (b.status.connected ? 1 : 0),
  },
];

/**
 * The facade's registry: per-route HTTP counters plus the SSE gauges; caches
 * are read at render time.
 *
 * @example
 * ```ts
 * import { HttpMetrics } from "./metrics.ts";
 * const m = new HttpMetrics();
 * m.route("GET", "/healthz").observe(200, 0.001);
 * console.log(m.render([]).split("\n")[0]);
 * ```
 */
export class HttpMetrics {
  readonly #routes: RouteMetrics[] = [];
  /** SSE counters, mutated by the watch route. */
  readonly sse: SseMetrics = { open: 0, refused: 0, slowClients: 0 };
  /** The open SSE bodies, whose queues `kvedge_sse_buffered_bytes` adds up. */
  readonly sseStreams: Set<ReadableStream<Uint8Array>> = new Set();
  /** Requests refused by a bound of the facade, by which bound. */
  readonly #refused = new Map<string, number>();
  /** Work in progress of each capped kind, read at scrape time. */
  readonly #inflight = new Map<string, () => number>();

  /** Counts a request refused by the bound named `bound` (`kvedge_http_refused_total`). */
  refuse(bound: string): void {
    this.#refused.set(bound, (this.#refused.get(bound) ?? 0) + 1);
  }

  /** Requests refused by `bound` so far. */
  refusedBy(bound: string): number {
    return this.#refused.get(bound) ?? 0;
  }

  /** Exports `open()` as `kvedge_http_inflight{kind}`. */
  inflight(kind: string, open: () => number): void {
    this.#inflight.set(kind, open);
  }

  /** Registers (or returns) the counters of `method route`. */
  route(method: string, route: string): RouteMetrics {
    const found = this.#routes.find((r) => r.method === method && r.route === route);
    if (found) return found;
    const r = new RouteMetrics(method, route);
    this.#routes.push(r);
    return r;
  }

  #sseBufferedBytes(): number {
    let n = 0;
    for (const s of this.sseStreams) n += queuedBytes(s);
    return n;
  }

  /** The exposition text for the given caches. */
  render(buckets: readonly MetricsBucket[]): string {
    return renderMetrics(this.#families(buckets));
  }

  /** Every family, in the order of the exposition. */
  *#families(buckets: readonly MetricsBucket[]): Generator<MetricFamily> {
    yield* cacheFamilies(buckets);
    yield* routeFamilies(this.#routes);
    yield* this.#sseFamilies();
    yield* this.#boundFamilies();
  }

  /** The SSE streams: open, refused, closed as slow, bytes queued. */
  *#sseFamilies(): Generator<MetricFamily> {
    yield {
      name: "kvedge_sse_streams",
      type: "gauge",
      help: "Server-sent event streams open now.",
      samples: [{ value: this.sse.open }],
    };
    yield {
      name: "kvedge_sse_refused_total",
      type: "counter",
      help: "Streams refused because the cap was reached.",
      samples: [{ value: this.sse.refused }],
    };
    yield {
      name: "kvedge_sse_slow_clients_total",
      type: "counter",
      help: "Streams closed because the client read too slowly.",
      samples: [{ value: this.sse.slowClients }],
    };
    yield {
      name: "kvedge_sse_buffered_bytes",
      type: "gauge",
      help: "Bytes queued in open streams for clients that have not read them.",
      samples: [{ value: this.#sseBufferedBytes() }],
    };
  }

  /** The facade's bounds: costly requests in progress, requests refused. */
  *#boundFamilies(): Generator<MetricFamily> {
    yield {
      name: "kvedge_http_inflight",
      type: "gauge",
      help: "Costly requests in progress, by kind (capped).",
      samples: [...this.#inflight].map(([kind, open]) => ({
        labels: [["kind", kind]],
        value: open(),
      })),
    };
    yield {
      name: "kvedge_http_refused_total",
      type: "counter",
      help: "Requests refused by a bound of the facade, by bound.",
      samples: [...this.#refused].map(([bound, n]) => ({ labels: [["bound", bound]], value: n })),
    };
  }
}

/** Each cache's series and its lifecycle state, by bucket. */
function* cacheFamilies(buckets: readonly MetricsBucket[]): Generator<MetricFamily> {
  for (const s of CACHE_SERIES) {
    yield {
      name: s.name,
      type: s.type,
      help: s.help,
      samples: buckets.map((b) => ({ labels: [["bucket", b.name]], value: s.value(b) })),
    };
  }
  yield {
    name: "kvedge_cache_state",
    type: "gauge",
    help: "1 for the cache's current lifecycle state.",
    samples: buckets.flatMap((b) =>
      STATES.map((st) => ({
        labels: [["bucket", b.name], ["state", st]] as const,
        value: b.status.state === st ? 1 : 0,
      }))
    ),
  };
}

const routeLabels = (r: RouteMetrics) => [["method", r.method], ["route", r.route]] as const;

/** Requests by route and status, and their latency histogram by route. */
function* routeFamilies(routes: readonly RouteMetrics[]): Generator<MetricFamily> {
  yield {
    name: "kvedge_http_requests_total",
    type: "counter",
    help: "HTTP requests by route and status.",
    samples: (function* () {
      for (const r of routes) {
        for (let status = 100; status < 600; status++) {
          const n = r.byStatus[status]!;
          if (n > 0) yield { labels: [...routeLabels(r), ["status", status]], value: n };
        }
      }
    })(),
  };
  yield {
    name: "kvedge_http_request_duration_seconds",
    type: "histogram",
    help: "Time to the response headers, by route.",
    samples: (function* () {
      for (const r of routes) {
        if (r.count === 0) continue;
        const labels = routeLabels(r);
        let cumulative = 0;
        for (let i = 0; i < LATENCY_BUCKETS_SECONDS.length; i++) {
          cumulative += r.buckets[i]!;
          const le = LATENCY_BUCKETS_SECONDS[i]!;
          yield { suffix: "_bucket", labels: [...labels, ["le", le]], value: cumulative };
        }
        yield { suffix: "_bucket", labels: [...labels, ["le", "+Inf"]], value: r.count };
        yield { suffix: "_sum", labels, value: r.sumSeconds };
        yield { suffix: "_count", labels, value: r.count };
      }
    })(),
  };
}
