/**
 * A cache over WebSocket in a runtime without the `Deno` global (as in
 * Cloudflare Workers or a browser worker): the global is deleted after the
 * imports, then a cache opens, writes, reads, and sees a change made by a
 * second connection through its watcher. Prints "ok" on success.
 *
 * Usage: deno run -A tests/_no_deno_child.ts <ws url> <bucket>
 */
import { parseArgs } from "node:util";
import { connectNats } from "../src/connect.ts";
import { Kvm } from "@nats-io/kv";
import { openCache } from "../mod.ts";

const [url, bucket] = parseArgs({ args: Deno.args, allowPositionals: true }).positionals as [
  string,
  string,
];
delete (globalThis as { Deno?: unknown }).Deno;
if ("Deno" in globalThis) throw new Error("the Deno global is still there");

const cache = await openCache<number>({
  servers: url,
  bucket,
  create: true,
  local: { maxItems: 10 },
});
await cache.set("a", 1);
if (await cache.get("a") !== 1) throw new Error("read after write");
const nc = await connectNats({ servers: [url] });
await (await new Kvm(nc).open(bucket)).put("a", new TextEncoder().encode("2"));
const deadline = Date.now() + 20_000;
while (cache.peek("a") !== 2) {
  if (Date.now() > deadline) throw new Error("the watcher did not apply the change");
  await new Promise((r) => setTimeout(r, 20));
}
await nc.close();
await cache.close();
console.log("ok");
