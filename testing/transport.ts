/**
 * The NATS transport a test or benchmark run uses, from
 * `KVEDGE_TEST_TRANSPORT`.
 *
 * @module
 */
import type { NatsTransport } from "../src/connect.ts";

/**
 * The transport this test run uses: `KVEDGE_TEST_TRANSPORT=websocket` (or `ws`)
 * selects WebSocket, anything else TCP.
 */
export function suiteTransport(): NatsTransport {
  let value: string | undefined;
  try {
    value = Deno.env.get("KVEDGE_TEST_TRANSPORT");
  } catch {
    // Without --allow-env: TCP.
  }
  return value === "websocket" || value === "ws" ? "websocket" : "tcp";
}
