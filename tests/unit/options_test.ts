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
  assert.equal(o.closeTimeoutMs, 5_000);
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
    [{ bucket: 7 }, /^Cannot open cache: "bucket" must be a string, got 7$/],
    [{ writeBack: "yes" }, /^Cannot open cache: "writeBack" must be a boolean, got "yes"$/],
    [{ create: { replicas: 2 } }, /"create"/],
    [{ loader: "fetch" }, /^Cannot open cache: "loader" must be a function, got "fetch"$/],
    [{ schema: {} }, /"schema" must be a zod schema, got an object/],
    [{ connection: {}, servers: undefined }, /"connection" must be a NatsConnection/],
    [{ local: { maxItems: 10, size: 3 } }, /^Cannot open cache: "local\.size" is not an option$/],
    [{ unknownOption: true }, /unknownOption/],
    [{ create: { replicas: 1, colour: "red" } }, /"create\.colour" is not an option/],
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
  assert.deepEqual(parseOptions(schema, { n: 1, s: "x" }, { action: "do it" }), { n: 1, s: "x" });
  assert.throws(() => parseOptions(schema, { n: 0, s: "x" }, { action: "do it" }), RangeError);
  assert.throws(
    () => parseOptions(schema, { n: 0, s: "x" }, { action: "do it", rangeErrors: false }),
    TypeError,
  );
  assert.throws(
    () => parseOptions(schema, { n: 1, s: () => 1 }, { action: "do it" }),
    /^TypeError: Cannot do it: "s" must be a string, got a function$/,
  );
  assert.throws(
    () => parseOptions(schema, "n=1", { action: "do it" }),
    /options must be an object/,
  );
});

Deno.test("options: errors say the rule in words, in the documented form, never zod's wording", () => {
  // The form of docs/options.md and STYLE.md, exactly.
  assert.throws(
    () => resolve({ local: { maxItems: 0 } }),
    (e: unknown) =>
      e instanceof RangeError &&
      e.message === 'Cannot open cache: "local.maxItems" must be a positive integer, got 0',
  );
  const cases: [Record<string, unknown>, string][] = [
    [{ local: { maxItems: 1.5 } }, '"local.maxItems" must be a positive integer, got 1.5'],
    [{ missTimeoutMs: 600_001 }, '"missTimeoutMs" must be an integer from 1 to 600000, got 600001'],
    [{ heartbeatMs: 99 }, '"heartbeatMs" must be an integer from 100 to 300000, got 99'],
    [{ negativeTtlMs: -1 }, '"negativeTtlMs" must be an integer from 0 to 2147483647, got -1'],
    [{ create: { markerTtlMs: 10 } }, '"create.markerTtlMs" must be an integer >= 1000, got 10'],
    [{ mode: "eager" }, '"mode" must be "lazy" or "replica", got "eager"'],
  ];
  for (const [extra, want] of cases) {
    assert.throws(() => resolve(extra), (e: unknown) => {
      assert.ok(e instanceof Error);
      assert.equal(e.message, `Cannot open cache: ${want}`);
      assert.doesNotMatch(e.message, /Too small|Too big|Invalid input|expected number/);
      return true;
    });
  }
  // Issues zod words itself are put in the same form.
  const schema = z.object({ n: z.number().min(5), s: z.string().min(1), p: z.number().positive() });
  const msg = (input: unknown): string => {
    try {
      parseOptions(schema, input, { action: "do it" });
      return "accepted";
    } catch (e) {
      return (e as Error).message;
    }
  };
  assert.equal(msg({ n: 4, s: "x", p: 1 }), 'Cannot do it: "n" must be >= 5, got 4');
  assert.equal(msg({ n: 5, s: "", p: 1 }), 'Cannot do it: "s" must not be empty, got ""');
  assert.equal(msg({ n: 5, s: "x", p: 0 }), 'Cannot do it: "p" must be a positive number, got 0');
});
