/**
 * A loopback TCP proxy that a test can cut and restore: a real network fault
 * (connections reset, new ones refused) between a client and a nats-server,
 * without stopping the server. It forwards bytes, so it carries WebSocket as
 * well as NATS over TCP.
 *
 * @module
 */
import type { NatsTransport } from "../src/connect.ts";
import { suiteTransport } from "./transport.ts";

/** A running proxy. */
export interface Proxy extends AsyncDisposable {
  /** Port the proxy listens on. */
  readonly port: number;
  /** `nats://127.0.0.1:<port>`, or `ws://…` when the suite runs over WebSocket. */
  readonly url: string;
  /** Resets every open connection and refuses new ones until {@link restore}. */
  cut(): void;
  /** Accepts connections again. */
  restore(): void;
  /**
   * Delays every chunk by `ms` in each direction from now on (0: none), in
   * order: a slow WAN link without cutting it.
   */
  delay(ms: number): void;
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}

/**
 * Starts a proxy on a free loopback port forwarding to `127.0.0.1:<targetPort>`;
 * `transport` picks the scheme of `url` (default: the suite's transport).
 */
export function startProxy(
  targetPort: number,
  transport: NatsTransport = suiteTransport(),
): Proxy {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const open = new Set<Deno.Conn>();
  let isCut = false;
  let delayMs = 0;
  const pipe = async (from: Deno.Conn, to: Deno.Conn) => {
    try {
      await from.readable.pipeThrough(delayed(() => delayMs)).pipeTo(to.writable);
    } catch {
      // reset by cut() or by the peer
    } finally {
      for (const c of [from, to]) {
        try {
          c.close();
        } catch { /* already closed */ }
        open.delete(c);
      }
    }
  };
  const accepting = (async () => {
    for await (const client of listener) {
      if (isCut) {
        client.close();
        continue;
      }
      try {
        const server = await Deno.connect({ hostname: "127.0.0.1", port: targetPort });
        open.add(client);
        open.add(server);
        pipe(client, server);
        pipe(server, client);
      } catch {
        client.close();
      }
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  const cut = () => {
    isCut = true;
    for (const c of open) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    open.clear();
  };
  const close = async () => {
    cut();
    try {
      listener.close();
    } catch { /* already closed */ }
    await accepting;
  };
  return {
    port,
    url: `${transport === "websocket" ? "ws" : "nats"}://127.0.0.1:${port}`,
    cut,
    restore: () => {
      isCut = false;
    },
    delay: (ms: number) => {
      delayMs = ms;
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/**
 * Releases each chunk `getDelay()` ms after it arrived, in arrival order,
 * without holding back the chunks behind it (latency, not a bandwidth cap).
 */
function delayed(getDelay: () => number): TransformStream<Uint8Array, Uint8Array> {
  let last = Promise.resolve();
  return new TransformStream({
    transform(chunk, controller) {
      const ms = getDelay();
      if (ms <= 0) {
        last = last.then(() => controller.enqueue(chunk)).catch(() => {});
        return;
      }
      const due = performance.now() + ms;
      last = last.then(async () => {
        const wait = due - performance.now();
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
        controller.enqueue(chunk);
      }).catch(() => {});
    },
    flush: () => last,
  });
}
