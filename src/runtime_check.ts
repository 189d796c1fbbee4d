/**
 * What kvedge needs of the JavaScript runtime, checked before a connection is
 * made: a runtime that lacks it fails at open with a typed error that says so,
 * instead of a `TypeError` from deep inside, or a WebSocket connect that
 * never settles (Node 20 has no global `WebSocket`).
 *
 * @module
 */
import { UnsupportedRuntimeError } from "./errors.ts";

const RUNTIMES = "kvedge runs on Deno 2, Bun 1, Node 22 or newer, and Cloudflare Workers";

/**
 * Throws {@link UnsupportedRuntimeError} when the runtime lacks
 * `Promise.withResolvers` (Node < 22; nats.js and kvedge use it), or, for a
 * WebSocket connection (`websocket` true) without its own `wsFactory`, a global
 * `WebSocket`. `action` starts the message: `Cannot <action>: …`.
 *
 * @example
 * ```ts
 * import { assertRuntime } from "./runtime_check.ts";
 * assertRuntime("open cache", { websocket: false, wsFactory: false });
 * ```
 */
export function assertRuntime(
  action: string,
  need: { websocket: boolean; wsFactory: boolean },
): void {
  if (typeof (Promise as { withResolvers?: unknown }).withResolvers !== "function") {
    throw new UnsupportedRuntimeError(
      `Cannot ${action}: this runtime has no Promise.withResolvers (Node older than 22?); ${RUNTIMES}`,
      "Promise.withResolvers",
    );
  }
  if (
    need.websocket && !need.wsFactory &&
    typeof (globalThis as { WebSocket?: unknown }).WebSocket !== "function"
  ) {
    throw new UnsupportedRuntimeError(
      `Cannot ${action}: ws:// and wss:// URLs need a global WebSocket, which this runtime lacks; ` +
        `pass "wsFactory" in "connectOptions", or use nats:// (TCP)`,
      "WebSocket",
    );
  }
}
