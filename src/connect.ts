/**
 * Opening a NATS connection: the URLs pick the transport. `ws://` and
 * `wss://` use nats.js's WebSocket transport (`wsconnect`, the runtime's
 * global `WebSocket` or a `wsFactory`); anything else uses TCP
 * (`@nats-io/transport-node`).
 *
 * nats.js v3 keeps ONE transport factory per JavaScript realm: `connect()` and
 * `wsconnect()` each replace it, and every connection creates its next socket
 * from it when it reconnects. A TCP connection open while a WebSocket one is
 * opened would later reconnect over WebSocket (and the reverse), and never
 * come back. So the two transports cannot be open at once through this
 * module: the second one is refused with a `TypeError`.
 *
 * @module
 */
import type { NodeConnectionOptions } from "@nats-io/transport-node";
import {
  type ConnectionOptions,
  type NatsConnection,
  wsconnect,
  type WsConnectionOptions,
} from "@nats-io/nats-core";
import { guardSocketResets } from "./socket_guard.ts";
import { assertRuntime } from "./runtime_check.ts";

/** Options of {@linkcode connectNats}: nats.js's, plus `wsFactory` for WebSocket. */
export type ConnectNatsOptions = ConnectionOptions & WsConnectionOptions;

/**
 * How every long-lived connection kvedge opens itself (a cache's own, the
 * isolate's, the edge worker's, the projector's) rides out an outage:
 * reconnect forever, 500 ms apart plus up to 250 ms of jitter, and a ping
 * every 10 s so that a dead link is noticed within seconds rather than after
 * nats.js's default two minutes; and no async traces (nats.js otherwise builds
 * a `RequestError` and a `TimeoutError` per request only for their stack,
 * 8–11 µs of every miss; kvedge rethrows its own errors with nats.js's as
 * `cause`). Caller options are spread after it.
 *
 * @example
 * ```ts ignore
 * import { connectNats, RECONNECT_POLICY } from "./connect.ts";
 * const nc = await connectNats({ ...RECONNECT_POLICY, servers: "nats://127.0.0.1:4222" });
 * ```
 */
export const RECONNECT_POLICY = {
  maxReconnectAttempts: -1,
  reconnectTimeWait: 500,
  reconnectJitter: 250,
  pingInterval: 10_000,
  noAsyncTraces: true,
} as const satisfies ConnectionOptions;

/** The transport a list of server URLs selects. */
export type NatsTransport = "tcp" | "websocket";

const WS_SCHEME = /^wss?:\/\//i;

/** Open connections per transport opened through {@linkcode connectNats}. */
const open: Record<NatsTransport, number> = { tcp: 0, websocket: 0 };

/**
 * The transport `servers` selects: `"websocket"` when every URL is `ws://` or
 * `wss://`, `"tcp"` when none is. A list that mixes them is a `TypeError`
 * (a nats.js connection has one transport for all its servers).
 *
 * @example
 * ```ts
 * import { transportOf } from "./connect.ts";
 * console.log(transportOf(["wss://nats.example.com"])); // "websocket"
 * ```
 */
export function transportOf(servers: string | readonly string[]): NatsTransport {
  const list = typeof servers === "string" ? servers.split(",") : servers;
  const ws = list.filter((u) => WS_SCHEME.test(u.trim()));
  if (ws.length === 0) return "tcp";
  if (ws.length === list.length) return "websocket";
  const tcp = list.filter((u) => !WS_SCHEME.test(u.trim()));
  throw new TypeError(
    `Cannot connect to NATS: "servers" mixes WebSocket (${ws.join(", ")}) and TCP (${
      tcp.join(", ")
    }) URLs; one connection uses one transport`,
  );
}

/**
 * The inbox prefix `nc` was opened with (`connectOptions.inboxPrefix`), or
 * `undefined` for nats.js's default `_INBOX`. nats.js keeps a connection's
 * options on it (`nc.options`, which its own JetStream client reads for the
 * same purpose), so a connection opened elsewhere and handed to kvedge as
 * `connection` still tells its prefix: a least-privilege identity may
 * subscribe to `<prefix>.>` only, and every subscription kvedge makes must
 * live there.
 *
 * @example
 * ```ts ignore
 * import { connectNats, inboxPrefixOf } from "./connect.ts";
 * const nc = await connectNats({ servers: "nats://127.0.0.1:4222", inboxPrefix: "_INBOX_edge" });
 * console.log(inboxPrefixOf(nc)); // "_INBOX_edge"
 * ```
 */
export function inboxPrefixOf(nc: NatsConnection): string | undefined {
  const prefix = (nc as { options?: { inboxPrefix?: unknown } }).options?.inboxPrefix;
  return typeof prefix === "string" && prefix !== "" ? prefix : undefined;
}

/**
 * Connects with the transport the `servers` URLs select (see
 * {@linkcode transportOf}). Over WebSocket, `wsFactory` in `options` supplies
 * the socket where the runtime has no global `WebSocket` or needs its own
 * (Cloudflare Workers). Throws `TypeError` for a mixed list, and when a
 * connection of the other transport opened here is still open;
 * `UnsupportedRuntimeError` when the runtime lacks what the transport needs
 * (see `assertRuntime`).
 *
 * @example
 * ```ts ignore
 * import { connectNats } from "./connect.ts";
 * const nc = await connectNats({ servers: ["ws://127.0.0.1:8080"] });
 * await nc.close();
 * ```
 */
export async function connectNats(options: ConnectNatsOptions): Promise<NatsConnection> {
  const servers = options.servers ?? [];
  const transport = transportOf(servers);
  const other: NatsTransport = transport === "tcp" ? "websocket" : "tcp";
  if (open[other] > 0) {
    throw new TypeError(
      `Cannot connect to NATS over ${transport === "tcp" ? "TCP" : "WebSocket"}: ${open[other]} ${
        other === "tcp" ? "TCP" : "WebSocket"
      } connection(s) are open in this process, ` +
        "and nats.js has one transport per process (their reconnects would use the wrong one)",
    );
  }
  assertRuntime("connect to NATS", {
    websocket: transport === "websocket",
    wsFactory: typeof options.wsFactory === "function",
  });
  // Counted from the start, so two concurrent opens of different transports cannot both pass.
  open[transport]++;
  let nc: NatsConnection;
  try {
    if (transport === "websocket") {
      nc = await wsconnect(options);
    } else {
      guardSocketResets();
      // Loaded on demand: it needs node:net, which isolates and browsers lack.
      const { connect } = await import("@nats-io/transport-node");
      nc = await connect(options as NodeConnectionOptions);
    }
  } catch (err) {
    open[transport]--;
    throw err;
  }
  nc.closed().then(() => open[transport]--, () => open[transport]--);
  return nc;
}
