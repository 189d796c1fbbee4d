/**
 * One isolate of the edge worker when `KVEDGE_WORKERS` is above 1: a Web
 * Worker that reads the same environment, opens its own NATS connection and
 * caches, and serves on the shared port (`_edge_serve.ts`). The main isolate
 * (`_edge_isolates.ts`) starts it, stops it, and writes its log lines.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { natsConnectOptions, parseEdgeConfig } from "../host/edge_config.ts";
import { nativeServeOnConnection } from "../host/edge_handoff.ts";
import { describe, jsonLogger } from "./_log.ts";
import { type EdgeServing, serveEdge } from "./_edge_serve.ts";
import type { IsolateReport, IsolateStart } from "./_edge_isolates.ts";

const post = (report: IsolateReport) => self.postMessage(report);

let logger = jsonLogger({ batch: true });
let serving: EdgeServing | undefined;

async function start(order: IsolateStart): Promise<void> {
  logger = jsonLogger({
    batch: true,
    fields: { isolate: order.isolate },
    sink: (stream, text) => post({ type: "log", stream, text }),
  });
  const { log } = logger;
  // The main isolate parsed this environment already: it cannot be bad here.
  const config = parseEdgeConfig(Deno.env.toObject());
  const connectOptions = await natsConnectOptions(config);
  const result = await serveEdge(config, connectOptions, {
    servers: order.servers,
    maxConnections: order.maxConnections,
    log,
    opened: { caches: [] },
    isolate: order.isolate,
  });
  logger.flush();
  if (typeof result === "number") {
    post({ type: "failed", code: result });
    return;
  }
  serving = result;
  post({
    type: "listening",
    port: result.server.addr.port,
    hostname: result.server.addr.hostname,
    gate: config.connectionGate
      ? (nativeServeOnConnection() === undefined ? "pipe" : "handoff")
      : undefined,
  });
}

async function stop(): Promise<void> {
  await serving?.stop();
  logger.log("info", "isolate stopped");
  logger.flush();
  post({ type: "stopped" });
}

// A stray rejection must not take the isolate down: log it and keep serving.
self.addEventListener("unhandledrejection", (e) => {
  e.preventDefault();
  logger.log("error", "unhandled rejection", { error: describe(e.reason) });
});

self.onmessage = (e: MessageEvent<IsolateStart | { type: "stop" }>) => {
  const order = e.data;
  const done = order.type === "start" ? start(order) : stop();
  done.catch((err) => {
    logger.log("error", "isolate failed", { error: describe(err) });
    logger.flush();
    post({ type: "failed", code: 1 });
  });
};
