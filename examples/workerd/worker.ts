/**
 * kvedge as a Cloudflare Worker: the Worker routes every request to one
 * Durable Object, which owns the NATS connection (WebSocket: workerd gives
 * nats.js no raw TCP) and the caches, so hits, pushed updates and misses are
 * served from one connection for as long as the object lives.
 *
 * Bundle, then run it locally with workerd, or deploy it with wrangler:
 *
 * ```sh
 * deno bundle --platform browser --external cloudflare:workers \
 *   -o examples/workerd/dist/worker.js examples/workerd/worker.ts
 * node_modules/.bin/workerd serve examples/workerd/config.capnp   # http://127.0.0.1:8787
 * cd examples/workerd && npx wrangler deploy                        # wrangler.toml
 * ```
 *
 * Settings come from the Worker's bindings: `NATS_URL` (`wss://…` in
 * production), `KVEDGE_BUCKETS` (comma-separated), and the secrets
 * `KVEDGE_WRITE_TOKEN` (no token: the buckets are read-only), `NATS_USER` and
 * `NATS_PASS` (the `edge` identity of docs/nats-edge.conf).
 *
 * @module
 */
import { DurableObject } from "cloudflare:workers";
// From the published package: import { … } from "@kvedge/kvedge/workerd";
import { createEdgeRouter, defineEdgeObject } from "../../workerd.ts";

interface Env {
  NATS_URL: string;
  KVEDGE_BUCKETS: string;
  KVEDGE_WRITE_TOKEN?: string;
  NATS_USER?: string;
  NATS_PASS?: string;
}

/** The Durable Object class: `class_name` in wrangler.toml, `className` in config.capnp. */
export const KvedgeEdge = defineEdgeObject((env: Env) => {
  const writable = env.KVEDGE_WRITE_TOKEN !== undefined && env.KVEDGE_WRITE_TOKEN !== "";
  return {
    servers: env.NATS_URL,
    connectOptions: env.NATS_USER
      ? { user: env.NATS_USER, pass: env.NATS_PASS, inboxPrefix: "_INBOX_edge" }
      : { name: "kvedge-workerd" },
    buckets: Object.fromEntries(
      env.KVEDGE_BUCKETS.split(",").map((b) => [b.trim(), { mode: "lazy", readOnly: !writable }]),
    ),
    local: { maxItems: 10_000, maxBytes: 16 << 20 },
    ...(writable ? { auth: { writeTokens: [env.KVEDGE_WRITE_TOKEN!] } } : {}),
  };
}, DurableObject);

/** The Worker: one object for the whole edge (`by: "bucket"` gives one per bucket). */
export default createEdgeRouter({ binding: "KVEDGE" });
