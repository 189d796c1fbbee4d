/**
 * Operations: `GET /` (the index), `/v1/buckets`, `/v1/stats`, `/healthz`,
 * `/readyz` and `/metrics`.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import type { MetricsBucket } from "../metrics.ts";
import { methodNotAllowed } from "../pipeline.ts";
import type { Pipeline } from "../pipeline.ts";
import { HttpProblem } from "../problem.ts";
import type { ServedBucket } from "../served_bucket.ts";

/** The body of `GET /`: every route, in a line each (docs/http.md has the details). */
const INDEX = {
  name: "kvedge",
  docs: "docs/http.md",
  endpoints: {
    "GET /v1/buckets": "the buckets served here",
    "GET|HEAD /v1/buckets/{bucket}/keys/{key}": "a value; ETag is its revision",
    "PUT /v1/buckets/{bucket}/keys/{key}":
      "write (If-Match: compare-and-set, If-None-Match: *, ?ttl=<s>)",
    "DELETE /v1/buckets/{bucket}/keys/{key}": "delete (?purge=true drops the history)",
    "GET /v1/buckets/{bucket}/keys": "keys, sorted and paged (?prefix=&limit=&cursor=)",
    "GET /v1/buckets/{bucket}/keys/{key}/history": "a key's kept revisions",
    "GET /v1/buckets/{bucket}/watch": "changes as Server-Sent Events (?prefix=, Last-Event-ID)",
    "GET /v1/stats": "every bucket's stats and status",
    "GET /healthz": "the process is up",
    "GET /readyz": "every bucket is synced (or stale within bounds)",
    "GET /metrics": "Prometheus metrics",
  },
} as const;

/** The operations routes, over the shared pipeline. */
export function opsRoutes(p: Pipeline): Hono {
  const app = new Hono();
  app.get(
    "/v1/buckets",
    p.measure(p.metrics.route("GET", "/v1/buckets")),
    ...p.readGuards,
    listBuckets(p),
  );
  app.get("/v1/stats", p.measure(p.metrics.route("GET", "/v1/stats")), ...p.readGuards, stats(p));
  // A newcomer's first request: what is here, without naming any bucket (that needs a token).
  app.get("/", p.measure(p.metrics.route("GET", "/")), function index(c) {
    return c.json(INDEX);
  });
  app.get("/healthz", p.measure(p.metrics.route("GET", "/healthz")), function healthz(c) {
    return c.json({ status: "ok" });
  });
  app.get("/readyz", p.measure(p.metrics.route("GET", "/readyz")), readyz(p));
  app.get("/metrics", p.measure(p.metrics.route("GET", "/metrics")), ...p.readGuards, scrape(p));
  for (const path of ["/", "/v1/buckets", "/v1/stats", "/healthz", "/readyz", "/metrics"]) {
    app.all(path, p.measure(p.metrics.route("OTHER", path)), methodNotAllowed("GET, HEAD"));
  }
  return app;
}

/** `GET /v1/buckets`: the buckets served, their mode and content type. */
function listBuckets(p: Pipeline): (c: Context) => Response {
  const served = p.served;
  return function listBuckets(c) {
    return c.json({
      buckets: [...served.values()].map((b) => ({
        name: b.name,
        mode: b.cache.mode,
        readOnly: b.writer === undefined,
        contentType: b.contentType,
      })),
    });
  };
}

/** `GET /v1/stats`: every bucket's stats and status, and the SSE counters. */
function stats(p: Pipeline): (c: Context) => Response {
  const served = p.served;
  return function stats(c) {
    const buckets: Record<string, unknown> = {};
    for (const b of served.values()) {
      buckets[b.name] = {
        readOnly: b.writer === undefined,
        stats: b.cache.stats(),
        status: b.cache.status(),
      };
    }
    return c.json({ buckets, sse: { ...p.metrics.sse } });
  };
}

/** `GET /readyz`: 200 when every bucket is synced or stale within `maxStaleMs`, else 503. */
function readyz(p: Pipeline): (c: Context) => Response {
  const readCheck = p.readCheck;
  return function readyz(c) {
    // Bucket names and states are for readers: anyone else learns ready or not.
    let detailed = true;
    if (readCheck !== undefined) {
      try {
        readCheck(c.req.raw.headers.get("authorization"));
      } catch {
        detailed = false;
      }
    }
    const { buckets, reasons } = readiness(p.served.values(), p.limits.maxStaleMs);
    if (reasons.length > 0) {
      throw new HttpProblem(
        "unavailable",
        detailed ? `not ready: ${reasons.join("; ")}` : "not ready",
        { headers: { "retry-after": "1" }, ...(detailed ? { extensions: { buckets } } : {}) },
      );
    }
    return c.json(detailed ? { status: "ready", buckets } : { status: "ready" });
  };
}

/** Each bucket's state and whether it is ready, with the reason of each that is not. */
function readiness(served: Iterable<ServedBucket>, maxStaleMs: number): {
  buckets: Record<string, { state: string; ready: boolean }>;
  reasons: string[];
} {
  const now = Date.now();
  const buckets: Record<string, { state: string; ready: boolean }> = {};
  const reasons: string[] = [];
  for (const b of served) {
    const s = b.cache.status();
    const ready = s.state === "synced" || (s.state === "stale" && now - s.since <= maxStaleMs);
    buckets[b.name] = { state: s.state, ready };
    if (!ready) {
      reasons.push(
        s.state === "stale"
          ? `bucket "${b.name}" has been stale for ${now - s.since} ms`
          : `bucket "${b.name}" is ${s.state}`,
      );
    }
  }
  return { buckets, reasons };
}

/** `GET /metrics`: the Prometheus exposition. */
function scrape(p: Pipeline): (c: Context) => Response {
  const served = p.served;
  return function scrape(c) {
    const list: MetricsBucket[] = [];
    for (const b of served.values()) {
      list.push({ name: b.name, stats: b.cache.stats(), status: b.cache.status() });
    }
    return c.body(p.metrics.render(list), 200, {
      "content-type": "text/plain; version=0.0.4; charset=utf-8",
    });
  };
}
