/**
 * The connection gate without a pipe: each accepted connection is handed to
 * `Deno.serve`'s native per-connection server (`serveHttpOnConnection`,
 * reached through `Deno[Deno.internal]`), and the gate sees each request
 * start and complete.
 *
 * @module
 */
import {
  type GatedServeOptions,
  type GatedServer,
  type GateStats,
  sweepIntervalMs,
  tcpListen,
} from "./edge_gate.ts";
import { acceptLoop } from "./edge_accept.ts";
import { settleWithin } from "../src/async.ts";

/** How long shutdown waits for in-flight requests before closing connections. */
const SHUTDOWN_GRACE_MS = 2_000;

/** The per-connection server `serveHttpOnConnection` returns. */
interface ConnectionServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

/** Deno's internal `serveHttpOnConnection` (what `Deno.serve` runs per connection). */
export type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response>,
  onError: (error: unknown) => Response | Promise<Response>,
  onListen: () => void,
) => ConnectionServer;

/**
 * `serveHttpOnConnection` from `Deno[Deno.internal]` (Deno 2.9), if this
 * runtime has it: it serves one accepted connection with `Deno.serve`'s native
 * HTTP machinery. `KVEDGE_CONNECTION_GATE=pipe` (read by the worker) or a Deno
 * without it falls back to the byte pipe.
 */
export function nativeServeOnConnection(): ServeOnConnection | undefined {
  try {
    // deno-lint-ignore no-explicit-any
    const d = Deno as any;
    const fn = d.internal === undefined ? undefined : d[d.internal]?.serveHttpOnConnection;
    return typeof fn === "function" && fn.length === 5 ? fn as ServeOnConnection : undefined;
  } catch {
    return undefined;
  }
}

class HandedOff {
  /** Sweep tick of the last request start or end (a coarse clock: no `Date.now()` per request). */
  lastTick: number;
  /** Requests started: 0 means no complete request head yet. */
  requests = 0;
  /** Requests whose response is not fully sent yet. */
  active = 0;
  /** Requests with a body whose handler has not answered yet (a body may be trickling in). */
  answering = 0;
  closed = false;
  readonly abort = new AbortController();
  server: ConnectionServer | undefined;

  constructor(readonly openedTick: number) {
    this.lastTick = openedTick;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.abort.abort();
  }
}

/** Why the gate closes a connection. */
type ShedReason = "capacity" | "header_timeout" | "idle_timeout";

/**
 * The gate without a pipe: the worker accepts each TCP connection itself
 * (cap, shedding, timeouts, accept errors) and hands it to `Deno.serve`'s
 * native per-connection server, which reads and writes the socket in Rust.
 * Activity is seen per request (start and `info.completed`), not per byte.
 */
export function serveHandedOff(
  options: GatedServeOptions,
  serveOn: ServeOnConnection,
): GatedServer {
  const listener = tcpListen(options);
  const stats: GateStats = { open: 0, accepted: 0, refused: 0, shed: 0, acceptErrors: 0 };
  const links = new Set<HandedOff>();
  const onError = options.onError ?? ((error: unknown) => {
    void error;
    return new Response("Internal Server Error", { status: 500 });
  });
  let stopping = false;
  const sweepMs = sweepIntervalMs(options);
  // Time in sweep ticks; a link's age is known to within one tick.
  let tick = 0;
  const ticks = (ms: number) => Math.ceil(ms / sweepMs);
  const limits = { header: ticks(options.headerTimeoutMs), idle: ticks(options.idleTimeoutMs) };
  const shed = (link: HandedOff, reason: ShedReason) => {
    stats.shed++;
    options.onEvent?.({ type: "shed", reason });
    link.close();
  };
  const sweeper = setInterval(() => sweep(links, ++tick, limits, shed), sweepMs);

  function handOff(conn: Deno.TcpConn): void {
    const link = new HandedOff(tick);
    links.add(link);
    try {
      link.server = serveOn(
        conn,
        link.abort.signal,
        watched(link, options, () => tick),
        onError,
        () => {},
      );
    } catch {
      links.delete(link);
      try {
        conn.close();
      } catch { /* closed */ }
      return;
    }
    link.server.finished.then(() => links.delete(link), () => links.delete(link));
  }

  const accepting = acceptLoop(listener, {
    stopping: () => stopping,
    stats,
    options,
    open: () => links.size,
    victim: () => idlest(links, tick - ticks(1000)),
    shed: (link) => shed(link, "capacity"),
    noDelay: false,
    take: handOff,
  });

  return {
    addr: listener.addr,
    stats: () => ({ ...stats, open: links.size }),
    async shutdown() {
      stopping = true;
      try {
        listener.close();
      } catch { /* closed */ }
      await accepting;
      clearInterval(sweeper);
      // In-flight requests finish; idle keep-alive connections close.
      const drained = Promise.all(
        [...links].map((l) => l.server?.shutdown().catch(() => {})),
      );
      await settleWithin(drained, SHUTDOWN_GRACE_MS);
      for (const l of links) l.close();
    },
  };
}

/** One sweep at `tick`: sheds the links past a timeout (`limits` in ticks). */
function sweep(
  links: Set<HandedOff>,
  tick: number,
  limits: { header: number; idle: number },
  shed: (link: HandedOff, reason: ShedReason) => void,
): void {
  for (const link of links) {
    if (link.active > 0) {
      // A response being streamed (a watch) is not idle; a request whose
      // body or answer has not come for idleTimeoutMs is.
      if (link.answering > 0 && tick - link.lastTick > limits.idle) shed(link, "idle_timeout");
      continue;
    }
    // Every request head, not only the first, must arrive within
    // headerTimeoutMs: counted from the open, then from the end of the
    // previous response. Rust reads the head, so a head trickled in byte by
    // byte and an idle keep-alive connection look alike here: both close.
    const since = link.requests === 0 ? link.openedTick : link.lastTick;
    if (tick - since > limits.header) shed(link, "header_timeout");
    else if (tick - link.lastTick > limits.idle) shed(link, "idle_timeout");
  }
}

/** The connection idle the longest (request-less first), if idle since before `recent`. */
function idlest(links: Set<HandedOff>, recent: number): HandedOff | undefined {
  let best: HandedOff | undefined;
  for (const l of links) {
    if (l.active > 0 || l.lastTick > recent) continue;
    if (
      best === undefined || (l.requests === 0 && best.requests > 0) ||
      ((l.requests === 0) === (best.requests === 0) && l.lastTick < best.lastTick)
    ) best = l;
  }
  return best;
}

/** `options.handler`, noting on `link` each request's start, answer and end (at `now()` ticks). */
function watched(
  link: HandedOff,
  options: GatedServeOptions,
  now: () => number,
): (request: Request, info: Deno.ServeHandlerInfo) => Response | Promise<Response> {
  const done = () => {
    link.active--;
    link.lastTick = now();
  };
  const answered = () => {
    link.answering--;
    link.lastTick = now();
  };
  return (request, info) => {
    link.requests++;
    link.active++;
    link.lastTick = now();
    info.completed.then(done, done);
    if (request.method === "GET" || request.method === "HEAD") {
      return options.handler(request, info);
    }
    // A request with a body: the handler answers once it has read it, so a
    // body that stops arriving shows as a handler that does not answer.
    link.answering++;
    const response = Promise.resolve(options.handler(request, info));
    response.then(answered, answered);
    return response;
  };
}
