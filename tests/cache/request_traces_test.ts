/**
 * The cache's own connection builds no stack-trace error per request
 * (nats.js `noAsyncTraces`, set by `openCache`): a miss that times out still
 * fails with `UnavailableError` caused by nats.js's `TimeoutError`, whose stack
 * now comes from the timer rather than the request's call site.
 * `connectOptions.noAsyncTraces: false` brings the traces back.
 */
import assert from "node:assert/strict";
import { TimeoutError } from "@nats-io/nats-core";
import { openCache, UnavailableError } from "../../mod.ts";
import { serverBehindProxy } from "../_proxy.ts";

/** A miss whose leader get the proxy swallows: the error it fails with. */
async function timedOutMiss(noAsyncTraces: boolean | undefined): Promise<UnavailableError> {
  await using t = await serverBehindProxy();
  await t.kv.put("a", "1");
  await using c = await openCache<string>({
    servers: t.proxy.url,
    bucket: t.bucket,
    local: { maxItems: 100 },
    missTimeoutMs: 300,
    ...(noAsyncTraces === undefined ? {} : { connectOptions: { noAsyncTraces } }),
  });
  await c.ready();
  t.proxy.hold((f) => f.from === "client" && f.subject === `$JS.API.STREAM.MSG.GET.KV_${t.bucket}`);
  const err = await c.get("a").then((v) => v, (e) => e);
  assert.ok(err instanceof UnavailableError, `the miss answered ${err}`);
  assert.match(err.message, /timed out/);
  assert.ok(err.cause instanceof TimeoutError, `caused by ${err.cause}`);
  return err;
}

/** Whether a nats.js error's stack names the miss fetch that made the request. */
function tracedToFetch(err: UnavailableError): boolean {
  return /read_path\.ts/.test((err.cause as Error).stack ?? "");
}

Deno.test("a cache's own connection captures no per-request trace", async () => {
  assert.equal(tracedToFetch(await timedOutMiss(undefined)), false);
});

Deno.test("connectOptions.noAsyncTraces: false brings the per-request traces back", async () => {
  assert.equal(tracedToFetch(await timedOutMiss(false)), true);
});
