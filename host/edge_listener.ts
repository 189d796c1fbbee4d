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
 * connection instead of one. {@link raiseOpenFileLimit} and
 * {@link connectionBudget} size the cap from the process's open-file limit.
 *
 * @module
 */

/** Options of {@link serveGated}. */
export interface GatedServeOptions {
  /** TCP address to listen on. */
  hostname: string;
  /** TCP port (0: any free port). */
  port: number;
  /** Most open client connections. Positive. */
  maxConnections: number;
  /** A new connection must send a complete request head within this, in ms. */
  headerTimeoutMs: number;
  /** A connection with no bytes either way for this long is closed, in ms. */
  idleTimeoutMs: number;
  /** Answers requests (the app's `fetch`). */
  handler: (request: Request) => Response | Promise<Response>;
  /** Renders an error a handler threw. */
  onError?: (error: unknown) => Response | Promise<Response>;
  /** Reports gate events (shed, refused, accept errors) for the log. */
  onEvent?: (event: GateEvent) => void;
  /**
   * Pass bytes through a private Unix socket even where connections can be
   * handed to `Deno.serve` (the fallback; about half the throughput).
   */
  pipe?: boolean;
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

const HEAD_END = [13, 10, 13, 10];
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

class Link {
  lastActivity = Date.now();
  readonly openedAt = Date.now();
  headSeen = false;
  #matched = 0;
  closed = false;
  upstream: Deno.Conn | undefined;

  constructor(readonly client: Deno.Conn) {}

  /** Notes bytes from the client; true once a request head has ended. */
  sawClientBytes(bytes: Uint8Array): void {
    this.lastActivity = Date.now();
    if (this.headSeen) return;
    for (const b of bytes) {
      this.#matched = b === HEAD_END[this.#matched] ? this.#matched + 1 : b === 13 ? 1 : 0;
      if (this.#matched === 4) {
        this.headSeen = true;
        return;
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const c of [this.client, this.upstream]) {
      try {
        c?.close();
      } catch {
        // Already closed.
      }
    }
  }
}

async function pump(
  from: Deno.Conn,
  to: Deno.Conn,
  link: Link,
  fromClient: boolean,
): Promise<void> {
  const buf = new Uint8Array(64 * 1024);
  try {
    for (;;) {
      const n = await from.read(buf);
      if (n === null) break;
      const chunk = buf.subarray(0, n);
      if (fromClient) link.sawClientBytes(chunk);
      else link.lastActivity = Date.now();
      for (let at = 0; at < n;) at += await to.write(chunk.subarray(at));
    }
    // Half-close: a client that sent its request and shut its side still
    // gets the answer.
    if (fromClient) await to.closeWrite().catch(() => {});
    else link.close();
  } catch {
    link.close();
  }
}

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

/** The gate with the pipe: for a Deno without `serveHttpOnConnection`. */
async function servePiped(options: GatedServeOptions): Promise<GatedServer> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_edge_" });
  let generation = 0;
  let path = "";
  let stopping = false;
  const innerServers = new Set<Deno.HttpServer>();
  const startInner = async (): Promise<void> => {
    const next = `${dir}/http${generation++}.sock`;
    const ready = Promise.withResolvers<void>();
    const server = Deno.serve({
      path: next,
      onListen: () => ready.resolve(),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    }, options.handler);
    await ready.promise;
    innerServers.add(server);
    path = next;
    // The inner accept loop can meet EMFILE too, which ends it for good:
    // its connections keep being served, new links go to a new socket.
    server.finished.then(() => innerServers.delete(server), async (err) => {
      innerServers.delete(server);
      if (stopping) return;
      stats.acceptErrors++;
      for (let retryInMs = 50;; retryInMs = Math.min(2000, retryInMs * 2)) {
        options.onEvent?.({ type: "accept_error", error: err, retryInMs });
        await new Promise((r) => setTimeout(r, retryInMs));
        if (stopping) return;
        try {
          await startInner();
          return;
        } catch (e) {
          err = e;
        }
      }
    });
  };
  const stats: GateStats = { open: 0, accepted: 0, refused: 0, shed: 0, acceptErrors: 0 };
  await startInner();

  let listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  try {
    listener = Deno.listen({ hostname: options.hostname, port: options.port });
  } catch (err) {
    stopping = true;
    for (const inner of innerServers) await inner.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  const links = new Map<Link, Promise<void>>();

  const shed = (link: Link, reason: "capacity" | "header_timeout" | "idle_timeout") => {
    stats.shed++;
    options.onEvent?.({ type: "shed", reason });
    link.close();
  };

  // One sweep a fraction of the shortest timeout, not a timer per connection.
  const sweepMs = Math.max(
    50,
    Math.min(1000, options.headerTimeoutMs / 4, options.idleTimeoutMs / 4),
  );
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const link of links.keys()) {
      if (!link.headSeen && now - link.openedAt > options.headerTimeoutMs) {
        shed(link, "header_timeout");
      } else if (now - link.lastActivity > options.idleTimeoutMs) shed(link, "idle_timeout");
    }
  }, sweepMs);

  /** The connection idle the longest (header-less first), if idle ≥ 1 s. */
  function victim(): Link | undefined {
    const now = Date.now();
    let best: Link | undefined;
    for (const l of links.keys()) {
      if (now - l.lastActivity < 1000) continue;
      if (
        best === undefined || (!l.headSeen && best.headSeen) ||
        (l.headSeen === best.headSeen && l.lastActivity < best.lastActivity)
      ) best = l;
    }
    return best;
  }

  async function handle(link: Link): Promise<void> {
    try {
      link.upstream = await Deno.connect({ transport: "unix", path });
    } catch {
      link.close();
      return;
    }
    if (link.closed) {
      link.upstream.close();
      return;
    }
    await Promise.all([
      pump(link.client, link.upstream, link, true),
      pump(link.upstream, link.client, link, false),
    ]);
    link.close();
  }

  const accepting = acceptLoop(listener, {
    stopping: () => stopping,
    stats,
    options,
    open: () => links.size,
    victim,
    shed: (link) => shed(link, "capacity"),
    noDelay: true,
    take(conn) {
      const link = new Link(conn);
      links.set(link, handle(link).finally(() => links.delete(link)));
    },
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
      // In-flight requests finish; idle keep-alive connections close, which
      // ends their links once their last bytes are passed on.
      await Promise.all([...innerServers].map((s) => s.shutdown().catch(() => {})));
      const drained = Promise.all(links.values());
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      for (const l of links.keys()) l.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** What {@linkcode acceptLoop} needs from a gate. */
interface AcceptGate<L> {
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
async function acceptLoop<L>(listener: Deno.TcpListener, gate: AcceptGate<L>): Promise<void> {
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
  let backoffMs = 0;
  while (!gate.stopping()) {
    let conn: Deno.TcpConn;
    try {
      conn = await listener.accept();
      backoffMs = 0;
    } catch (err) {
      if (gate.stopping() || err instanceof Deno.errors.BadResource) break;
      stats.acceptErrors++;
      const v = gate.victim();
      if (v !== undefined) gate.shed(v);
      backoffMs = Math.min(1000, Math.max(10, backoffMs * 2));
      options.onEvent?.({ type: "accept_error", error: err, retryInMs: backoffMs });
      await new Promise((r) => setTimeout(r, backoffMs));
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

/** The per-connection server `serveHttpOnConnection` returns. */
interface ConnectionServer {
  finished: Promise<void>;
  shutdown(): Promise<void>;
}

/** Deno's internal `serveHttpOnConnection` (what `Deno.serve` runs per connection). */
type ServeOnConnection = (
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

/**
 * The gate without a pipe: the worker accepts each TCP connection itself
 * (cap, shedding, timeouts, accept errors) and hands it to `Deno.serve`'s
 * native per-connection server, which reads and writes the socket in Rust.
 * Activity is seen per request (start and `info.completed`), not per byte.
 */
function serveHandedOff(
  options: GatedServeOptions,
  serveOn: ServeOnConnection,
): GatedServer {
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const stats: GateStats = { open: 0, accepted: 0, refused: 0, shed: 0, acceptErrors: 0 };
  const links = new Set<HandedOff>();
  const onError = options.onError ?? ((error: unknown) => {
    void error;
    return new Response("Internal Server Error", { status: 500 });
  });
  let stopping = false;
  const sweepMs = Math.max(
    50,
    Math.min(1000, options.headerTimeoutMs / 4, options.idleTimeoutMs / 4),
  );
  // Time in sweep ticks; a link's age is known to within one tick.
  let tick = 0;
  const ticks = (ms: number) => Math.ceil(ms / sweepMs);

  const shed = (link: HandedOff, reason: "capacity" | "header_timeout" | "idle_timeout") => {
    stats.shed++;
    options.onEvent?.({ type: "shed", reason });
    link.close();
  };

  const sweeper = setInterval(() => {
    tick++;
    for (const link of links) {
      if (link.active > 0) {
        // A response being streamed (a watch) is not idle; a request whose
        // body or answer has not come for idleTimeoutMs is.
        if (link.answering > 0 && tick - link.lastTick > ticks(options.idleTimeoutMs)) {
          shed(link, "idle_timeout");
        }
        continue;
      }
      if (link.requests === 0 && tick - link.openedTick > ticks(options.headerTimeoutMs)) {
        shed(link, "header_timeout");
      } else if (tick - link.lastTick > ticks(options.idleTimeoutMs)) shed(link, "idle_timeout");
    }
  }, sweepMs);

  /** The connection idle the longest (request-less first), if idle ≥ 1 s. */
  function victim(): HandedOff | undefined {
    const recent = tick - ticks(1000);
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

  function handOff(conn: Deno.TcpConn): void {
    const link = new HandedOff(tick);
    const done = () => {
      link.active--;
      link.lastTick = tick;
    };
    const answered = () => {
      link.answering--;
      link.lastTick = tick;
    };
    const handler = (request: Request, info: Deno.ServeHandlerInfo) => {
      link.requests++;
      link.active++;
      link.lastTick = tick;
      info.completed.then(done, done);
      if (request.method === "GET" || request.method === "HEAD") return options.handler(request);
      // A request with a body: the handler answers once it has read it, so a
      // body that stops arriving shows as a handler that does not answer.
      link.answering++;
      const response = Promise.resolve(options.handler(request));
      response.then(answered, answered);
      return response;
    };
    links.add(link);
    try {
      link.server = serveOn(conn, link.abort.signal, handler, onError, () => {});
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
    victim,
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
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([drained, new Promise((r) => (timer = setTimeout(r, 2000)))]);
      clearTimeout(timer);
      for (const l of links) l.close();
    },
  };
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
    }, options.handler);
    await ready.promise;
    return server;
  };
  let current = await start(options.port);
  const addr = current.addr;
  const watch = (server: Deno.HttpServer<Deno.NetAddr>) => {
    server.finished.catch(async (err) => {
      if (stopping) return;
      stats.acceptErrors++;
      let retryInMs = 100;
      for (;;) {
        options.onEvent?.({ type: "accept_error", error: err, retryInMs });
        await new Promise((r) => setTimeout(r, retryInMs));
        if (stopping) return;
        try {
          current = await start(addr.port);
          watch(current);
          return;
        } catch (e) {
          err = e;
          retryInMs = Math.min(5000, retryInMs * 2);
        }
      }
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

/**
 * The process's open-file limits, from `/proc/self/limits` (Linux); `undefined`
 * elsewhere.
 */
export function openFileLimit(): { soft: number; hard: number } | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/self/limits");
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    if (m === null) return undefined;
    const n = (s: string) => (s === "unlimited" ? Number.MAX_SAFE_INTEGER : Number(s));
    return { soft: n(m[1]!), hard: n(m[2]!) };
  } catch {
    return undefined;
  }
}

/**
 * Raises the soft open-file limit to the hard one with `prlimit` (util-linux)
 * on this process, so that connections, not an accident of the shell's
 * `ulimit -n`, set the cap. Returns the limits after the attempt and why it
 * failed, if it did.
 */
export async function raiseOpenFileLimit(): Promise<
  { soft: number; hard: number; error?: string } | undefined
> {
  const before = openFileLimit();
  if (before === undefined || before.soft >= before.hard) return before;
  // Beyond ~1M descriptors nothing is gained and some kernels refuse.
  const target = Math.min(before.hard, 1 << 20);
  try {
    const out = await new Deno.Command("prlimit", {
      args: ["--pid", String(Deno.pid), `--nofile=${target}:${before.hard}`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!out.success) {
      return { ...before, error: new TextDecoder().decode(out.stderr).trim() || "prlimit failed" };
    }
  } catch (err) {
    return { ...before, error: `prlimit: ${err instanceof Error ? err.message : String(err)}` };
  }
  return openFileLimit() ?? before;
}

/**
 * Open files one client connection costs: its socket when connections are
 * handed to `Deno.serve`; three (client socket and both ends of the Unix
 * socket) for the byte pipe.
 */
export function descriptorsPerConnection(pipe = false): number {
  return pipe || nativeServeOnConnection() === undefined ? 3 : 1;
}

/**
 * How many client connections fit in `softLimit` open files, at
 * `perConnection` descriptors each, after `reserve` for NATS, files and the
 * runtime.
 *
 * @example
 * ```ts
 * import { connectionBudget } from "./edge_listener.ts";
 * console.log(connectionBudget(1024, 128, 1)); // 896
 * console.log(connectionBudget(1024, 128, 3)); // 298
 * ```
 */
export function connectionBudget(
  softLimit: number,
  reserve = 128,
  perConnection: number = descriptorsPerConnection(),
): number {
  return Math.max(1, Math.floor((softLimit - reserve) / perConnection));
}
