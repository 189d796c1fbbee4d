import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { jetstreamManager } from "@nats-io/jetstream";
import {
  type Cache,
  type CacheOptions,
  type Change,
  openCache,
  UnsupportedError,
} from "../../mod.ts";
import { createApp } from "../../http.ts";
import { PER_KEY_TTL_VERSION, versionAtLeast } from "../../src/server_version.ts";
import { kvStreamName, kvSubject, MARKER_REASON_HEADER } from "../../src/kv_layout.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectTo, startServer, uniqueBucket, waitFor } from "../_setup.ts";

// The suite runs against whichever server tests/_setup.ts picked (the CI runs
// it on 2.9.10 and on 2.15): per-key TTL is exercised on 2.11+, its clear
// refusal on older servers.

function put(value: unknown): RequestInit {
  return {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(value),
  };
}

/**
 * Waits for the server's expiry marker of `key` (written after `rev`), then
 * checks each edge by ordering, not by time: by the time an edge's watcher has
 * applied the marker's revision, the key is gone from it (no local timer, no
 * later sweep). The deadline is a guard against a server that never expires
 * the key, not a bound of kvedge's: the server writes the marker on its own
 * schedule once the TTL has passed.
 */
async function expiresWithMarker(
  nc: NatsConnection,
  bucket: string,
  key: string,
  rev: number,
  edges: Cache<unknown>[],
): Promise<number> {
  const jsm = await jetstreamManager(nc);
  const marker = await waitFor(async () => {
    const m = await jsm.streams.getMessage(kvStreamName(bucket), {
      last_by_subj: kvSubject(bucket, key),
    });
    return m !== null && m.seq > rev ? m : undefined;
  }, { timeoutMs: 20_000, message: `the server writes the expiry marker of ${key}` });
  assert.equal(marker.header?.get(MARKER_REASON_HEADER), "MaxAge");
  for (const e of edges) {
    await waitFor(() => e.stats().lastRevision >= marker.seq, {
      timeoutMs: 5_000,
      message: `an edge applies the marker at ${marker.seq}`,
    });
    assert.equal(e.peek(key), undefined, `an edge holds ${key} after applying its expiry marker`);
  }
  return marker.seq;
}

Deno.test("per-key TTL", async (t) => {
  await using srv = await startServer();
  const nc = await connectTo(srv);
  const kvm = new Kvm(nc);
  const version = nc.info?.version;
  const open = <T = unknown>(extra: Partial<CacheOptions<T>> = {}): Promise<Cache<T>> =>
    openCache<T>({
      connection: nc,
      bucket: uniqueBucket(),
      local: { maxItems: 1000 },
      ...extra,
    } as CacheOptions<T>);

  try {
    if (!versionAtLeast(version, PER_KEY_TTL_VERSION)) {
      await t.step(
        `on ${version} a bucket with limit markers is refused, naming 2.11`,
        async () => {
          const bucket = uniqueBucket();
          await assert.rejects(
            open({ bucket, create: { markerTtlMs: 1000 } }),
            (e) =>
              e instanceof UnsupportedError && e.code === "UNSUPPORTED" &&
              e.requiredVersion === PER_KEY_TTL_VERSION && e.serverVersion === version &&
              /needs nats-server 2\.11 or newer/.test(e.message),
          );
          const jsm = await jetstreamManager(nc);
          await assert.rejects(jsm.streams.info(kvStreamName(bucket)), "no bucket was created");
        },
      );

      await t.step(`on ${version} set(..., { ttlMs }) is refused and writes nothing`, async () => {
        await using c = await open<string>({ create: true });
        await assert.rejects(
          c.set("k", "v", { ttlMs: 2000 }),
          (e) => e instanceof UnsupportedError && /2\.11/.test(e.message),
        );
        await assert.rejects(c.create("k", "v", { ttlMs: 2000 }), UnsupportedError);
        const kv = await kvm.open(c.bucket);
        assert.equal(await kv.get("k"), null);
      });

      await t.step(`on ${version} PUT ?ttl= is a 400 naming 2.11, nothing written`, async () => {
        await using c = await open<unknown>({ create: true });
        const app = createApp({ buckets: { b: { cache: c } }, auth: { anonymousWrites: true } });
        const res = await app.request("/v1/buckets/b/keys/k?ttl=5", put(1));
        assert.equal(res.status, 400);
        assert.match((await res.json()).detail, /2\.11/);
        assert.equal(await (await kvm.open(c.bucket)).get("k"), null);
      });
      return;
    }

    await t.step("a bucket without limit markers refuses ttlMs and writes nothing", async () => {
      await using c = await open<string>({ create: true });
      await assert.rejects(
        c.set("k", "v", { ttlMs: 2000 }),
        (e) => e instanceof UnsupportedError && /limit markers/.test(e.message),
      );
      assert.equal(await (await kvm.open(c.bucket)).get("k"), null);
    });

    await t.step("a ttlMs under one second is a RangeError", async () => {
      await using c = await open<string>({ create: { markerTtlMs: 1000 } });
      await assert.rejects(c.set("k", "v", { ttlMs: 999 }), RangeError);
    });

    await t.step("an expired key produces an event and every edge drops it at once", async () => {
      const bucket = uniqueBucket();
      // Caches keep entries for an hour: only the expiry marker can remove them.
      const local = { maxItems: 1000, maxTtlMs: 3_600_000 };
      await using writer = await open<string>({
        bucket,
        create: { markerTtlMs: 1000, history: 5 },
        local,
      });
      await using replica = await open<string>({ bucket, mode: "replica", local });
      await using lazy = await open<string>({ bucket, mode: "lazy", local });
      await replica.ready();
      await lazy.ready();
      const kv = await kvm.open(bucket);
      assert.equal((await kv.status()).markerTTL, 1000);

      // Older revisions of the key: the TTL write must not let them come back.
      await writer.set("session", "v1");
      await writer.set("session", "v2");
      const seen: Change<string>[] = [];
      const stop = new AbortController();
      const collecting = (async () => {
        for await (const ch of replica.changes({ signal: stop.signal })) seen.push(ch);
      })();
      const rev = await writer.set("session", "v3", { ttlMs: 1000 });
      assert.equal(await lazy.get("session"), "v3");
      await waitFor(() => replica.peek("session") === "v3", { message: "replica sees v3" });

      const markerSeq = await expiresWithMarker(nc, bucket, "session", rev, [
        replica,
        lazy,
        writer,
      ] as Cache<unknown>[]);
      const expired = seen.find((ch) => ch.key === "session" && ch.revision > rev);
      assert.ok(expired, "no expiry event for the key");
      assert.equal(expired.revision, markerSeq);
      assert.equal(expired.operation, "PURGE");
      stop.abort();
      await collecting;

      assert.equal(await replica.get("session"), undefined);
      assert.equal(await lazy.get("session"), undefined);

      const entry = await kv.get("session");
      assert.ok(entry === null || entry.operation !== "PUT", "no older revision came back");

      // An edge that never saw the key reads the marker on its miss path and in
      // history() as the watcher does (kv_layout operationOf: MaxAge is a PURGE).
      await using late = await open<string>({ bucket, mode: "lazy", local });
      assert.equal(await late.get("session"), undefined, "a miss answers the marker as absent");
      assert.equal(late.peek("session"), undefined);
      const history = await late.history("session");
      const newest = history.at(-1)!;
      assert.ok(newest.revision > rev, "history ends with the marker");
      assert.equal(newest.operation, "PURGE");
      assert.equal(newest.value, undefined);
    });

    await t.step("create(..., { ttlMs }) writes a key that expires", async () => {
      await using c = await open<string>({ create: { markerTtlMs: 1000 } });
      const rev = await c.create("once", "x", { ttlMs: 1000 });
      assert.equal(c.peek("once"), "x");
      await expiresWithMarker(nc, c.bucket, "once", rev, [c as Cache<unknown>]);
      // Expired: free to create again.
      await c.create("once", "y");
      assert.equal(await c.get("once"), "y");
    });

    await t.step("HTTP: PUT ?ttl=<seconds> writes a key that expires", async () => {
      await using c = await open<unknown>({ create: { markerTtlMs: 1000 } });
      const app = createApp({ buckets: { b: { cache: c } }, auth: { anonymousWrites: true } });
      for (const bad of ["0", "1.5", "-1", "x"]) {
        const res = await app.request(`/v1/buckets/b/keys/k?ttl=${bad}`, put(1));
        assert.equal(res.status, 400, `ttl=${bad}`);
        await res.body?.cancel();
      }
      const withIfMatch = await app.request("/v1/buckets/b/keys/k?ttl=1", {
        ...put(1),
        headers: { "content-type": "application/json", "if-match": '"1"' },
      });
      assert.equal(withIfMatch.status, 400);
      await withIfMatch.body?.cancel();
      const created = await app.request("/v1/buckets/b/keys/k?ttl=1", put({ a: 1 }));
      assert.equal(created.status, 201);
      const { revision } = await created.json();
      const got = await app.request("/v1/buckets/b/keys/k");
      assert.deepEqual(await got.json(), { a: 1 });
      await expiresWithMarker(nc, c.bucket, "k", revision, [c]);
      const gone = await app.request("/v1/buckets/b/keys/k");
      await gone.body?.cancel();
      assert.equal(gone.status, 404, "the key expired behind the HTTP facade");
    });

    await t.step("a key without ttlMs in a marker bucket stays", async () => {
      await using c = await open<string>({ create: { markerTtlMs: 1000 } });
      await c.set("keep", "x");
      const rev = await c.set("short", "y", { ttlMs: 1000 });
      await expiresWithMarker(nc, c.bucket, "short", rev, [c as Cache<unknown>]);
      assert.equal(await c.get("keep"), "x");
    });
  } finally {
    await nc.close();
  }
});
