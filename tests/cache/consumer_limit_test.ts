/**
 * Every edge holds one consumer on its bucket's stream, and nats-server 2.15
 * limits a stream to 1 000 consumers unless the stream says otherwise. An edge
 * that finds the limit reached fails to open with an error that says which
 * limit, and how to raise it — not a bare "maximum consumers limit reached".
 *
 * @module
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { openCache, UnavailableError } from "../../mod.ts";
import { connectTo, startServer, uniqueBucket } from "../_setup.ts";

Deno.test("an edge past the stream's consumer limit fails to open, naming the limit and the fix", async () => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  try {
    const bucket = uniqueBucket("lim");
    await new Kvm(nc).create(bucket);
    // The same KV stream, but with room for a single consumer (as a 2.15
    // server's default of 1 000 would be, for the 1 001st edge).
    const jsm = await jetstreamManager(nc);
    const { config } = await jsm.streams.info(`KV_${bucket}`);
    await jsm.streams.delete(`KV_${bucket}`);
    await jsm.streams.add({ ...config, max_consumers: 1 });

    const options = { servers: srv.url, bucket, mode: "replica" as const, local: { maxItems: 10 } };
    await using first = await openCache<unknown>(options);
    await first.ready({ timeoutMs: 10_000 });
    await assert.rejects(openCache<unknown>(options), (err: Error) => {
      assert.ok(err instanceof UnavailableError, String(err));
      assert.match(err.message, new RegExp(`KV_${bucket} has reached its consumer limit`));
      assert.match(err.message, /--max-consumers/);
      return true;
    });
  } finally {
    await nc.close();
  }
});
