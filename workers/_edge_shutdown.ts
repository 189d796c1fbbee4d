/**
 * The edge worker's stop path: waits for SIGINT, SIGTERM or SIGHUP, makes a
 * second signal exit at once (workers/_stop_signals.ts), and closes what the worker opened (caches, the
 * NATS connection, the embedded nats-server) in that order.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Cache } from "../mod.ts";
import type { EmbeddedServer } from "../host/embedded.ts";
import { describe, type JsonLogger } from "./_log.ts";
import { listenForStop } from "./_stop_signals.ts";
import { settleWithin } from "../src/async.ts";

/** What the edge worker has opened so far; filled in as it starts. */
export interface EdgeResources {
  /** The embedded nats-server, when `NATS_URL` is unset. */
  embedded?: EmbeddedServer;
  /** The shared NATS connection. */
  nc?: NatsConnection;
  /** The served caches, in bucket order. */
  caches: Cache<unknown>[];
}

/** Closes the caches, drains the NATS connection (5 s, then closes it), stops the embedded server. */
export async function closeResources(opened: EdgeResources, log: JsonLogger["log"]): Promise<void> {
  for (const c of opened.caches) {
    await c.close().catch((err) =>
      log("warn", "cache close failed", { bucket: c.bucket, error: describe(err) })
    );
  }
  const nc = opened.nc;
  if (nc !== undefined && !nc.isClosed()) {
    if (!await settleWithin(nc.drain(), 5_000)) await nc.close().catch(() => {});
  }
  if (opened.embedded !== undefined) {
    await opened.embedded.close().catch((err) =>
      log("warn", "embedded nats-server stop failed", { error: describe(err) })
    );
  }
}

/**
 * Listens for the stop signals (see `listenForStop`): resolves with the
 * first one's name; from then on another signal logs "forced exit" and
 * exits with 1, a repeat of a first SIGTERM or SIGHUP is logged while the
 * drain goes on. A service manager's hard stop is SIGKILL after its own
 * timeout.
 */
export function waitForStopSignal(logger: JsonLogger): Promise<string> {
  return listenForStop({
    onRepeat: (signal) => logger.log("info", "stop signal repeated, still draining", { signal }),
    onForce: (signal) => {
      logger.log("warn", "forced exit", { signal });
      logger.flush();
    },
    forcedExitCode: 1,
  });
}
