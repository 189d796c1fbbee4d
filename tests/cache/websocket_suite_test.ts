/**
 * The same test bodies over WebSocket: chosen test files run again, unchanged,
 * with `KVEDGE_TEST_TRANSPORT=websocket`, which makes every server of
 * tests/_setup.ts open a WebSocket port and hand out `ws://` URLs (clients,
 * caches, the TCP proxy's cuts and the R3 cluster included).
 *
 * - cache_core_test.ts: the freshness rules 1–6 against a real server;
 * - replica_test.ts: replica bootstrap, overflow, key filters;
 * - resilience_test.ts: rule 7 through real faults (proxy cut, kill -9 and
 *   restart, SIGSTOP, a leader kill in an R3 cluster);
 * - ../http/app_test.ts: the HTTP facade over a real cache;
 * - _websocket_urls.ts: the fixtures hand out ws:// URLs that caches use.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

const FILES = [
  // Not a test file of its own: it needs KVEDGE_TEST_TRANSPORT=websocket, which
  // must never be set in this process (deno test --parallel runs other files in
  // it, and one read it mid-test: "n1 was started without a WebSocket port").
  "_websocket_urls.ts",
  "cache_core_test.ts",
  "replica_test.ts",
  "resilience_test.ts",
  "../http/app_test.ts",
];

for (const file of FILES) {
  Deno.test(`over WebSocket: ${file}`, async () => {
    const path = fileURLToPath(new URL(`./${file}`, import.meta.url));
    // --no-check: `deno task ok` type-checks tests/ once already.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", "--no-check", path],
      env: { KVEDGE_TEST_TRANSPORT: "websocket", NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(out.success, `${file} failed over WebSocket:\n${text.slice(-6000)}`);
    assert.match(text, /\bok \| \d+ passed/, text.slice(-2000));
  });
}
