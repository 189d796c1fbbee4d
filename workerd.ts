/**
 * kvedge in Cloudflare's runtime (workerd, Cloudflare Workers): a Durable
 * Object that owns the NATS connection and the caches, and the Worker that
 * routes requests to it. See docs/topologies.md, "Cloudflare Workers", and
 * examples/workerd/ (a `wrangler.toml` and the equivalent workerd config).
 *
 * @example
 * ```ts ignore
 * import { DurableObject } from "cloudflare:workers";
 * import { createEdgeRouter, defineEdgeObject } from "./workerd.ts";
 * interface Env { NATS_URL: string; KVEDGE: unknown }
 * export const KvedgeEdge = defineEdgeObject((env: Env) => ({
 *   servers: env.NATS_URL, // wss://…: workerd has no raw TCP for nats.js
 *   buckets: { config: { mode: "lazy" } },
 *   local: { maxItems: 5_000 },
 * }), DurableObject);
 * export default createEdgeRouter({ binding: "KVEDGE" });
 * ```
 *
 * @module
 */
export {
  defineEdgeObject,
  type DurableObjectBase,
  type DurableObjectStateLike,
  type EdgeObject,
  type EdgeObjectClass,
} from "./src/workerd/durable_object.ts";
export {
  BUCKET_HEADER,
  createEdgeRouter,
  type DurableObjectNamespaceLike,
  type EdgeRouter,
  type EdgeRouterOptions,
} from "./src/workerd/router.ts";
