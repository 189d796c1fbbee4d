/**
 * Options validation (src/options.ts, src/validate.ts): `openCache()` options
 * get their defaults, and wrong types, values out of range and unbounded or
 * contradictory configurations are refused with `TypeError` / `RangeError`
 * before any connection. Starts no server.
 *
 * @module
 */
import assert from "node:assert/strict";
import { z } from "zod";
import { resolveOptions } from "../../src/options.ts";
import { parseOptions } from "../../src/validate.ts";
import type { CacheOptions } from "../../src/types.ts";

const BASE = { servers: "nats://127.0.0.1:4222", bucket: "b", local: { maxItems: 10 } };

/** `resolveOptions` of `BASE` with `extra` merged in (unchecked: the point is bad input). */
function resolve(extra: Record<string, unknown> = {}) {
  return resolveOptions({ ...BASE, ...extra } as unknown as CacheOptions<unknown>);
}

Deno.test("options: the defaults of a minimal configuration", () => {
  const o = resolve();
  assert.deepEqual(o.servers, ["nats://127.0.0.1:4222"]);
  assert.equal(o.connection, undefined);
  assert.equal(o.bucket, "b");
  assert.equal(o.create, undefined);
  assert.equal(o.mode, "lazy");
  assert.equal(o.keys, ">");
  assert.equal(o.maxItems, 10);
  assert.equal(o.maxBytes, 0);
  assert.equal(o.maxTtlMs, 0);
  assert.equal(o.writeBack, false);
  assert.equal(o.negativeTtlMs, 30_000);
  assert.equal(o.loaderTimeoutMs, 5_000);
  assert.equal(o.missTimeoutMs, 1_000);
  assert.equal(o.writeTimeoutMs, 5_000);
  assert.equal(o.staleIfErrorMs, Infinity);
  assert.equal(o.heartbeatMs, 5_000);
  assert.equal(o.reconcileMs, 30_000);
  assert.equal(o.allowDirect, false);
  assert.equal(o.snapshot, undefined);
  assert.equal(o.region, undefined);
  const bytes = o.codec.encode({ a: 1 });
  assert.deepEqual(o.codec.decode(bytes), { a: 1 }, "the default codec is JSON");
});

Deno.test("options: servers split on commas; create and snapshot get their defaults", () => {
  assert.deepEqual(resolve({ servers: "nats://a:1,nats://b:2" }).servers, [
    "nats://a:1",
    "nats://b:2",
  ]);
  assert.deepEqual(resolve({ servers: ["nats://a:1"] }).servers, ["nats://a:1"]);
  assert.deepEqual(resolve({ create: true }).create, {
    replicas: 1,
    history: 10,
    ttlMs: 0,
    maxBytes: -1,
    maxValueSize: -1,
    storage: "file",
    markerTtlMs: 0,
  });
  assert.equal(resolve({ create: { replicas: 3, history: 5 } }).create?.replicas, 3);
  assert.equal(resolve({ create: false }).create, undefined);
  const snap = resolve({ snapshot: { path: "/tmp/s" } }).snapshot;
  assert.equal(snap?.intervalMs, 60_000);
  assert.equal(typeof snap?.storage.read, "function", "a path becomes the storage of its file");
  const storage = { read: () => Promise.resolve(undefined), write: () => Promise.resolve() };
  assert.equal(
    resolve({ snapshot: { storage, intervalMs: 5 } }).snapshot?.storage,
    storage,
    "a storage is kept as given",
  );
  for (const snapshot of [{}, { path: "/tmp/s", storage }]) {
    assert.throws(() => resolve({ snapshot }), (e: unknown) =>
      e instanceof TypeError &&
      e.message ===
        'Cannot open cache: "snapshot" needs exactly one of "path" and "storage"');
  }
  assert.throws(() => resolve({ snapshot: { storage: { read: 1 } } }), TypeError);
  assert.deepEqual(resolve({ region: { hubDomain: "hub" } }).region, {
    hubDomain: "hub",
    checkMs: 1_000,
    maxSilenceMs: 3_000,
  });
  const only = resolve({ local: { maxBytes: 1_000_000 } });
  assert.deepEqual([only.maxItems, only.maxBytes], [0, 1_000_000]);
});

Deno.test("options: wrong types are TypeErrors naming the option and the value", () => {
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ bucket: 7 }, /^Cannot open cache: "bucket" expected string, received number, got 7$/],
    [{ writeBack: "yes" }, /"writeBack" expected boolean/],
    [{ create: { replicas: 2 } }, /"create"/],
    [{ loader: "fetch" }, /^Cannot open cache: "loader" must be a function, got "fetch"$/],
    [{ schema: {} }, /"schema" must be a zod schema, got an object/],
    [{ connection: {}, servers: undefined }, /"connection" must be a NatsConnection/],
    [{ local: { maxItems: 10, size: 3 } }, /"local"/],
    [{ unknownOption: true }, /unknownOption/],
    [{ create: { replicas: 1, colour: "red" } }, /"create"/],
  ];
  for (const [extra, why] of cases) {
    assert.throws(() => resolve(extra), (e: unknown) => {
      assert.ok(e instanceof TypeError, `${JSON.stringify(extra)}: ${e}`);
      assert.match(e.message, why);
      return true;
    });
  }
  assert.throws(
    () => resolveOptions(null as unknown as CacheOptions<unknown>),
    /^TypeError: Cannot open cache: options must be an object$/,
  );
});

Deno.test("options: values out of range are RangeErrors", () => {
  const cases: Record<string, unknown>[] = [
    { local: { maxItems: 0 } },
    { local: { maxItems: -1 } },
    { local: { maxItems: 10, maxTtlMs: 0 } },
    { heartbeatMs: 99 },
    { heartbeatMs: 300_001 },
    { missTimeoutMs: 0 },
    { negativeTtlMs: -1 },
    { mode: "eager" },
    { region: { hubDomain: "hub", checkMs: 9 } },
  ];
  for (const extra of cases) {
    assert.throws(() => resolve(extra), RangeError, JSON.stringify(extra));
  }
  assert.throws(
    () => resolve({ heartbeatMs: 99 }),
    /^RangeError: Cannot open cache: "heartbeatMs" .*100.*, got 99$/,
  );
});

Deno.test("options: bucket names and key filters are checked by the key grammar", () => {
  assert.throws(() => resolve({ bucket: "a.b" }), /"bucket" a bucket name may only contain/);
  assert.throws(() => resolve({ keys: "a.>.b" }), /"keys" '>' must be the last token/);
  assert.equal(resolve({ keys: "user.*" }).keys, "user.*");
});

Deno.test("options: unbounded or contradictory configurations are refused", () => {
  assert.throws(() => resolve({ local: {} }), (e: unknown) => {
    assert.ok(e instanceof RangeError);
    assert.match(e.message, /"local" needs "maxItems" or "maxBytes"/);
    return true;
  });
  assert.throws(
    () => resolve({ servers: undefined }),
    /^TypeError: Cannot open cache: exactly one of "servers" and "connection" is required$/,
  );
  const connection = { subscribe() {} };
  assert.throws(() => resolve({ connection }), /exactly one of "servers" and "connection"/);
  assert.equal(resolve({ servers: undefined, connection }).connection, connection);
  assert.throws(
    () => resolve({ region: { hubDomain: "hub" }, create: true }),
    /^TypeError: Cannot open cache: "create" cannot be used with "region"/,
  );
  assert.throws(() => resolve({ writeBack: true }), /"writeBack" needs a "loader"/);
  assert.equal(resolve({ writeBack: true, loader: () => undefined }).writeBack, true);
});

Deno.test("validate: parseOptions reports the first issue, ranged or not", () => {
  const schema = z.object({ n: z.number().int().min(1), s: z.string() }).strict();
  assert.deepEqual(parseOptions(schema, { n: 1, s: "x" }, "do it"), { n: 1, s: "x" });
  assert.throws(() => parseOptions(schema, { n: 0, s: "x" }, "do it"), RangeError);
  assert.throws(
    () => parseOptions(schema, { n: 0, s: "x" }, "do it", { rangeErrors: false }),
    TypeError,
  );
  assert.throws(
    () => parseOptions(schema, { n: 1, s: () => 1 }, "do it"),
    /^TypeError: Cannot do it: "s" expected string, received function, got a function$/,
  );
  assert.throws(() => parseOptions(schema, "n=1", "do it"), /options must be an object/);
});
