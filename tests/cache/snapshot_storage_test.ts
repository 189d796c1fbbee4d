import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type CacheEvent, openCache, type SnapshotStorage } from "../../mod.ts";
import { fileStorage } from "../../src/snapshot_file.ts";
import { connectTo, startServer, uniqueBucket } from "../_setup.ts";

/** A storage in memory, as a runtime without a filesystem would provide (a Durable Object's). */
function memoryStorage(): SnapshotStorage & { held: Uint8Array | undefined; writes: number } {
  const storage = {
    held: undefined as Uint8Array | undefined,
    writes: 0,
    read(): Promise<Uint8Array | undefined> {
      return Promise.resolve(this.held);
    },
    write(parts: readonly Uint8Array[]): Promise<void> {
      const all = new Uint8Array(parts.reduce((n, p) => n + p.byteLength, 0));
      let at = 0;
      for (const part of parts) {
        all.set(part, at);
        at += part.byteLength;
      }
      this.held = all;
      this.writes++;
      return Promise.resolve();
    },
  };
  return storage;
}

Deno.test("a replica warm-starts from a snapshot storage the runtime provides", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  try {
    const bucket = uniqueBucket();
    const kv = await new Kvm(nc).create(bucket, { history: 2 });
    await kv.put("a", JSON.stringify(1));
    await kv.put("b", JSON.stringify(2));
    const storage = memoryStorage();
    const opts = {
      servers: srv.url,
      bucket,
      mode: "replica" as const,
      local: { maxItems: 10 },
      snapshot: { storage, intervalMs: 0 },
    };

    await t.step("close() writes the snapshot through the storage", async () => {
      const first = await openCache<number>(opts);
      await first.ready();
      await first.close();
      assert.equal(storage.writes, 1);
      assert.ok((storage.held?.byteLength ?? 0) > 0);
    });

    await t.step("the next open loads it, then catches up with what changed", async () => {
      await kv.put("b", JSON.stringify(3));
      const events: CacheEvent[] = [];
      await using warm = await openCache<number>({ ...opts, onEvent: (e) => events.push(e) });
      await warm.ready();
      const loaded = events.find((e) => e.type === "snapshot");
      assert.equal(loaded?.type === "snapshot" && loaded.action, "loaded", JSON.stringify(events));
      assert.equal(loaded?.type === "snapshot" && loaded.detail, "2 entries at revision 2");
      assert.equal(warm.peek("a"), 1);
      assert.equal(warm.peek("b"), 3);
    });

    await t.step(
      "a storage whose read fails is reported and the replica syncs from KV",
      async () => {
        const events: CacheEvent[] = [];
        await using cache = await openCache<number>({
          ...opts,
          snapshot: {
            storage: {
              read: () => Promise.reject(new Error("disk on fire")),
              write: () => Promise.resolve(),
            },
          },
          onEvent: (e) => events.push(e),
        });
        await cache.ready();
        const ignored = events.find((e) => e.type === "snapshot");
        assert.deepEqual(
          ignored?.type === "snapshot" && [ignored.action, ignored.detail],
          ["ignored", "cannot read snapshot: disk on fire"],
        );
        assert.equal(cache.peek("b"), 3);
      },
    );
  } finally {
    await nc.close();
  }
});

Deno.test("fileStorage: absent reads as undefined; a write replaces the file and leaves no temporary file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "kvedge-snapfile-" });
  try {
    const path = `${dir}/s.snap`;
    const storage = fileStorage(path);
    assert.equal(await storage.read(), undefined);
    await storage.write([new Uint8Array([1, 2]), new Uint8Array([3])]);
    assert.deepEqual([...(await storage.read())!], [1, 2, 3]);
    await storage.write([new Uint8Array([9])]);
    assert.deepEqual([...(await storage.read())!], [9]);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["s.snap"]);
    // A write that cannot finish (its target is a directory) leaves no temporary file beside it.
    await Deno.mkdir(`${dir}/sub`);
    await Deno.writeTextFile(`${dir}/sub/x`, "x");
    const blocked = fileStorage(`${dir}/sub`);
    await assert.rejects(blocked.write([new Uint8Array([1])]));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["s.snap", "sub"]);
    await assert.rejects(blocked.read(), "a read error other than absence is thrown");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
