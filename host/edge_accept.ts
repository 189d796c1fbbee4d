/**
 * The connection gate's accept loop, shared by the hand-off and the byte
 * pipe: it survives accept errors (sheds the idlest connection, backs off,
 * accepts again) and at the cap sheds the idlest connection or refuses the
 * newcomer with a 503.
 *
 * @module
 */
import { Backoff, delay } from "../src/async.ts";
import type { GatedServeOptions, GateStats } from "./edge_gate.ts";

const REFUSAL_BODY = JSON.stringify({
  type: "urn:kvedge:problem:unavailable",
  title: "Service unavailable",
  status: 503,
  detail: "too many connections; retry later",
  code: "unavailable",
});
const REFUSAL = new TextEncoder().encode(
  "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/problem+json\r\n" +
    `retry-after: 1\r\nconnection: close\r\ncontent-length: ${REFUSAL_BODY.length}\r\n\r\n` +
    REFUSAL_BODY,
);

/** What {@linkcode acceptLoop} needs from a gate. */
export interface AcceptGate<L> {
  stopping(): boolean;
  stats: GateStats;
  options: GatedServeOptions;
  /** Connections open now. */
  open(): number;
  /** The connection to shed for a newcomer, if any may go. */
  victim(): L | undefined;
  shed(link: L): void;
  /** Set TCP_NODELAY on accepted connections (the pipe; Deno.serve does it itself). */
  noDelay: boolean;
  /** Serves an accepted connection. */
  take(conn: Deno.TcpConn): void;
}

/**
 * The gate's accept loop: on an accept error (EMFILE and friends) it sheds
 * the idlest connection to free descriptors, backs off and accepts again —
 * it never gives up the listener; at the cap it sheds the idlest connection
 * or, if none may go, refuses the newcomer with a 503.
 */
export async function acceptLoop<L>(
  listener: Deno.TcpListener,
  gate: AcceptGate<L>,
): Promise<void> {
  const { stats, options } = gate;
  let refusing = 0;
  const refuse = async (conn: Deno.Conn): Promise<void> => {
    stats.refused++;
    options.onEvent?.({ type: "refused", open: gate.open() });
    refusing++;
    try {
      // A flood must not pile up sockets waiting to be told no: past a few
      // pending answers the refusal is a bare close.
      if (refusing <= 16) await conn.write(REFUSAL);
    } catch {
      // The client is gone already.
    } finally {
      refusing--;
      try {
        conn.close();
      } catch { /* closed */ }
    }
  };
  const backoff = new Backoff({ firstMs: 10, maxMs: 1000 });
  while (!gate.stopping()) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
      backoff.reset();
    } catch (err) {
      if (gate.stopping() || err instanceof Deno.errors.BadResource) break;
      stats.acceptErrors++;
      const v = gate.victim();
      if (v !== undefined) gate.shed(v);
      const retryInMs = backoff.next();
      options.onEvent?.({ type: "accept_error", error: err, retryInMs });
      await delay(retryInMs);
      continue;
    }
    stats.accepted++;
    if (gate.noDelay) {
      // Small responses go out at once, not after Nagle's delay.
      try {
        conn.setNoDelay(true);
      } catch { /* the client is gone */ }
    }
    if (gate.open() >= options.maxConnections) {
      const v = gate.victim();
      if (v === undefined) {
        void refuse(conn);
        continue;
      }
      gate.shed(v);
    }
    gate.take(conn);
  }
}
