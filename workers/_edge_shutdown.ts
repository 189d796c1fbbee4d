/**
 * The edge worker's stop path: waits for SIGINT, SIGTERM or SIGHUP, makes a
 * second signal exit at once, and closes what the worker opened (caches, the
 * NATS connection, the embedded nats-server) in that order.
 *
 * @module
 */
import type { NatsConnection } from "@nats-io/nats-core";
import type { Cache } from "../mod.ts";
import type { EmbeddedServer } from "../host/embedded.ts";
import { describe, type JsonLogger } from "./_log.ts";

/** What the edge worker has opened so far; filled in as it starts. */
export interface EdgeResources {
  /** The embedded nats-server, when `NATS_URL` is unset. */
  embedded?: EmbeddedServer;
  /** The shared NATS connection. */
  nc?: NatsConnection;
  /** The served caches, in bucket order. */
  caches: Cache<unknown>[];
}

/** The signals that stop the worker. SIGHUP: a closed terminal must not leave the embedded nats-server behind. */
const STOP_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"] as const;

/** Resolves after `ms`, or at once if `promise` settles first; true if it settled. */
export async function within(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([promise.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
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
    if (!await within(nc.drain(), 5_000)) await nc.close().catch(() => {});
  }
  if (opened.embedded !== undefined) {
    await opened.embedded.close().catch((err) =>
      log("warn", "embedded nats-server stop failed", { error: describe(err) })
    );
  }
}

/**
 * Stop signals whose repeats are the same stop delivered again, not an
 * operator asking for "now": a service manager (systemd's default
 * `KillMode=control-group`, `kill -- -<pgid>`) signals every process of the
 * group, so under `deno task serve` the worker gets SIGTERM once from the
 * manager and once more forwarded by `deno task`; a closed terminal sends
 * SIGHUP to the whole session alike. SIGINT is interactive (Ctrl-C reaches
 * the worker once): pressing it again forces the exit.
 */
export const REPEATABLE_SIGNALS: readonly string[] = ["SIGTERM", "SIGHUP"];

/** Resolves with the name of the first stop signal received. */
export async function waitForStopSignal(): Promise<string> {
  const stopped = Promise.withResolvers<string>();
  const onSignal = (signal: Deno.Signal) => () => stopped.resolve(signal);
  const handlers = STOP_SIGNALS.map((s) => [s, onSignal(s)] as const);
  for (const [s, h] of handlers) Deno.addSignalListener(s, h);
  const signal = await stopped.promise;
  for (const [s, h] of handlers) Deno.removeSignalListener(s, h);
  return signal;
}

/**
 * From now on a stop signal logs "forced exit" and exits with 1: a second
 * signal while draining means "now" — except a repeat of `first` when it is
 * in {@linkcode REPEATABLE_SIGNALS} (the same stop reaching the worker twice),
 * which is logged while the drain goes on. A service manager's hard stop is
 * SIGKILL after its own timeout.
 */
export function exitOnNextSignal(logger: JsonLogger, first?: string): void {
  const force = (signal: Deno.Signal) => () => {
    if (signal === first && REPEATABLE_SIGNALS.includes(signal)) {
      logger.log("info", "stop signal repeated, still draining", { signal });
      return;
    }
    logger.log("warn", "forced exit", { signal });
    logger.flush();
    Deno.exit(1);
  };
  for (const s of STOP_SIGNALS) Deno.addSignalListener(s, force(s));
}
