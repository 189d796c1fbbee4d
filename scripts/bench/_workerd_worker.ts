/**
 * The Worker `deno task bench workerd` bundles and runs inside the workerd
 * binary: `/do/…` goes to the Durable Object (one per edge), every other path
 * to a plain isolate handler. Read-only lazy caches, options from the text
 * bindings `NATS_URL` and `BUCKET`.
 *
 * @module
 */
import { DurableObject } from "cloudflare:workers";
import { createFetchHandler, type FetchHandler, type FetchHandlerOptions } from "../../http.ts";
import { createEdgeRouter, defineEdgeObject } from "../../workerd.ts";

interface Env {
  NATS_URL: string;
  BUCKET: string;
}

function optionsOf(env: Env): FetchHandlerOptions {
  return {
    servers: env.NATS_URL,
    buckets: { [env.BUCKET]: { mode: "lazy", readOnly: true } },
    local: { maxItems: 10_000 },
  };
}

export const KvedgeEdge = defineEdgeObject(optionsOf, DurableObject);

const router = createEdgeRouter({ binding: "KVEDGE" });
let isolate: FetchHandler | undefined;

export default {
  fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/do/")) {
      url.pathname = url.pathname.slice("/do".length);
      return router.fetch(new Request(url, request), env as unknown as Record<string, unknown>);
    }
    isolate ??= createFetchHandler(optionsOf(env));
    return isolate.fetch(request);
  },
};
