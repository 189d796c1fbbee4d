/**
 * The edge worker's TCP front: a connection gate in front of `Deno.serve`.
 *
 * `Deno.serve` (Deno 2.9) has no connection cap and no idle or header
 * timeout, and an accept error such as `EMFILE` ends its accept loop for
 * good (the worker then exits, taking an embedded nats-server with it). So
 * the worker accepts TCP connections itself and hands each one to
 * `Deno.serve`'s native per-connection server (`serveHttpOnConnection`, the
 * function `Deno.serve` runs for every connection it accepts, reached through
 * `Deno[Deno.internal]`): HTTP is parsed and written in Rust as with
 * `Deno.serve`, and the gate sees each request start and complete. The gate:
 *
 * - caps open connections; at the cap it sheds the connection idle the
 *   longest (request-less ones first), or refuses the newcomer with a 503
 *   when every connection is busy;
 * - closes a connection that has not sent a complete request head within
 *   `headerTimeoutMs`, and one with no request in progress for
 *   `idleTimeoutMs`;
 * - survives accept errors (too many open files, …): it logs them, backs off
 *   and accepts again.
 *
 * Where the runtime lacks `serveHttpOnConnection` (or with `pipe: true`) the
 * gate passes bytes instead, to a `Deno.serve` on a private Unix socket: the
 * same promises at about half the throughput and three descriptors per
 * connection instead of one.
 *
 * This file holds the two ways to serve ({@link serveGated},
 * {@link serveDirect}); the gate's options, events and counters are in
 * `edge_gate.ts` (shared with the files below); the accept loop is in
 * `edge_accept.ts`, the hand-off in `edge_handoff.ts`, the byte pipe in
 * `edge_pipe.ts`, and the open-file limit that sizes the cap in
 * `open_files.ts`.
 *
 * @module
 */
import { retry } from "../src/async.ts";
import type { GatedServeOptions, GatedServer, GateStats } from "./edge_gate.ts";
import { servePiped } from "./edge_pipe.ts";
import { nativeServeOnConnection, serveHandedOff } from "./edge_handoff.ts";

export type { GatedServeOptions, GatedServer, GateEvent, GateStats } from "./edge_gate.ts";

/**
 * Serves `handler` behind the connection gate (see the module doc).
 *
 * @example
 * ```ts ignore
 * import { serveGated } from "./edge_listener.ts";
 * const server = await serveGated({
 *   hostname: "127.0.0.1", port: 0, maxConnections: 100, headerTimeoutMs: 10_000,
 *   idleTimeoutMs: 60_000, handler: () => new Response("ok"),
 * });
 * await server.shutdown();
 * ```
 */
export function serveGated(options: GatedServeOptions): Promise<GatedServer> {
  const serveOn = nativeServeOnConnection();
  return serveOn === undefined || options.pipe === true
    ? servePiped(options)
    : Promise.resolve().then(() => serveHandedOff(options, serveOn));
}

/** Options of {@link serveDirect}: those of {@link serveGated} that apply without a gate. */
export type DirectServeOptions = Omit<
  GatedServeOptions,
  "maxConnections" | "headerTimeoutMs" | "idleTimeoutMs"
>;

/**
 * Serves `handler` with `Deno.serve` on the port itself: no extra hop, but no
 * connection cap and no idle or header timeout (for edges behind a proxy
 * that bounds connections). It still survives accept errors: when
 * `Deno.serve`'s accept loop ends on one, it listens again on the same port.
 *
 * @example
 * ```ts ignore
 * import { serveDirect } from "./edge_listener.ts";
 * const server = await serveDirect({ hostname: "127.0.0.1", port: 0, handler: () => new Response("ok") });
 * await server.shutdown();
 * ```
 */
export async function serveDirect(options: DirectServeOptions): Promise<GatedServer> {
  const stats: GateStats = { open: 0, accepted: 0, refused: 0, shed: 0, acceptErrors: 0 };
  let stopping = false;
  const start = async (port: number): Promise<Deno.HttpServer<Deno.NetAddr>> => {
    const ready = Promise.withResolvers<void>();
    const server = Deno.serve({
      hostname: options.hostname,
      port,
      onListen: () => ready.resolve(),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    }, (request, info) => options.handler(request, info));
    await ready.promise;
    return server;
  };
  let current = await start(options.port);
  const addr = current.addr;
  const watch = (server: Deno.HttpServer<Deno.NetAddr>) => {
    server.finished.catch(async (err) => {
      if (stopping) return;
      stats.acceptErrors++;
      const restarted = await retry(() => start(addr.port), {
        after: err,
        firstMs: 100,
        maxMs: 5000,
        stopped: () => stopping,
        onRetry: (error, retryInMs) =>
          options.onEvent?.({ type: "accept_error", error, retryInMs }),
      });
      if (restarted === undefined) return;
      current = restarted;
      watch(current);
    });
  };
  watch(current);
  return {
    addr,
    stats: () => ({ ...stats }),
    async shutdown() {
      stopping = true;
      await current.shutdown().catch(() => {});
    },
  };
}
