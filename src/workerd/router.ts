/**
 * The Worker in front of kvedge's Durable Objects: it picks the object a
 * request goes to (one per edge, or one per bucket) and forwards the request
 * unchanged. The Worker itself holds no connection: workerd would bind it to
 * one request (see `durable_object.ts`).
 *
 * @module
 */
import { HttpProblem, problemInstance } from "../http/problem.ts";

/**
 * Header the router sets to tell an object which bucket it serves (any client value is dropped).
 *
 * @example
 * ```ts
 * import { BUCKET_HEADER } from "../../workerd.ts";
 * console.log(BUCKET_HEADER); // "kvedge-object-bucket"
 * ```
 */
export const BUCKET_HEADER = "kvedge-object-bucket";

const BUCKET_PATH = /^\/v1\/buckets\/([^/]+)(?:\/|$)/;

/**
 * The parts of a Durable Object namespace binding the router uses.
 *
 * @example
 * ```ts
 * import type { DurableObjectNamespaceLike } from "../../workerd.ts";
 * function stubOf(ns: DurableObjectNamespaceLike, name: string) {
 *   return ns.get(ns.idFromName(name) as never);
 * }
 * ```
 */
export interface DurableObjectNamespaceLike {
  /** The id of the object with this name (the same name always gives the same object). */
  idFromName(name: string): unknown;
  /** A stub that forwards requests to the object. */
  get(id: never): { fetch(request: Request): Promise<Response> };
}

/**
 * Options of {@link createEdgeRouter}.
 *
 * @example
 * ```ts
 * import type { EdgeRouterOptions } from "../../workerd.ts";
 * const options: EdgeRouterOptions = { binding: "KVEDGE", by: "bucket", name: "edge" };
 * ```
 */
export interface EdgeRouterOptions {
  /** Name of the Durable Object namespace binding in `env` (e.g. `"KVEDGE"`). */
  binding: string;
  /**
   * `"edge"` (default): every request goes to one object, `name`, which holds
   * every bucket. `"bucket"`: a request for `/v1/buckets/<b>/…` goes to the
   * object `bucket:<b>`, which opens only bucket `b` (more objects, each
   * smaller, spread over Cloudflare's machines); every other path (`/healthz`,
   * `/metrics`, `/v1/stats`) goes to `name`.
   */
  by?: "edge" | "bucket";
  /** Name of the object that gets every request (`by: "edge"`) or the non-bucket ones. Default `"edge"`. */
  name?: string;
}

/**
 * A Worker's module export: `export default createEdgeRouter(...)`.
 *
 * @example
 * ```ts
 * import { createEdgeRouter, type EdgeRouter } from "../../workerd.ts";
 * const router: EdgeRouter = createEdgeRouter({ binding: "KVEDGE" });
 * console.log(typeof router.fetch); // export default router; in a Worker
 * ```
 */
export interface EdgeRouter {
  /** Forwards `request` to its object. Never rejects. */
  fetch(request: Request, env: Record<string, unknown>): Promise<Response>;
}

/**
 * Builds the Worker that routes requests to the Durable Objects of
 * {@linkcode defineEdgeObject}.
 *
 * @example
 * ```ts
 * import { createEdgeRouter } from "./router.ts";
 * export default createEdgeRouter({ binding: "KVEDGE", by: "bucket" });
 * ```
 */
export function createEdgeRouter(options: EdgeRouterOptions): EdgeRouter {
  const { binding, by = "edge", name = "edge" } = options ?? {};
  if (typeof binding !== "string" || binding === "") {
    throw new TypeError('Cannot create edge router: "binding" must name a Durable Object binding');
  }
  if (by !== "edge" && by !== "bucket") {
    throw new TypeError(`Cannot create edge router: "by" must be "edge" or "bucket", got ${by}`);
  }
  return {
    async fetch(request, env) {
      const namespace = env?.[binding] as DurableObjectNamespaceLike | undefined;
      if (typeof namespace?.idFromName !== "function") {
        return unavailable(request, {
          detail: `the Worker has no Durable Object binding named ${binding}`,
        });
      }
      const bucket = by === "bucket"
        ? BUCKET_PATH.exec(new URL(request.url).pathname)?.[1]
        : undefined;
      const forwarded = new Request(request);
      forwarded.headers.delete(BUCKET_HEADER);
      let object = name;
      if (bucket !== undefined) {
        const decoded = safeDecode(bucket);
        forwarded.headers.set(BUCKET_HEADER, decoded);
        object = `bucket:${decoded}`;
      }
      try {
        const stub = namespace.get(namespace.idFromName(object) as never);
        return await stub.fetch(forwarded);
      } catch (err) {
        return unavailable(request, {
          detail: `the Durable Object "${object}" did not answer`,
          cause: err,
        });
      }
    },
  };
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** A 503 in the facade's own shape, for failures before any object answers. */
function unavailable(
  request: Request,
  { detail, cause }: { detail: string; cause?: unknown },
): Response {
  return new HttpProblem("unavailable", detail, { cause })
    .getResponse(problemInstance(new URL(request.url).pathname));
}
