/**
 * Whether the WebSocket a NATS connection runs on may be used by the request
 * at hand. Cloudflare's workerd binds every I/O object to the request that
 * created it: a socket opened while answering one request throws "Cannot
 * perform I/O on behalf of a different request" when another request sends on
 * it. nats.js swallows errors of its WebSocket `send` (it expects a dead socket
 * to show up on read), so without this a refused send shows only as a timeout,
 * for every later request of the isolate. This wraps the connection's socket
 * factory, records refused sends, and answers {@linkcode RequestBoundSocket.usable}
 * by reading the socket's state, which workerd refuses synchronously too:
 * before the request has sent anything, and without any I/O.
 *
 * @module
 */
import type { ConnectionOptions, WsSocketFactory } from "@nats-io/nats-core";

/** workerd's message for I/O on an object that another request created. */
const CROSS_REQUEST = /on behalf of a different request/i;

/** Whether `err` is a runtime's refusal of I/O across requests. */
export function isCrossRequestRefusal(err: unknown): boolean {
  return err instanceof Error && CROSS_REQUEST.test(err.message);
}

/**
 * The sockets of one NATS connection, watched for refused cross-request I/O.
 *
 * @example
 * ```ts ignore
 * import { RequestBoundSocket } from "./request_bound_socket.ts";
 * import { wsconnect } from "@nats-io/nats-core";
 * const watch = new RequestBoundSocket();
 * const nc = await wsconnect({ servers: "ws://127.0.0.1:8080", wsFactory: watch.factory() });
 * if (!watch.usable()) console.log("opened by another request:", watch.refusal());
 * ```
 */
export class RequestBoundSocket {
  #socket: WebSocket | undefined;
  #refusal: unknown;
  #onActivity: (() => void) | undefined;

  /**
   * A socket factory for nats.js's `wsFactory`: `inner`'s socket (default: the
   * global `WebSocket`), with its `send` watched.
   */
  factory(inner?: WsSocketFactory): WsSocketFactory {
    return async (url: string, options: ConnectionOptions) => {
      const made = inner === undefined
        ? { socket: new WebSocket(url), encrypted: /^wss:/i.test(url) }
        : await inner(url, options);
      this.#watch(made.socket);
      return made;
    };
  }

  /**
   * Whether the request running now may use the connection's socket. workerd
   * refuses even reading a property of another request's socket, so this reads
   * `readyState`: no frame is sent (a probe frame ahead of every request costs
   * a delayed ACK, ~40 ms, where Nagle's algorithm holds the request back).
   * `true` when there is no socket yet. A send refused earlier makes it `false`
   * for good.
   */
  usable(): boolean {
    if (this.#refusal !== undefined) return false;
    const socket = this.#socket;
    if (socket === undefined) return true;
    try {
      void socket.readyState;
    } catch (err) {
      if (isCrossRequestRefusal(err)) this.#refusal = err;
    }
    return this.#refusal === undefined;
  }

  /** The runtime's error for the first refused send, if any. */
  refusal(): unknown {
    return this.#refusal;
  }

  /**
   * Calls `callback` once, on the next message the socket receives. Such an
   * event runs on behalf of the request that owns the socket, the one context
   * in which the connection can still be closed.
   */
  onNextActivity(callback: () => void): void {
    this.#onActivity = callback;
  }

  #watch(socket: WebSocket): void {
    this.#socket = socket;
    const send = socket.send.bind(socket);
    // An own property shadows the prototype's: nats.js calls this one.
    socket.send = (data) => {
      try {
        send(data);
      } catch (err) {
        if (isCrossRequestRefusal(err)) this.#refusal ??= err;
        throw err;
      }
    };
    socket.addEventListener("message", () => {
      const callback = this.#onActivity;
      if (callback === undefined) return;
      this.#onActivity = undefined;
      callback();
    });
  }
}
