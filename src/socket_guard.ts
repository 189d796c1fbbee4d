/**
 * A guard against a known crash of `@nats-io/transport-node` 3.x under Deno:
 * when a server dies, the client may remove a socket's listeners before the
 * pending read fails, so the `read ECONNRESET` error has no listener and
 * becomes an uncaught exception that would kill the process. The client
 * reconnects on its own either way, so exactly that error is swallowed.
 *
 * @module
 */

let installed = false;

/**
 * Installs the guard once per process (idempotent). Only errors with
 * `code === "ECONNRESET"` and `syscall === "read"` are affected.
 *
 * @example
 * ```ts
 * import { guardSocketResets } from "./socket_guard.ts";
 * guardSocketResets();
 * ```
 */
export function guardSocketResets(): void {
  if (installed || typeof globalThis.addEventListener !== "function") return;
  installed = true;
  globalThis.addEventListener("error", (event) => {
    const err = (event as ErrorEvent).error as { code?: string; syscall?: string } | undefined;
    if (err?.code === "ECONNRESET" && err?.syscall === "read") event.preventDefault();
  });
}
