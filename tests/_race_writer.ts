/**
 * Writes `"v2"` to keys `race.0..N-1` of a bucket (or deletes them, with
 * `delete` as fourth argument) when a line arrives on stdin, `delayMs` after
 * it if given, then prints "done". Runs in its own process so that it can
 * write while the test's event loop is blocked.
 *
 * Usage: deno run -A tests/_race_writer.ts <url> <bucket> <n> [put|delete] [delayMs]
 */
import { parseArgs } from "node:util";
import { connectNats } from "../src/connect.ts";
import { Kvm } from "@nats-io/kv";

const [url, bucket, n, op, delayMs] =
  parseArgs({ args: Deno.args, allowPositionals: true }).positionals;
const nc = await connectNats({ servers: [url!] });
const kv = await new Kvm(nc).open(bucket!);
const reader = Deno.stdin.readable.getReader();
console.log("ready");
await reader.read();
if (delayMs) await new Promise((r) => setTimeout(r, Number(delayMs)));
const keys = Array.from({ length: Number(n) }, (_, i) => `race.${i}`);
await Promise.all(
  keys.map((k) => op === "delete" ? kv.delete(k) : kv.put(k, JSON.stringify("v2"))),
);
console.log("done");
await nc.close();
