/**
 * The server's view of a bench round, from nats-server's HTTP monitoring
 * port: slow-consumer events (`/varz` `slow_consumers`, and
 * `slow_consumer_stats.clients` where the server has it), connections it
 * closed as slow consumers (`/connz?state=closed`, by reason), and the
 * largest outbound backlog of one client connection (`/connz`
 * `pending_bytes`, sampled while the round runs).
 *
 * nats-server never drops a message to a client connection that falls
 * behind: past `max_pending` (64 MB by default) or a write deadline it
 * closes the connection (`server/client.go`, `SlowConsumerPendingBytes` /
 * `SlowConsumerWriteDeadline`), and the client reconnects. So a slow
 * consumer is seen here and in the client's `disconnect` status events, not
 * as a silent gap.
 *
 * @module
 */
import { delay } from "../../src/async.ts";

/** Counters read from `/varz` and `/connz?state=closed`. */
export interface SlowCounts {
  /** `/varz` `slow_consumers` (every kind of connection). */
  slowConsumers: number;
  /** Connections closed with a "Slow Consumer" reason (closed-connections ring). */
  closedSlow: number;
}

async function monitor<T>(port: number, path: string): Promise<T> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  if (!res.ok) throw new Error(`nats-server monitor ${path}: HTTP ${res.status}`);
  return await res.json() as T;
}

/**
 * The server's slow-consumer counters now.
 *
 * @example
 * ```ts ignore
 * const before = await slowCounts(server.monitorPort);
 * ```
 */
export async function slowCounts(port: number): Promise<SlowCounts> {
  const varz = await monitor<{ slow_consumers?: number }>(port, "/varz");
  const closed = await monitor<{ connections?: { reason?: string }[] }>(
    port,
    "/connz?state=closed&limit=100000",
  );
  return {
    slowConsumers: varz.slow_consumers ?? 0,
    closedSlow: (closed.connections ?? []).filter((c) => /slow consumer/i.test(c.reason ?? ""))
      .length,
  };
}

/**
 * Samples `/connz` every `everyMs` until `stop()`: the largest `pending_bytes`
 * of one open connection (the server's outbound buffer to that client).
 *
 * @example
 * ```ts ignore
 * const pending = pendingSampler(server.monitorPort, 250);
 * // … the round …
 * const maxBytes = await pending.stop();
 * ```
 */
export function pendingSampler(port: number, everyMs: number): { stop(): Promise<number> } {
  let max = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const connz = await monitor<{ connections?: { pending_bytes?: number }[] }>(
        port,
        "/connz?limit=100000",
      ).catch(() => ({ connections: [] }));
      for (const c of connz.connections ?? []) max = Math.max(max, c.pending_bytes ?? 0);
      await delay(everyMs);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return max;
    },
  };
}
