/**
 * kvedge as a Cloudflare Durable Object: the object owns the NATS connection
 * and the caches, and every request routed to it shares them. workerd binds a
 * socket to the request that opened it, so a plain Worker cannot keep a
 * connection between requests (its fetch handler falls back to one connection
 * per request); a Durable Object's requests all run in the object's own
 * context, so its connection, its watcher and its cache live as long as the
 * object does. Nothing here imports `cloudflare:workers` (the library stays
 * runtime-neutral): pass its `DurableObject` class as `base` and the object
 * extends it, as Cloudflare's documentation asks; without it the class is a
 * plain `constructor(state, env)` / `fetch(request)` class, which workerd runs
 * as well.
 *
 * @module
 */
import {
  createFetchHandler,
  type FetchHandler,
  type FetchHandlerOptions,
} from "../http/fetch_handler.ts";
import { BUCKET_HEADER } from "./router.ts";

/**
 * What workerd passes a Durable Object's constructor as its state (only what is used here).
 *
 * @example
 * ```ts
 * import type { DurableObjectStateLike } from "../../workerd.ts";
 * const state: DurableObjectStateLike = { id: "edge" };
 * ```
 */
export interface DurableObjectStateLike {
  /** The object's id. */
  readonly id?: unknown;
}

/**
 * A base class for the object: `DurableObject` from `cloudflare:workers`.
 *
 * @example
 * ```ts
 * import type { DurableObjectBase } from "../../workerd.ts";
 * // Outside workerd (tests), a plain class stands in for `DurableObject`.
 * const Base: DurableObjectBase = class {};
 * ```
 */
export type DurableObjectBase = abstract new (state: never, env: never) => object;

/**
 * A Durable Object class as workerd instantiates it.
 *
 * @example
 * ```ts
 * import { defineEdgeObject, type EdgeObjectClass } from "../../workerd.ts";
 * interface Env { NATS_URL: string }
 * const Edge: EdgeObjectClass<Env> = defineEdgeObject((env: Env) => ({
 *   servers: env.NATS_URL,
 *   buckets: { config: { mode: "lazy" } },
 *   local: { maxItems: 5_000 },
 * }), class {});
 * ```
 */
export interface EdgeObjectClass<Env> {
  /** workerd calls this once per object instance; it does no I/O. */
  new (state: DurableObjectStateLike, env: Env): EdgeObject;
}

/**
 * An instance of the class {@link defineEdgeObject} returns.
 *
 * @example
 * ```ts
 * import type { EdgeObject } from "../../workerd.ts";
 * async function ping(object: EdgeObject): Promise<number> {
 *   return (await object.fetch(new Request("https://edge.example/healthz"))).status;
 * }
 * ```
 */
export interface EdgeObject {
  /**
   * Answers one request with the object's handler (opened on the first request).
   * Rejects only when the options are invalid (`TypeError`/`RangeError`, as
   * {@linkcode createFetchHandler} throws them); failures of NATS are answers.
   */
  fetch(request: Request): Promise<Response>;
}

/**
 * Builds a Durable Object class that serves kvedge's HTTP facade
 * ({@linkcode createFetchHandler}) from one connection and one set of caches
 * per object. `options(env)` is called once per object, on its first request,
 * with the Worker's bindings (`NATS_URL`, tokens…). When the Worker routes by
 * bucket ({@linkcode createEdgeRouter} with `by: "bucket"`), an object opens
 * only the bucket it was created for.
 *
 * Export the class under the name the configuration gives it (`class_name` in
 * `wrangler.toml`, `className` in a workerd capnp config). `base`, when given,
 * is the class the object extends: `DurableObject` from `cloudflare:workers`,
 * as Cloudflare's documentation asks of Durable Object classes.
 *
 * @example
 * ```ts ignore
 * import { DurableObject } from "cloudflare:workers";
 * import { createEdgeRouter, defineEdgeObject } from "./workerd.ts";
 * interface Env { NATS_URL: string; KVEDGE: unknown }
 * export const KvedgeEdge = defineEdgeObject((env: Env) => ({
 *   servers: env.NATS_URL,
 *   buckets: { config: { mode: "lazy" } },
 *   local: { maxItems: 5_000 },
 * }), DurableObject);
 * export default createEdgeRouter({ binding: "KVEDGE" });
 * ```
 */
export function defineEdgeObject<Env>(
  options: (env: Env) => FetchHandlerOptions,
  base?: DurableObjectBase,
): EdgeObjectClass<Env> {
  if (typeof options !== "function") {
    throw new TypeError("Cannot define edge object: options must be a function of the env");
  }
  if (base !== undefined && typeof base !== "function") {
    throw new TypeError("Cannot define edge object: base must be a class (DurableObject)");
  }
  const Base = (base ?? class {}) as new (state: unknown, env: unknown) => object;
  return class KvedgeEdgeObject extends Base implements EdgeObject {
    readonly #env: Env;
    #handler: FetchHandler | undefined;

    constructor(state: DurableObjectStateLike, env: Env) {
      super(state, env);
      this.#env = env;
    }

    async fetch(request: Request): Promise<Response> {
      this.#handler ??= createFetchHandler(
        scoped(options(this.#env), request.headers.get(BUCKET_HEADER)),
      );
      return await this.#handler.fetch(request);
    }
  };
}

/** The options narrowed to the one bucket an object routed by bucket serves. */
function scoped(options: FetchHandlerOptions, bucket: string | null): FetchHandlerOptions {
  if (bucket === null) return options;
  const one = options.buckets[bucket];
  // An unknown bucket keeps them all: the app then answers its own 404.
  return one === undefined ? options : { ...options, buckets: { [bucket]: one } };
}
