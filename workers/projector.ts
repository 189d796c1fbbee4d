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
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";
import { connectNats, RECONNECT_POLICY } from "../src/connect.ts";
import type { ConnectionOptions, NatsConnection } from "@nats-io/nats-core";
import { type Projection, type ProjectionRunner, runProjection } from "../projection.ts";
import { findEmbedded } from "../host/embedded.ts";
import { natsConnectionOptions, parseNatsEnv } from "../host/nats_env.ts";
// Recognising a projection in a loaded module is the worker's job, not public API.
import { isProjection } from "../src/projection/define.ts";
import { describe, jsonLogger, type Level } from "./_log.ts";
import { listenForStop } from "./_stop_signals.ts";
import {
  type Flags,
  HELP,
  HelpRequested,
  parseFlags,
  USAGE,
  UsageError,
} from "./_projector_flags.ts";
import { serveMetrics } from "./_projector_metrics.ts";

const { log } = jsonLogger();

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

/** What main() needs from the command line and the environment. */
interface Setup {
  flags: Flags;
  projections: Projection<unknown>[];
  connectOptions: Partial<ConnectionOptions> & { servers: string[] };
}

/** Parses the flags, loads the modules, reads the NATS variables; an exit code for help or bad usage. */
async function readSetup(): Promise<Setup | number> {
  try {
    const flags = parseFlags(Deno.args);
    const projections = await loadProjections(flags.modules);
    const connectOptions = await natsOptions();
    return { flags, projections, connectOptions };
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
}

/** Connects to NATS, reconnecting forever once connected; undefined (logged) if it cannot. */
async function connect(
  connectOptions: Setup["connectOptions"],
): Promise<NatsConnection | undefined> {
  try {
    const nc = await connectNats({
      name: "kvedge-projector",
      ...RECONNECT_POLICY,
      ...connectOptions,
    });
    log("info", "connected", { nats: connectOptions.servers });
    return nc;
  } catch (err) {
    log("error", "cannot connect", { nats: connectOptions.servers, error: describe(err) });
    return undefined;
  }
}

/** What the projector holds once connected, released by {@linkcode release}. */
interface Running {
  nc: NatsConnection;
  runners: ProjectionRunner[];
  metrics?: Deno.HttpServer;
}

/** Starts each projection in turn, adding its runner to `running.runners`. Throws on failure. */
async function startRunners(setup: Setup, running: Running): Promise<void> {
  const { flags, projections } = setup;
  for (const p of projections) {
    const runner = await runProjection(running.nc, p, {
      fromStart: flags.fromStart,
      onMapError: flags.onMapError,
      ...(flags.ackWaitMs === undefined ? {} : { ackWaitMs: flags.ackWaitMs }),
      statusIntervalMs: Math.min(5_000, flags.statusEveryMs),
      ...(flags.hubDomain === undefined ? {} : { region: { hubDomain: flags.hubDomain } }),
    });
    running.runners.push(runner);
    log("info", "projection started", {
      ...runner.status(),
      fromStart: flags.fromStart,
    });
  }
}

/** Stops the metrics server and the runners (logging each final status), drains NATS. */
async function release(running: Running): Promise<void> {
  const { nc, runners } = running;
  await running.metrics?.shutdown().catch(() => {});
  // In parallel: each stop may wait for its pull request to run out.
  const finals = await Promise.all(runners.map((r) => r.stop()));
  for (const s of finals) {
    log(s.state === "failed" ? "error" : "info", "projection stopped", { ...s });
  }
  if (!nc.isClosed()) await nc.drain().catch(() => nc.close());
}

/**
 * Logs status lines: at once on a change of state or error, else every
 * `statusEveryMs`; `report(true)` logs every projection now.
 */
function statusReporter(
  runners: ProjectionRunner[],
  statusEveryMs: number,
): (force: boolean) => void {
  const last = new Map<string, { state: string; error: string | undefined; at: number }>();
  return (force) => {
    const now = Date.now();
    for (const r of runners) {
      const s = r.status();
      const prev = last.get(s.name);
      const changed = !prev || prev.state !== s.state || prev.error !== s.lastError;
      if (!changed && !force && now - prev.at < statusEveryMs) continue;
      last.set(s.name, { state: s.state, error: s.lastError, at: now });
      const level: Level = s.state === "failed"
        ? "error"
        : s.state === "retrying" || (changed && s.lastError)
        ? "warn"
        : "info";
      log(level, "projection status", { ...s });
    }
  };
}

/**
 * Listens for SIGINT, SIGTERM and SIGHUP for the rest of the process's life
 * (workers/_stop_signals.ts): the first resolves with its name, a second
 * exits with 130 — except a repeat of a first SIGTERM or SIGHUP (the same
 * stop reaching the worker twice under `deno task`), which is logged.
 */
function listenForStopSignals(): Promise<string> {
  return listenForStop({
    onRepeat: (signal) => log("info", "stop signal repeated, still stopping", { signal }),
    onForce: (signal) => log("warn", "second signal: exiting at once", { signal }),
    forcedExitCode: 130,
  });
}

/**
 * Waits for a stop signal, a projection ending, or (with `--until-caught-up`)
 * every projection caught up; logs which. The exit code: 0, or 1 if a
 * projection ended or failed.
 */
async function runUntilDone(
  runners: ProjectionRunner[],
  options: {
    untilCaughtUp: boolean;
    stopRequested: Promise<string>;
    report: (force: boolean) => void;
  },
): Promise<number> {
  const failed = Promise.race(runners.map((r) => r.closed()));
  const caughtUp = options.untilCaughtUp
    ? Promise.all(runners.map((r) => r.caughtUp())).then(() => "caught-up")
    : new Promise<never>(() => {});
  // Once stopping, pending waits reject; only the race below cares.
  caughtUp.catch(() => {});

  try {
    const why = await Promise.race([
      options.stopRequested.then((signal) => ({ kind: "signal" as const, signal })),
      failed.then((status) => ({ kind: "ended" as const, status })),
      caughtUp.then(() => ({ kind: "caught-up" as const })),
    ]);
    if (why.kind === "signal") log("info", "stopping", { signal: why.signal });
    else if (why.kind === "caught-up") {
      options.report(true);
      log("info", "caught up", { projections: runners.map((r) => r.status().name) });
    } else {
      log("error", "projection ended", { ...why.status });
      return 1;
    }
  } catch (err) {
    log("error", "projection failed", { error: describe(err) });
    return 1;
  }
  return 0;
}

async function main(): Promise<number> {
  const setup = await readSetup();
  if (typeof setup === "number") return setup;
  const { flags } = setup;
  const nc = await connect(setup.connectOptions);
  if (nc === undefined) return 1;

  const running: Running = { nc, runners: [] };
  try {
    await startRunners(setup, running);
  } catch (err) {
    log("error", "cannot start projection", { error: describe(err) });
    await release(running);
    return 1;
  }
  if (flags.metricsPort !== undefined) {
    running.metrics = await serveMetrics(flags.metricsPort, { runners: running.runners, log });
  }

  const report = statusReporter(running.runners, flags.statusEveryMs);
  const ticker = setInterval(() => report(false), Math.min(1_000, flags.statusEveryMs));
  const stopRequested = listenForStopSignals();
  try {
    return await runUntilDone(running.runners, {
      untilCaughtUp: flags.untilCaughtUp,
      stopRequested,
      report,
    });
  } finally {
    clearInterval(ticker);
    // Still listening while releasing: a repeated SIGTERM is logged, a second Ctrl-C exits.
    await release(running);
  }
}

if (import.meta.main) Deno.exit(await main());
