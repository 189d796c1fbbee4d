/**
 * The connection gate with a byte pipe, for a Deno without
 * `serveHttpOnConnection` (or `pipe: true`): each accepted connection is
 * linked to a `Deno.serve` on a private Unix socket and its bytes passed both
 * ways; the gate sees request heads and activity in the bytes.
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
import { retry, settleWithin } from "../src/async.ts";

/** How long shutdown waits for in-flight requests before closing connections. */
const SHUTDOWN_GRACE_MS = 2_000;

const HEAD_END = [13, 10, 13, 10];

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

/** Why the gate closes a connection. */
type ShedReason = "capacity" | "header_timeout" | "idle_timeout";

/**
 * The `Deno.serve` behind the pipe, on a Unix socket in `dir`. Its accept
 * loop can meet EMFILE too, which ends it for good: its connections keep
 * being served, and new links go to a new socket ({@link path}).
 */
class InnerServers {
  readonly #dir: string;
  readonly #options: GatedServeOptions;
  readonly #stats: GateStats;
  readonly #stopping: () => boolean;
  readonly #servers = new Set<Deno.HttpServer>();
  #generation = 0;
  #path = "";

  /** `stopping`: the gate is shutting down, a server that ends is not replaced. */
  constructor(
    dir: string,
    gate: { options: GatedServeOptions; stats: GateStats; stopping: () => boolean },
  ) {
    this.#dir = dir;
    this.#options = gate.options;
    this.#stats = gate.stats;
    this.#stopping = gate.stopping;
  }

  /** The socket new links connect to. */
  get path(): string {
    return this.#path;
  }

  /** Starts a server on a new socket and makes it the one new links use. */
  async start(): Promise<void> {
    const next = `${this.#dir}/http${this.#generation++}.sock`;
    const ready = Promise.withResolvers<void>();
    const options = this.#options;
    const server = Deno.serve({
      path: next,
      onListen: () => ready.resolve(),
      ...(options.onError === undefined ? {} : { onError: options.onError }),
    }, (request) => options.handler(request));
    await ready.promise;
    this.#servers.add(server);
    this.#path = next;
    server.finished.then(() => this.#servers.delete(server), async (err) => {
      this.#servers.delete(server);
      if (this.#stopping()) return;
      this.#stats.acceptErrors++;
      await retry(() => this.start(), {
        after: err,
        firstMs: 50,
        maxMs: 2000,
        stopped: this.#stopping,
        onRetry: (error, retryInMs) =>
          options.onEvent?.({ type: "accept_error", error, retryInMs }),
      });
    });
  }

  /** In-flight requests finish, idle keep-alive connections close (call once stopping). */
  async shutdown(): Promise<void> {
    await Promise.all([...this.#servers].map((s) => s.shutdown().catch(() => {})));
  }
}

/** The gate with the pipe: for a Deno without `serveHttpOnConnection`. */
export async function servePiped(options: GatedServeOptions): Promise<GatedServer> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_edge_" });
  let stopping = false;
  const stats: GateStats = { open: 0, accepted: 0, refused: 0, shed: 0, acceptErrors: 0 };
  const inner = new InnerServers(dir, { options, stats, stopping: () => stopping });
  await inner.start();

  let listener: Deno.Listener<Deno.TcpConn, Deno.NetAddr>;
  try {
    listener = tcpListen(options);
  } catch (err) {
    stopping = true;
    await inner.shutdown();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    throw err;
  }
  const links = new Map<Link, Promise<void>>();
  const shed = (link: Link, reason: ShedReason) => {
    stats.shed++;
    options.onEvent?.({ type: "shed", reason });
    link.close();
  };
  const sweeper = setInterval(() => sweep(links.keys(), options, shed), sweepIntervalMs(options));

  const accepting = acceptLoop(listener, {
    stopping: () => stopping,
    stats,
    options,
    open: () => links.size,
    victim: () => idlest(links.keys()),
    shed: (link) => shed(link, "capacity"),
    noDelay: true,
    take(conn) {
      const link = new Link(conn);
      links.set(link, carry(link, inner.path).finally(() => links.delete(link)));
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
      await inner.shutdown();
      const drained = Promise.all(links.values());
      await settleWithin(drained, SHUTDOWN_GRACE_MS);
      for (const l of links.keys()) l.close();
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** One sweep: sheds the links past the header or idle timeout. */
function sweep(
  links: Iterable<Link>,
  options: GatedServeOptions,
  shed: (link: Link, reason: ShedReason) => void,
): void {
  const now = Date.now();
  for (const link of links) {
    if (!link.headSeen && now - link.openedAt > options.headerTimeoutMs) {
      shed(link, "header_timeout");
    } else if (now - link.lastActivity > options.idleTimeoutMs) shed(link, "idle_timeout");
  }
}

/** The connection idle the longest (header-less first), if idle ≥ 1 s. */
function idlest(links: Iterable<Link>): Link | undefined {
  const now = Date.now();
  let best: Link | undefined;
  for (const l of links) {
    if (now - l.lastActivity < 1000) continue;
    if (
      best === undefined || (!l.headSeen && best.headSeen) ||
      (l.headSeen === best.headSeen && l.lastActivity < best.lastActivity)
    ) best = l;
  }
  return best;
}

/** Connects `link` to the inner server at `path` and passes its bytes both ways until closed. */
async function carry(link: Link, path: string): Promise<void> {
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
