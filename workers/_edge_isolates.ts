/**
 * The edge worker's isolates when `KVEDGE_WORKERS` is above 1, seen from the
 * main isolate: it starts one Web Worker per isolate (`_edge_isolate.ts`),
 * writes their log lines (the one writer of the process's output), waits
 * until every one listens, and stops them all (each drains as the single
 * worker does) before the embedded nats-server, which the main isolate
 * started once, is stopped.
 *
 * Why Web Workers, not processes: one process keeps one PID for the service
 * manager, signals reach one isolate (this one), and no isolate can outlive
 * the worker. Why not `deno serve --parallel`: it runs a whole module per
 * isolate (the embedded server would start N times), owns the signals, and
 * serves with `Deno.serve`, without the connection gate. The isolates share
 * the port the way `deno serve --parallel` does (see `tcpListen` in
 * host/edge_gate.ts).
 *
 * @module
 */
import type { EdgeConfig } from "../host/edge_config.ts";
import { describe, type JsonLogger, writeOutput } from "./_log.ts";
import { settleWithin } from "../src/async.ts";

/** What the main isolate tells an isolate to do first. */
export interface IsolateStart {
  type: "start";
  /** Its number, 1-based. */
  isolate: number;
  /** The NATS servers (the embedded server's URL when `NATS_URL` is unset). */
  servers: string[];
  /** Its share of the connection cap. */
  maxConnections: number;
}

/** What an isolate tells the main isolate. */
export type IsolateReport =
  | { type: "log"; stream: "stdout" | "stderr"; text: string }
  | { type: "listening"; hostname: string; port: number; gate: string | undefined }
  | { type: "failed"; code: number }
  | { type: "stopped" };

/** The running isolates. */
export interface IsolatePool {
  /** Where they listen (one port for all). */
  addr: { hostname: string; port: number };
  /** The gate's kind (`handoff` or `pipe`); undefined without the gate. */
  gate: string | undefined;
  /** Resolves with the isolate's number when one fails after they all started. */
  failed: Promise<number>;
  /** Stops every isolate (each drains), then ends their Web Workers. */
  stop(): Promise<void>;
}

interface Member {
  isolate: number;
  worker: Worker;
  started: PromiseWithResolvers<IsolateReport & { type: "listening" } | number>;
  stopped: PromiseWithResolvers<void>;
}

/**
 * Starts `config.workers` isolates and waits until all listen. Resolves with
 * the pool, or with an exit code (an isolate could not start: the others are
 * stopped again; each logged why).
 *
 * @example
 * ```ts ignore
 * const pool = await startIsolates(config, { servers: ["nats://127.0.0.1:4222"], maxConnections: 10_000, log });
 * if (typeof pool !== "number") await pool.stop();
 * ```
 */
export async function startIsolates(
  config: EdgeConfig,
  options: { servers: string[]; maxConnections: number; log: JsonLogger["log"] },
): Promise<IsolatePool | number> {
  const { log } = options;
  const failed = Promise.withResolvers<number>();
  const members: Member[] = [];
  // The open-file limit is the process's: the isolates share the cap.
  const share = Math.max(1, Math.floor(options.maxConnections / config.workers));
  for (let isolate = 1; isolate <= config.workers; isolate++) {
    members.push(spawnIsolate(isolate, { servers: options.servers, share, failed, log }));
  }

  const stop = async (which: Member[]) => {
    for (const m of which) m.worker.postMessage({ type: "stop" });
    // Each isolate bounds its own drain (shutdownTimeoutMs, then 5 s for NATS).
    const all = Promise.all(which.map((m) => m.stopped.promise));
    if (!await settleWithin(all, config.shutdownTimeoutMs + 10_000)) {
      log("warn", "isolates did not stop in time", {
        timeoutMs: config.shutdownTimeoutMs + 10_000,
      });
    }
    for (const m of members) m.worker.terminate();
  };

  const results = await Promise.all(members.map((m) => m.started.promise));
  const codes = results.filter((r): r is number => typeof r === "number");
  if (codes.length > 0) {
    await stop(members.filter((_, i) => typeof results[i] !== "number"));
    return codes.includes(2) ? 2 : Math.max(...codes);
  }
  const listening = results as (IsolateReport & { type: "listening" })[];
  const first = listening[0]!;
  // A listener that did not share the port would take another one (PORT=0)
  // and never see a client: refuse to run half blind.
  if (listening.some((r) => r.port !== first.port || r.hostname !== first.hostname)) {
    log("error", "cannot listen: the isolates did not share one port", {
      ports: listening.map((r) => r.port),
    });
    await stop(members);
    return 1;
  }
  return {
    addr: { hostname: first.hostname, port: first.port },
    gate: first.gate,
    failed: failed.promise,
    stop: () => stop(members),
  };
}

/**
 * Starts isolate number `isolate` in a Web Worker and tells it to start;
 * its reports settle the member's promises (`failed`: one failed after it
 * listened).
 */
function spawnIsolate(
  isolate: number,
  ctx: {
    servers: string[];
    share: number;
    failed: PromiseWithResolvers<number>;
    log: JsonLogger["log"];
  },
): Member {
  const worker = new Worker(new URL("./_edge_isolate.ts", import.meta.url), {
    type: "module",
    name: `kvedge-isolate-${isolate}`,
  });
  const m: Member = {
    isolate,
    worker,
    started: Promise.withResolvers(),
    stopped: Promise.withResolvers(),
  };
  let listening = false;
  const fail = (code: number) => {
    if (listening) ctx.failed.resolve(isolate);
    else m.started.resolve(code);
    m.stopped.resolve();
  };
  worker.onmessage = (e: MessageEvent<IsolateReport>) => {
    const r = e.data;
    if (r.type === "log") writeOutput(r.stream, r.text);
    else if (r.type === "listening") {
      listening = true;
      m.started.resolve(r);
    } else if (r.type === "failed") fail(r.code);
    else m.stopped.resolve();
  };
  worker.onerror = (e) => {
    e.preventDefault();
    ctx.log("error", "isolate failed", { isolate, error: describe(e.error ?? e.message) });
    fail(1);
  };
  worker.postMessage(
    {
      type: "start",
      isolate,
      servers: ctx.servers,
      maxConnections: ctx.share,
    } satisfies IsolateStart,
  );
  return m;
}
