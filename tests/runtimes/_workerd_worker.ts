/**
 * The Worker that tests/runtimes/workerd_test.ts bundles and runs inside the
 * workerd binary: `/do/…` goes through the router to the Durable Object
 * (`KvedgeEdge`, routed by bucket), every other path to a plain isolate
 * handler opened by the first request. Options come from the text bindings of
 * the test's capnp config.
 *
 * @module
 */
// Provided by workerd; `deno bundle --external cloudflare:workers` leaves the import to it.
import { DurableObject } from "cloudflare:workers";
import { createFetchHandler, type FetchHandler, type FetchHandlerOptions } from "../../http.ts";
import { createEdgeRouter, defineEdgeObject } from "../../workerd.ts";

interface Env {
  NATS_URL: string;
  BUCKET: string;
  WRITE_TOKEN: string;
  KVEDGE: unknown;
}

function optionsOf(env: Env, name: string): FetchHandlerOptions {
  return {
    servers: env.NATS_URL,
    connectOptions: { name },
    buckets: { [env.BUCKET]: { mode: "lazy" } },
    local: { maxItems: 1_000 },
    auth: { writeTokens: [env.WRITE_TOKEN] },
    // A watch stream's end is noticed at its next write: keep that short for the test.
    limits: { sseHeartbeatMs: 500 },
  };
}

export const KvedgeEdge = defineEdgeObject(
  (env: Env) => optionsOf(env, "workerd-object"),
  DurableObject,
);

/** The same object as a plain class (no `DurableObject` base). */
export const KvedgePlain = defineEdgeObject((env: Env) => optionsOf(env, "workerd-object"));

const router = createEdgeRouter({ binding: "KVEDGE", by: "bucket" });
let isolate: FetchHandler | undefined;

export default {
  fetch(request: Request, env: Env): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/do/")) {
      url.pathname = url.pathname.slice("/do".length);
      return router.fetch(new Request(url, request), env as unknown as Record<string, unknown>);
    }
    isolate ??= createFetchHandler(optionsOf(env, "workerd-isolate"));
    return isolate.fetch(request);
  },
};
