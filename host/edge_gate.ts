/**
 * The connection gate's vocabulary, shared by the files that serve behind it
 * (`edge_listener.ts`, `edge_accept.ts`, `edge_handoff.ts`, `edge_pipe.ts`):
 * its options, the events it reports, its counters and a running server.
 * Types, and the one TCP listen of the gate ({@link tcpListen}): the serving
 * files import this instead of one another, so they form no import cycle
 * (`tests/unit/layout_test.ts`).
 *
 * @module
 */

/** Options of `serveGated` (`edge_listener.ts`). */
export interface GatedServeOptions {
  /** TCP address to listen on. */
  hostname: string;
  /** TCP port (0: any free port). */
  port: number;
  /** Most open client connections. Positive. */
  maxConnections: number;
  /**
   * A connection must send each complete request head within this, in ms:
   * from its opening, then (handed-off connections) from the end of the
   * previous response, so a keep-alive connection idle this long closes too.
   * The byte pipe bounds the first head only.
   */
  headerTimeoutMs: number;
  /** A connection with no bytes either way for this long is closed, in ms. */
  idleTimeoutMs: number;
  /**
   * Answers requests (the app's `fetch`); `info.remoteAddr` is the client's
   * address where the gate knows it (not through the byte pipe).
   */
  handler: (
    request: Request,
    info?: { remoteAddr: Deno.Addr },
  ) => Response | Promise<Response>;
  /** Renders an error a handler threw. */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Reports gate events (shed, refused, accept errors) for the log. */
  onEvent?: (event: GateEvent) => void;
  /**
   * Pass bytes through a private Unix socket even where connections can be
   * handed to `Deno.serve` (the fallback; about half the throughput).
   */
  pipe?: boolean;
  /**
   * Share the port with the other isolates of this process that listen on
   * the same `hostname:port` with `shared: true` (the edge worker's
   * `KVEDGE_WORKERS`): one listening socket, each isolate accepting from it.
   * See {@link tcpListen}.
   */
  shared?: boolean;
}

/** Something the gate did that an operator may want to see. */
export type GateEvent =
  | { type: "accept_error"; error: unknown; retryInMs: number }
  | { type: "refused"; open: number }
  | { type: "shed"; reason: "capacity" | "header_timeout" | "idle_timeout" };

/** Counters of the gate. */
export interface GateStats {
  /** Client connections open now. */
  open: number;
  /** Connections accepted since start. */
  accepted: number;
  /** Connections refused at the cap (503). */
  refused: number;
  /** Connections closed by the gate: shed at the cap or timed out. */
  shed: number;
  /** Accept errors survived. */
  acceptErrors: number;
}

/** A running gated server. */
export interface GatedServer {
  /** The TCP address it listens on. */
  addr: Deno.NetAddr;
  /** Counters. */
  stats(): GateStats;
  /** Stops accepting, lets in-flight requests finish, closes every connection. */
  shutdown(): Promise<void>;
}

/**
 * Listens on TCP for the gate. With `shared`, through Deno's load-balanced
 * listener (`Deno.listen`'s `loadBalanced` option, what `deno serve
 * --parallel` uses; not in Deno's type declarations): the first isolate of
 * the process to ask for an address binds it, every later one asking for the
 * same `hostname:port` (0 included) gets a copy of that socket, and whichever
 * isolate accepts first gets the connection. Unlike `reusePort` it needs no `--unstable-net`, and a second process
 * on the port still fails with `AddrInUse`.
 *
 * @example
 * ```ts ignore
 * import { tcpListen } from "./edge_gate.ts";
 * const a = tcpListen({ hostname: "127.0.0.1", port: 0, shared: true });
 * const b = tcpListen({ hostname: "127.0.0.1", port: 0, shared: true }); // in another Worker
 * ```
 */
export function tcpListen(
  options: { hostname: string; port: number; shared?: boolean },
): Deno.TcpListener {
  const { hostname, port } = options;
  return options.shared === true
    ? Deno.listen({ hostname, port, loadBalanced: true } as Deno.TcpListenOptions)
    : Deno.listen({ hostname, port });
}

/**
 * How often the gate sweeps its connections for timeouts: a fraction of the
 * shortest timeout (one sweep, not a timer per connection), from 50 ms to 1 s.
 *
 * @example
 * ```ts ignore
 * sweepIntervalMs({ headerTimeoutMs: 10_000, idleTimeoutMs: 60_000 }); // 1000
 * ```
 */
export function sweepIntervalMs(
  options: Pick<GatedServeOptions, "headerTimeoutMs" | "idleTimeoutMs">,
): number {
  return Math.max(50, Math.min(1000, options.headerTimeoutMs / 4, options.idleTimeoutMs / 4));
}
