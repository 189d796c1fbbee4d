/**
 * The projector (`deno task project <module>...`): runs the projections that
 * each module default-exports (one, or an array), on one NATS connection.
 *
 * ```sh
 * deno task project examples/orders/projection.ts
 * deno task project --from-start --until-caught-up examples/orders/projection.ts
 * ```
 *
 * Flags:
 * - `--from-start`        replay every projection from its source's first event
 * - `--until-caught-up`   exit 0 once every projection has applied all events
 * - `--status-every <s>`  seconds between status lines (default 10); a change
 *                         of state or error is logged at once
 * - `--ack-wait-ms <ms>`  redelivery delay of an event a crashed run held (default 10000)
 * - `--on-map-error stop|skip`  what a failing `map` does (default stop)
 * - `--metrics-port <p>`  serve `/metrics` (Prometheus) and `/healthz` on
 *                         127.0.0.1 (also `PROJECTOR_METRICS_PORT`)
 *
 * Connection: `NATS_URL` (comma-separated), else the embedded server of a
 * running `deno task serve` (found under `.data/`), else
 * `nats://127.0.0.1:4222`; auth and TLS from the variables every kvedge
 * program reads (`host/nats_env.ts`: credentials in `NATS_URL`, `NATS_USER` +
 * `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS`, `NATS_NKEY`, `NATS_TLS_*`).
 * `KVEDGE_HUB_DOMAIN`: run in a region over leaf nodes — the connection is
 * the region's leaf node; source, checkpoint and target are on the hub, in
 * that JetStream domain (docs/topologies.md).
 *
 * Logs one JSON line per event. SIGINT/SIGTERM/SIGHUP stop gracefully: no further
 * events are fetched, the one in flight is finished and acked, the
 * connection is drained. Exit codes: 0 after a graceful stop, 1 when NATS
 * or a projection fails, 2 for bad usage or a bad module.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { connectNats } from "../src/connect.ts";
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import {
  type Projection,
  type ProjectionRunner,
  type ProjectionStatus,
  runProjection,
} from "../mod.ts";
import { findEmbedded } from "../host/embedded.ts";
import { natsConnectionOptions, parseNatsEnv } from "../host/nats_env.ts";
// Recognising a projection in a loaded module is the worker's job, not public API.
import { isProjection } from "../src/projection/define.ts";
import { describe, jsonLogger, type Level } from "./_log.ts";
import {
  escapeLabel,
  familyHeader,
  formatValue,
  PROMETHEUS_CONTENT_TYPE,
} from "../src/prometheus.ts";

const { log } = jsonLogger();

class UsageError extends Error {}

const USAGE = "usage: deno task project [--from-start] [--until-caught-up] [--status-every <s>] " +
  "[--ack-wait-ms <ms>] [--on-map-error stop|skip] [--metrics-port <port>] <module>...";

const HELP = `${USAGE}

Runs the projections that each module default-exports (one, or an array of
them), on one NATS connection, until stopped. Docs: docs/projections.md.

  --from-start              replay every projection from its source's first event
  --until-caught-up         exit 0 once every projection has applied every event
  --status-every <s>        seconds between status lines (default 10); a change of
                            state or error is logged at once
  --ack-wait-ms <ms>        redelivery delay of an event a crashed run held
                            (default 10000, at least 1000)
  --on-map-error stop|skip  what a failing map does (default stop)
  --metrics-port <port>     serve /metrics (Prometheus) and /healthz on 127.0.0.1
                            (also PROJECTOR_METRICS_PORT)
  -h, --help                this help

Connection: NATS_URL (comma-separated), else the embedded server of a running
\`deno task serve\` (found under .data/), else nats://127.0.0.1:4222; auth from
NATS_CREDS, NATS_USER/NATS_PASSWORD, NATS_TOKEN or NATS_NKEY, TLS from NATS_TLS_*.
KVEDGE_HUB_DOMAIN=<domain>: NATS_URL is a region's leaf node; source, checkpoint
and target are on the hub, reached through that JetStream domain.

Example: deno task project examples/orders/projection.ts

SIGINT, SIGTERM or SIGHUP stop gracefully. Exit codes: 0 after a graceful stop,
1 when NATS or a projection fails, 2 for bad usage or a bad module.`;

class HelpRequested extends Error {}

interface Flags {
  modules: string[];
  fromStart: boolean;
  untilCaughtUp: boolean;
  statusEveryMs: number;
  ackWaitMs: number | undefined;
  onMapError: "stop" | "skip";
  metricsPort: number | undefined;
  hubDomain: string | undefined;
}

function parseFlags(args: string[]): Flags {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        "from-start": { type: "boolean", default: false },
        "until-caught-up": { type: "boolean", default: false },
        "status-every": { type: "string" },
        "ack-wait-ms": { type: "string" },
        "on-map-error": { type: "string" },
        "metrics-port": { type: "string" },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (err) {
    throw new UsageError(err instanceof Error ? err.message : String(err));
  }
  const v = parsed.values;
  if (v.help) throw new HelpRequested();
  if (parsed.positionals.length === 0) throw new UsageError("name at least one projection module");
  const num = (name: string, text: string | undefined, min: number, max = Infinity) => {
    if (text === undefined) return undefined;
    const n = Number(text);
    if (!Number.isFinite(n) || n < min || n > max) {
      throw new UsageError(`--${name} must be a number in [${min}, ${max}], got ${text}`);
    }
    return n;
  };
  const onMapError = v["on-map-error"] ?? "stop";
  if (onMapError !== "stop" && onMapError !== "skip") {
    throw new UsageError(`--on-map-error must be stop or skip, got ${onMapError}`);
  }
  const metricsPort = num(
    "metrics-port",
    v["metrics-port"] ?? (Deno.env.get("PROJECTOR_METRICS_PORT") || undefined),
    0,
    65535,
  );
  const ackWait = num("ack-wait-ms", v["ack-wait-ms"], 1000);
  const hubDomain = Deno.env.get("KVEDGE_HUB_DOMAIN")?.trim() || undefined;
  if (hubDomain !== undefined && !/^[A-Za-z0-9_-]+$/.test(hubDomain)) {
    throw new UsageError(
      `KVEDGE_HUB_DOMAIN must be a JetStream domain name (letters, digits, _ and -), got ${hubDomain}`,
    );
  }
  return {
    hubDomain,
    modules: parsed.positionals,
    fromStart: v["from-start"] === true,
    untilCaughtUp: v["until-caught-up"] === true,
    statusEveryMs: Math.round((num("status-every", v["status-every"], 0.1) ?? 10) * 1000),
    ackWaitMs: ackWait === undefined ? undefined : Math.round(ackWait),
    onMapError,
    metricsPort: metricsPort === undefined ? undefined : Math.round(metricsPort),
  };
}

async function loadProjections(modules: string[]): Promise<Projection<unknown>[]> {
  const all: Projection<unknown>[] = [];
  for (const path of modules) {
    const url = /^[a-z][a-z0-9+.-]*:/i.test(path) ? path : pathToFileURL(resolve(path)).href;
    let mod: { default?: unknown };
    try {
      mod = await import(url);
    } catch (err) {
      throw new UsageError(`cannot load ${path}: ${describe(err)}`);
    }
    const exported = Array.isArray(mod.default) ? mod.default : [mod.default];
    if (exported.length === 0 || !exported.every(isProjection)) {
      throw new UsageError(
        `${path} must default-export a projection (defineProjection(...)) or an array of them`,
      );
    }
    all.push(...exported);
  }
  const names = new Set<string>();
  for (const p of all) {
    if (names.has(p.name)) throw new UsageError(`two projections are named "${p.name}"`);
    names.add(p.name);
  }
  return all;
}

async function natsOptions(): Promise<Partial<ConnectionOptions> & { servers: string[] }> {
  const nats = parseNatsEnv(Deno.env.toObject(), { action: "start projector" });
  for (const name of nats.deprecated) {
    log("warn", "deprecated variable", {
      variable: name,
      use: name === "NATS_PASS" ? "NATS_PASSWORD" : "NATS_NKEY",
    });
  }
  let servers = nats.servers;
  if (servers === undefined) {
    try {
      const embedded = await findEmbedded(".data");
      if (embedded) servers = [embedded];
    } catch {
      // No readable .data/: there is no embedded server to use.
    }
  }
  const opts = await natsConnectionOptions(nats, { action: "start projector" });
  return { ...opts, servers: servers ?? ["nats://127.0.0.1:4222"] };
}

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

function metricsText(statuses: ProjectionStatus[]): string {
  const lines: string[] = [];
  const label = (s: ProjectionStatus) => `projection="${escapeLabel(s.name)}"`;
  for (const [field, name, type, help] of METRICS) {
    lines.push(...familyHeader(name, type, help));
    for (const s of statuses) lines.push(`${name}{${label(s)}} ${formatValue(Number(s[field]))}`);
  }
  lines.push(
    ...familyHeader(
      "kvedge_projection_up",
      "gauge",
      "1 while the projection runs (or retries), 0 otherwise.",
    ),
  );
  for (const s of statuses) {
    const up = s.state === "running" || s.state === "retrying" ? 1 : 0;
    lines.push(`kvedge_projection_up{${label(s)}} ${up}`);
  }
  return lines.join("\n") + "\n";
}

async function main(): Promise<number> {
  let flags: Flags;
  let projections: Projection<unknown>[];
  let connectOptions;
  try {
    flags = parseFlags(Deno.args);
    projections = await loadProjections(flags.modules);
    connectOptions = await natsOptions();
  } catch (err) {
    if (err instanceof HelpRequested) {
      console.log(HELP);
      return 0;
    }
    if (err instanceof UsageError) {
      if (err.message) log("error", "bad usage", { error: err.message });
      console.error(USAGE);
      return 2;
    }
    log("error", "bad configuration", { error: describe(err) });
    return 2;
  }

  let nc: NatsConnection;
  try {
    nc = await connectNats({
      name: "kvedge-projector",
      maxReconnectAttempts: -1,
      reconnectTimeWait: 500,
      reconnectJitter: 250,
      ...connectOptions,
    });
  } catch (err) {
    log("error", "cannot connect", { nats: connectOptions.servers, error: describe(err) });
    return 1;
  }
  log("info", "connected", { nats: connectOptions.servers });

  const runners: ProjectionRunner[] = [];
  let metrics: Deno.HttpServer | undefined;
  const shutdown = async () => {
    await metrics?.shutdown().catch(() => {});
    // In parallel: each stop may wait for its pull request to run out.
    const finals = await Promise.all(runners.map((r) => r.stop()));
    for (const s of finals) {
      log(s.state === "failed" ? "error" : "info", "projection stopped", { ...s });
    }
    if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
  };

  try {
    for (const p of projections) {
      const runner = await runProjection(nc, p, {
        fromStart: flags.fromStart,
        onMapError: flags.onMapError,
        ...(flags.ackWaitMs === undefined ? {} : { ackWaitMs: flags.ackWaitMs }),
        statusIntervalMs: Math.min(5_000, flags.statusEveryMs),
        ...(flags.hubDomain === undefined ? {} : { region: { hubDomain: flags.hubDomain } }),
      });
      runners.push(runner);
      log("info", "projection started", {
        ...runner.status(),
        fromStart: flags.fromStart,
      });
    }
  } catch (err) {
    log("error", "cannot start projection", { error: describe(err) });
    await shutdown();
    return 1;
  }

  if (flags.metricsPort !== undefined) {
    const listening = Promise.withResolvers<void>();
    metrics = Deno.serve({
      hostname: "127.0.0.1",
      port: flags.metricsPort,
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
  }

  // Status lines: at once on a change of state or error, else every statusEveryMs.
  const last = new Map<string, { state: string; error: string | undefined; at: number }>();
  const report = (force: boolean) => {
    const now = Date.now();
    for (const r of runners) {
      const s = r.status();
      const prev = last.get(s.name);
      const changed = !prev || prev.state !== s.state || prev.error !== s.lastError;
      if (!changed && !force && now - prev.at < flags.statusEveryMs) continue;
      last.set(s.name, { state: s.state, error: s.lastError, at: now });
      const level: Level = s.state === "failed"
        ? "error"
        : s.state === "retrying" || (changed && s.lastError)
        ? "warn"
        : "info";
      log(level, "projection status", { ...s });
    }
  };
  const ticker = setInterval(() => report(false), Math.min(1_000, flags.statusEveryMs));

  const stopRequested = Promise.withResolvers<string>();
  let signals = 0;
  const onSignal = (name: string) => () => {
    signals++;
    if (signals > 1) {
      log("warn", "second signal: exiting at once", { signal: name });
      Deno.exit(130);
    }
    stopRequested.resolve(name);
  };
  const onInt = onSignal("SIGINT");
  const onTerm = onSignal("SIGTERM");
  const onHup = onSignal("SIGHUP");
  Deno.addSignalListener("SIGINT", onInt);
  Deno.addSignalListener("SIGTERM", onTerm);
  Deno.addSignalListener("SIGHUP", onHup);

  const failed = Promise.race(runners.map((r) => r.closed()));
  const caughtUp = flags.untilCaughtUp
    ? Promise.all(runners.map((r) => r.caughtUp())).then(() => "caught-up")
    : new Promise<never>(() => {});
  // Once stopping, pending waits reject; only the race below cares.
  caughtUp.catch(() => {});

  let code = 0;
  try {
    const why = await Promise.race([
      stopRequested.promise.then((signal) => ({ kind: "signal" as const, signal })),
      failed.then((status) => ({ kind: "ended" as const, status })),
      caughtUp.then(() => ({ kind: "caught-up" as const })),
    ]);
    if (why.kind === "signal") log("info", "stopping", { signal: why.signal });
    else if (why.kind === "caught-up") {
      report(true);
      log("info", "caught up", { projections: runners.map((r) => r.status().name) });
    } else {
      log("error", "projection ended", { ...why.status });
      code = 1;
    }
  } catch (err) {
    log("error", "projection failed", { error: describe(err) });
    code = 1;
  } finally {
    clearInterval(ticker);
    Deno.removeSignalListener("SIGINT", onInt);
    Deno.removeSignalListener("SIGTERM", onTerm);
    Deno.removeSignalListener("SIGHUP", onHup);
    await shutdown();
  }
  return code;
}

if (import.meta.main) Deno.exit(await main());
