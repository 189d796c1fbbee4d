/**
 * kvedge in a short-lived isolate: the HTTP facade as a plain `fetch`
 * handler over WebSocket. Deno Deploy and Supabase Edge Functions run it as
 * is (`export default { fetch }`); locally, on loopback only:
 *
 * ```sh
 * NATS_URL=ws://127.0.0.1:8080 NATS_USER=edge NATS_PASSWORD=kvedge-edge-test-only NATS_INBOX_PREFIX=_INBOX_edge KVEDGE_BUCKETS=cfg deno serve --host 127.0.0.1 --port 8000 --allow-net --allow-env examples/isolate/main.ts
 * ```
 *
 * (`deno serve` alone listens on 0.0.0.0, every interface.) Settings, all
 * from the environment, nothing to edit:
 *
 * - `NATS_URL`: `ws://` or `wss://` URL(s), comma-separated. Default `ws://127.0.0.1:8080`.
 * - `KVEDGE_BUCKETS`: the buckets served read-only, comma-separated. Default `cfg`, the bucket
 *   docs/nats-edge.conf's `edge` identity may read.
 * - `NATS_USER` and `NATS_PASSWORD`, or `NATS_TOKEN`: the identity (docs/nats-edge.conf's read-only
 *   `edge` in production). None: no authentication.
 * - `NATS_INBOX_PREFIX`: the inbox prefix the identity may subscribe to (`_INBOX_edge`).
 *
 * Nothing is opened at import: the first request opens one NATS connection
 * and the caches (concurrent first requests share that), every later request
 * of the isolate reuses them. The caches are lazy (only what is read is held,
 * nothing is synced up front) and no file is read or written. An opening that
 * fails (NATS unreachable, credentials refused, a bucket missing) answers 503
 * (403 for a permission the identity lacks) and is logged on stderr, once per
 * attempt; the next request tries again.
 *
 * For `Deno.serve(handler.fetch)` style (Supabase), replace the last line
 * with `Deno.serve(handler.fetch);`.
 *
 * @module
 */
import type { NatsConnectOptions } from "../../mod.ts";
import { createFetchHandler } from "../../http.ts";

const env = (name: string): string | undefined => Deno.env.get(name)?.trim() || undefined;

const servers = env("NATS_URL") ?? "ws://127.0.0.1:8080";
const buckets = (env("KVEDGE_BUCKETS") ?? "cfg").split(",").map((b) => b.trim());
const user = env("NATS_USER");
const token = env("NATS_TOKEN");
const inboxPrefix = env("NATS_INBOX_PREFIX");

const connectOptions: NatsConnectOptions = {
  name: "kvedge-isolate-example",
  ...(user === undefined ? {} : { user, pass: env("NATS_PASSWORD") }),
  ...(token === undefined ? {} : { token }),
  ...(inboxPrefix === undefined ? {} : { inboxPrefix }),
};

const handler = createFetchHandler({
  servers,
  connectOptions,
  buckets: Object.fromEntries(buckets.map((b) => [b, { mode: "lazy" as const, readOnly: true }])),
  local: { maxItems: 5_000, maxBytes: 8 << 20 },
  // The 503 names no cause (clients must not learn NATS internals): the log does.
  onOpenError: (err) => {
    const e = err as Error;
    console.error(
      JSON.stringify({
        level: "error",
        msg: "cannot open the caches",
        error: `${e?.name ?? "Error"}: ${e?.message ?? String(err)}`,
        buckets,
        servers,
      }),
    );
  },
});

export default { fetch: handler.fetch } satisfies Deno.ServeDefaultExport;
