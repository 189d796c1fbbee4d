/**
 * A watcher closed while a restart reads the stream's info opens no consumer
 * afterwards: before, the restart went on once the answer came, subscribed
 * and created a consumer that nobody would ever delete or read (the
 * subscription stayed until the connection closed, and its handler heard
 * changes after close).
 */
import assert from "node:assert/strict";
import { jetstreamManager } from "@nats-io/jetstream";
import { Watcher } from "../../src/watcher.ts";
import { serverBehindProxy } from "../_proxy.ts";
import { connectTo, suiteTransport, waitFor } from "../_setup.ts";

Deno.test({
  name: "a watcher closed during a restart's stream info read opens no consumer afterwards",
  // The proxy reads NATS frames over TCP only (nats.js has one transport per process).
  ignore: suiteTransport() === "websocket",
  fn: async () => {
    await using t = await serverBehindProxy();
    await t.kv.put("a", "1");
    const stream = `KV_${t.bucket}`;
    const nc = await connectTo(t.proxy.url);
    const seen = { started: 0, streamInfo: 0, errors: [] as string[] };
    const watcher = new Watcher({
      nc,
      jsm: await jetstreamManager(nc),
      bucket: t.bucket,
      filter: ">",
      heartbeatMs: 5_000,
      handler: {
        onChange() {},
        onStarted: () => void seen.started++,
        onCaughtUp() {},
        onRestart() {},
        onStreamInfo: () => void seen.streamInfo++,
        onError: (m: string) => void seen.errors.push(m),
        onResync: () => ({ kind: "snapshot" }),
      } as unknown as ConstructorParameters<typeof Watcher>[0]["handler"],
    });
    try {
      await watcher.start({ kind: "snapshot" }, "test");
      await waitFor(() => watcher.caughtUp, { message: "the watcher caught up" });
      let closed = false;
      let infoHeld = 0;
      let createsAfterClose = 0;
      // Counts every consumer create sent after close() (holds nothing).
      const counting = t.proxy.hold((f) => {
        const create = f.subject.startsWith(`$JS.API.CONSUMER.CREATE.${stream}`);
        if (closed && f.from === "client" && create) createsAfterClose++;
        return false;
      });
      const held = t.proxy.hold((f) => {
        const hold = f.from === "client" && f.subject === `$JS.API.STREAM.INFO.${stream}`;
        if (hold) infoHeld++;
        return hold;
      });
      const infos = seen.streamInfo;
      const started = seen.started;
      void watcher.restart("test restart");
      await waitFor(() => infoHeld > 0, { message: "the restart asked for the stream's info" });
      await watcher.close();
      closed = true;
      held.release();
      await waitFor(() => seen.streamInfo > infos, {
        message: "the restart got the stream's info",
      });
      await nc.flush(); // a create sent after the answer reached the server before this
      counting.release();
      assert.equal(createsAfterClose, 0, "a consumer was created after close()");
      assert.equal(seen.started, started, "a consumer started after close()");
      const left = await (await jetstreamManager(t.nc)).consumers.list(stream).next();
      assert.deepEqual(left.map((c) => c.name), [], "consumers left on the server");
    } finally {
      await watcher.close();
      await nc.close();
    }
  },
});
