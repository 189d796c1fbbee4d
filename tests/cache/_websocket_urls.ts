/**
 * Run by websocket_suite_test.ts with `KVEDGE_TEST_TRANSPORT=websocket` in a
 * process of its own (never set in the suite's process, where other test
 * files run in parallel): the fixtures then hand out `ws://` URLs that caches
 * use.
 *
 * @module
 */
import assert from "node:assert/strict";
import { openCache } from "../../mod.ts";
import { startProxy } from "../_proxy.ts";
import { startServer, suiteTransport, uniqueBucket } from "../_setup.ts";

Deno.test("KVEDGE_TEST_TRANSPORT=websocket hands out ws:// URLs that caches use", async () => {
  assert.equal(suiteTransport(), "websocket", "run by websocket_suite_test.ts only");
  await using srv = await startServer();
  assert.equal(srv.url, srv.wsUrl);
  assert.match(srv.url, /^ws:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(srv.port, srv.wsPort);
  await using proxy = startProxy(srv.port);
  assert.match(proxy.url, /^ws:/);
  await using cache = await openCache<number>({
    servers: proxy.url,
    bucket: uniqueBucket(),
    create: true,
    local: { maxItems: 10 },
  });
  await cache.set("a", 1);
  assert.equal(await cache.get("a"), 1);
});
