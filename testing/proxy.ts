/**
 * A loopback TCP proxy that a test can cut and restore: a real network fault
 * (connections reset, new ones refused) between a client and a nats-server,
 * without stopping the server. It forwards bytes, so it carries WebSocket as
 * well as NATS over TCP. Started with `{ frames: true }` (NATS over TCP only)
 * it also splits the NATS protocol into frames and can hold chosen ones back:
 * a watcher's requests or deliveries paused while everything else flows.
 *
 * @module
 */
import type { NatsTransport } from "../src/connect.ts";
import { suiteTransport } from "./transport.ts";
import { delay } from "../src/async.ts";

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
  /**
   * Holds back, in order, every frame `match` selects in either direction
   * (the rest flows past them) until the returned `release()`; needs
   * `{ frames: true }`. Frames held by several holds wait for all of them.
   */
  hold(match: (frame: Frame) => boolean): { release(): void };
  /**
   * Passes on, until the returned `release()`, the bytes `change` returns for
   * a frame instead of the frame's own (undefined: unchanged); needs
   * `{ frames: true }`. A server that says something else than it holds: a
   * replica out of step delivering another message at a sequence.
   */
  alter(change: (frame: Frame, bytes: Uint8Array) => Uint8Array | undefined): { release(): void };
  /** Stops listening and closes everything. */
  close(): Promise<void>;
}

/** One NATS protocol frame as the proxy saw it. */
export interface Frame {
  /** `"client"` (client to server) or `"server"` (server to client). */
  from: "client" | "server";
  /** The protocol operation, upper case: `PUB`, `HPUB`, `MSG`, `HMSG`, `SUB`, `PING`… */
  op: string;
  /** Subject of a PUB, HPUB, MSG, HMSG or SUB; "" otherwise. */
  subject: string;
  /** Reply subject of a PUB, HPUB, MSG or HMSG, if any. */
  reply?: string;
  /**
   * For a MSG or HMSG: the subject of the subscription it is delivered to (a
   * JetStream push consumer delivers the stream's subjects to its deliver
   * subject), as the connection's SUB said; "" if unknown.
   */
  subscription?: string;
}

/** Options of {@link startProxy}. */
export interface ProxyOptions {
  /** Split NATS-over-TCP traffic into frames, so that {@link Proxy.hold} works. Default false. */
  frames?: boolean;
}

/**
 * Starts a proxy on a free loopback port forwarding to `127.0.0.1:<targetPort>`;
 * `transport` picks the scheme of `url` (default: the suite's transport).
 */
export function startProxy(
  targetPort: number,
  transport: NatsTransport = suiteTransport(),
  options: ProxyOptions = {},
): Proxy {
  if (options.frames && transport !== "tcp") {
    throw new TypeError("Cannot start proxy: frames need NATS over TCP");
  }
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let isCut = false;
  let delayMs = 0;
  const traffic: Traffic = {
    open: new Set(),
    holds: new Set(),
    changes: new Set(),
    framers: new Set(),
    frames: options.frames ?? false,
    delayMs: () => delayMs,
  };
  const accepting = accept(listener, { targetPort, traffic, isCut: () => isCut }).catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  const cut = () => {
    isCut = true;
    for (const c of traffic.open) {
      try {
        c.close();
      } catch { /* already closed */ }
    }
    traffic.open.clear();
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
    hold: (match: (frame: Frame) => boolean) => {
      if (!options.frames) throw new TypeError("Cannot hold frames: start the proxy with frames");
      traffic.holds.add(match);
      return {
        release: () => {
          traffic.holds.delete(match);
          for (const f of traffic.framers) f.flushHeld();
        },
      };
    },
    alter: (change: Change) => {
      if (!options.frames) throw new TypeError("Cannot alter frames: start the proxy with frames");
      traffic.changes.add(change);
      return { release: () => void traffic.changes.delete(change) };
    },
    close,
    [Symbol.asyncDispose]: close,
  };
}

/** A replacement of a frame's bytes ({@link Proxy.alter}); undefined: unchanged. */
type Change = (frame: Frame, bytes: Uint8Array) => Uint8Array | undefined;

/** What the proxy's pipes share: the open connections, the holds, the changes, the delay. */
interface Traffic {
  open: Set<Deno.Conn>;
  holds: Set<(frame: Frame) => boolean>;
  changes: Set<Change>;
  framers: Set<Framer>;
  /** Split into frames ({@link ProxyOptions.frames}). */
  frames: boolean;
  delayMs: () => number;
}

/** Accepts clients until the listener closes, each linked to a new connection to the target. */
async function accept(
  listener: Deno.TcpListener,
  ctx: { targetPort: number; traffic: Traffic; isCut: () => boolean },
): Promise<void> {
  const { open } = ctx.traffic;
  for await (const client of listener) {
    if (ctx.isCut()) {
      client.close();
      continue;
    }
    try {
      const server = await Deno.connect({ hostname: "127.0.0.1", port: ctx.targetPort });
      // Latency, not Nagle: without it a small reply behind an unacknowledged
      // chunk waits for the peer's delayed ACK (measured: +20 ms per leader
      // get on an edge whose watcher was receiving, over a 20 ms link).
      client.setNoDelay(true);
      server.setNoDelay(true);
      open.add(client);
      open.add(server);
      const subs = new Map<string, string>(); // sid → subject, for this connection
      pipe(ctx.traffic, { from: client, to: server, side: "client", subs });
      pipe(ctx.traffic, { from: server, to: client, side: "server", subs });
    } catch {
      client.close();
    }
  }
}

/** Passes one direction's bytes on (through a {@link Framer} with frames) until either end closes. */
async function pipe(
  t: Traffic,
  p: { from: Deno.Conn; to: Deno.Conn; side: Frame["from"]; subs: Map<string, string> },
): Promise<void> {
  let framer: Framer | undefined;
  try {
    let readable: ReadableStream<Uint8Array> = p.from.readable;
    if (t.frames) {
      const altered = (frame: Frame, bytes: Uint8Array) => {
        for (const change of t.changes) bytes = change(frame, bytes) ?? bytes;
        return bytes;
      };
      framer = new Framer(p.side, (f) => [...t.holds].some((h) => h(f)), p.subs, altered);
      t.framers.add(framer);
      readable = readable.pipeThrough(framer.stream);
    }
    await readable.pipeThrough(delayed(t.delayMs)).pipeTo(p.to.writable);
  } catch {
    // reset by cut() or by the peer
  } finally {
    if (framer) t.framers.delete(framer);
    for (const c of [p.from, p.to]) {
      try {
        c.close();
      } catch { /* already closed */ }
      t.open.delete(c);
    }
  }
}

/** A frame held back, with its bytes. */
interface Held {
  frame: Frame;
  bytes: Uint8Array;
}

const CRLF = new Uint8Array([13, 10]);
const PAYLOAD_OPS = new Set(["PUB", "HPUB", "MSG", "HMSG"]);

/**
 * Splits one direction of a NATS connection into protocol frames and passes
 * them on, except those `isHeld` selects: kept in order until
 * {@link flushHeld} finds them no longer held.
 */
class Framer {
  readonly stream: TransformStream<Uint8Array, Uint8Array>;
  #buf = new Uint8Array(0);
  #held: Held[] = [];
  #controller: TransformStreamDefaultController<Uint8Array> | undefined;

  constructor(
    readonly side: Frame["from"],
    readonly isHeld: (frame: Frame) => boolean,
    readonly subs: Map<string, string>,
    readonly alter: (frame: Frame, bytes: Uint8Array) => Uint8Array = (_, b) => b,
  ) {
    this.stream = new TransformStream({
      start: (controller) => {
        this.#controller = controller;
      },
      transform: (chunk) => this.#push(chunk),
    });
  }

  /** Passes on the held frames no hold selects any more, in their order. */
  flushHeld(): void {
    const still: Held[] = [];
    for (const h of this.#held) {
      if (this.isHeld(h.frame) || still.some((k) => sameStream(k.frame, h.frame))) still.push(h);
      else this.#enqueue(h.bytes);
    }
    this.#held = still;
  }

  #enqueue(bytes: Uint8Array): void {
    try {
      this.#controller?.enqueue(bytes);
    } catch { /* the connection is gone */ }
  }

  #push(chunk: Uint8Array): void {
    const buf = new Uint8Array(this.#buf.length + chunk.length);
    buf.set(this.#buf);
    buf.set(chunk, this.#buf.length);
    let at = 0;
    while (true) {
      const eol = indexOf(buf, CRLF, at);
      if (eol < 0) break;
      const line = new TextDecoder().decode(buf.subarray(at, eol));
      const tokens = line.split(/[ \t]+/).filter((t) => t !== "");
      const op = (tokens[0] ?? "").toUpperCase();
      let end = eol + 2;
      if (PAYLOAD_OPS.has(op)) {
        end += Number(tokens[tokens.length - 1]) + 2;
        if (buf.length < end) break;
      }
      const frame: Frame = { from: this.side, op, subject: "" };
      if (PAYLOAD_OPS.has(op) || op === "SUB") frame.subject = tokens[1] ?? "";
      // SUB subj [queue] sid; MSG/HMSG subj sid …
      if (op === "SUB") this.subs.set(tokens[tokens.length - 1] ?? "", frame.subject);
      if (op === "MSG" || op === "HMSG") frame.subscription = this.subs.get(tokens[2] ?? "") ?? "";
      // PUB subj [reply] size; HPUB subj [reply] hdr size; MSG subj sid [reply] size;
      // HMSG subj sid [reply] hdr size.
      const replyAt = { PUB: 4, HPUB: 5, MSG: 5, HMSG: 6 }[op as "PUB"];
      if (replyAt !== undefined && tokens.length === replyAt) {
        frame.reply = tokens[op.startsWith("H") ? replyAt - 3 : replyAt - 2];
      }
      const bytes = this.alter(frame, buf.slice(at, end));
      if (this.#held.length > 0 && this.#held.some((h) => sameStream(h.frame, frame))) {
        // Keep per-subject order behind what is held for that subject.
        this.#held.push({ frame, bytes });
      } else if (this.isHeld(frame)) this.#held.push({ frame, bytes });
      else this.#enqueue(bytes);
      at = end;
    }
    this.#buf = buf.slice(at);
  }
}

/**
 * Whether two frames must keep their relative order: deliveries to one plain
 * subscription (a consumer's deliver subject), or messages on one subject
 * (the replies a wildcard request inbox receives are each their own).
 */
function sameStream(a: Frame, b: Frame): boolean {
  const key = (f: Frame) => {
    const sub = f.subscription ?? "";
    if (sub !== "" && !/[*>]/.test(sub)) return `to ${sub}`;
    return f.subject === "" ? "" : `on ${f.subject}`;
  };
  const k = key(a);
  return k !== "" && k === key(b);
}

function indexOf(buf: Uint8Array, needle: Uint8Array, from: number): number {
  for (let i = from; i + needle.length <= buf.length; i++) {
    if (buf[i] === needle[0] && buf[i + 1] === needle[1]) return i;
  }
  return -1;
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
        if (wait > 0) await delay(wait);
        controller.enqueue(chunk);
      }).catch(() => {});
    },
    flush: () => last,
  });
}
