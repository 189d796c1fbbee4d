/**
 * kvedge in a short-lived isolate: the HTTP facade as a plain `fetch`
 * handler over WebSocket. Deno Deploy and Supabase Edge Functions run it as
 * is (`export default { fetch }`), locally too:
 *
 * ```sh
 * NATS_URL=ws://127.0.0.1:8080 KVEDGE_BUCKETS=config deno serve --allow-net --allow-env examples/isolate/main.ts
 * ```
 *
 * Nothing is opened at import: the first request opens one NATS connection
 * and the caches (concurrent first requests share that), every later request
 * of the isolate reuses them. The caches are lazy (only what is read is held,
 * nothing is synced up front) and no file is read or written.
 *
 * For `Deno.serve(handler.fetch)` style (Supabase), replace the last line
 * with `Deno.serve(handler.fetch);`.
 *
 * @module
 */
import { createFetchHandler } from "../../mod.ts";

const servers = Deno.env.get("NATS_URL") ?? "ws://127.0.0.1:8080";
const buckets = (Deno.env.get("KVEDGE_BUCKETS") ?? "config").split(",").map((b) => b.trim());

const handler = createFetchHandler({
  servers,
  // A read-only edge identity (docs/nats-edge.conf) in production, e.g.
  // connectOptions: { user: "edge", pass: Deno.env.get("NATS_PASS"), inboxPrefix: "_INBOX_edge" },
  connectOptions: { name: "kvedge-isolate-example" },
  buckets: Object.fromEntries(buckets.map((b) => [b, { mode: "lazy" as const, readOnly: true }])),
  local: { maxItems: 5_000, maxBytes: 8 << 20 },
});

export default { fetch: handler.fetch } satisfies Deno.ServeDefaultExport;
