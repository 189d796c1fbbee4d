/**
 * Free loopback ports for servers started on the fly (`nats-server`, test
 * HTTP servers).
 *
 * @module
 */

/**
 * Picks a free TCP port on `host` by binding port 0 and releasing it. Another
 * process may take it before it is used; {@linkcode startNatsServer} retries
 * when that happens.
 *
 * @example
 * ```ts
 * import { freePort } from "./free_port.ts";
 * const port = freePort();
 * console.log(port > 0);
 * ```
 */
export function freePort(host = "127.0.0.1"): number {
  const listener = Deno.listen({ hostname: host, port: 0, transport: "tcp" });
  try {
    return (listener.addr as Deno.NetAddr).port;
  } finally {
    listener.close();
  }
}
