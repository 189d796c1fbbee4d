import assert from "node:assert/strict";
import { createApp } from "../../http.ts";
import { resolveAppOptions } from "../../src/http/app_options.ts";
import { resolveOptions } from "../../src/options.ts";
import type { CreateAppOptions } from "../../src/http/app_options.ts";

// Options are refused before the cache is used, so no server is needed: a
// stand-in with the one method the check looks for is enough.
const cache = { getEntry() {} } as unknown as CreateAppOptions["buckets"][string]["cache"];
const base = { buckets: { users: { cache } } };

function refused(
  input: unknown,
  kind: typeof TypeError | typeof RangeError,
  message: RegExp,
): void {
  assert.throws(() => resolveAppOptions(input as CreateAppOptions), (err: unknown) => {
    assert.ok(err instanceof kind, `${String(err)} is a ${kind.name}`);
    assert.match((err as Error).message, /^Cannot create app: /);
    assert.match((err as Error).message, message);
    return true;
  });
}

Deno.test("createApp() options are checked with openCache's validation style", async (t) => {
  await t.step("every default applies when only buckets are given", () => {
    const r = resolveAppOptions(base);
    assert.deepEqual(r, {
      buckets: [["users", base.buckets.users]],
      maxBodyBytes: 1_048_576,
      maxSseStreams: 1000,
      heartbeatMs: 15_000,
      sseBufferSize: 1024,
      sseRetryMs: 2000,
      sseBufferBytes: 4_194_304,
      maxJsonDepth: 64,
      maxListLimit: 1000,
      maxConcurrentScans: 4,
      maxHistoryBytes: 8_388_608,
      maxReplays: 64,
      maxReplaysPerClient: 4,
      maxHeaderCount: 64,
      maxHeaderBytes: 16_384,
      maxStaleMs: Infinity,
      bookmarkCookie: undefined,
    });
    assert.equal(r.buckets[0]![1], base.buckets.users, "the caller's bucket object is kept");
  });

  await t.step("given values replace the defaults", () => {
    const limits = {
      maxBodyBytes: 10,
      maxSseStreams: 2,
      sseHeartbeatMs: 3,
      sseBufferSize: 4,
      sseBufferBytes: 5,
      maxJsonDepth: 6,
      sseRetryMs: 7,
      maxListLimit: 8,
    };
    const r = resolveAppOptions({ ...base, limits, readiness: { maxStaleMs: 0 } });
    assert.deepEqual(
      [
        r.maxBodyBytes,
        r.maxSseStreams,
        r.heartbeatMs,
        r.sseBufferSize,
        r.sseBufferBytes,
        r.maxJsonDepth,
        r.sseRetryMs,
        r.maxListLimit,
        r.maxStaleMs,
      ],
      [10, 2, 3, 4, 5, 6, 7, 8, 0],
    );
  });

  await t.step("Infinity is accepted where documented (readiness.maxStaleMs)", () => {
    assert.equal(
      resolveAppOptions({ ...base, readiness: { maxStaleMs: Infinity } }).maxStaleMs,
      Infinity,
    );
    assert.equal(resolveAppOptions({ ...base, readiness: {} }).maxStaleMs, Infinity);
  });

  await t.step("Infinity is accepted for openCache's staleIfErrorMs, whose default it is", () => {
    const o = resolveOptions({
      servers: "nats://127.0.0.1:4222",
      bucket: "users",
      local: { maxItems: 1 },
      staleIfErrorMs: Infinity,
    });
    assert.equal(o.staleIfErrorMs, Infinity);
  });

  await t.step("the options themselves must be an object", () => {
    refused(null, TypeError, /options must be an object/);
  });

  await t.step("buckets: present, at least one, valid names, an opened cache each", () => {
    refused({}, TypeError, /"buckets" must be an object, got undefined/);
    refused({ buckets: {} }, RangeError, /"buckets" must name at least one bucket/);
    refused({ buckets: { "a b": { cache } } }, TypeError, /"buckets\.a b" a bucket name may only/);
    refused(
      { buckets: { users: {} } },
      TypeError,
      /"buckets\.users\.cache" must be an opened cache/,
    );
    refused(
      { buckets: { users: { cache: {} } } },
      TypeError,
      /"buckets\.users\.cache" must be an opened cache, got an object/,
    );
    refused(
      { buckets: { users: { cache, readOnly: "yes" } } },
      TypeError,
      /"buckets\.users\.readOnly"/,
    );
    refused(
      { buckets: { users: { cache, codec: {} } } },
      TypeError,
      /"buckets\.users\.codec\.encode"/,
    );
    refused(
      { buckets: { users: { cache, maxAgeMs: -1 } } },
      RangeError,
      /"buckets\.users\.maxAgeMs".*got -1/,
    );
    refused(
      { buckets: { users: { cache, maxAge: 1 } } },
      TypeError,
      /"buckets\.users\.maxAge" is not an option$/,
    );
  });

  await t.step("each limit must be a positive integer", () => {
    for (
      const name of [
        "maxBodyBytes",
        "maxSseStreams",
        "sseHeartbeatMs",
        "sseBufferSize",
        "sseBufferBytes",
        "maxJsonDepth",
        "sseRetryMs",
        "maxListLimit",
      ]
    ) {
      const at = new RegExp(`"limits\\.${name}" must be a positive integer, got `);
      refused({ ...base, limits: { [name]: 0 } }, RangeError, new RegExp(at.source + "0$"));
      refused({ ...base, limits: { [name]: -5 } }, RangeError, at);
      refused({ ...base, limits: { [name]: 1.5 } }, TypeError, at);
      refused({ ...base, limits: { [name]: "10" } }, TypeError, at);
      refused(
        { ...base, limits: { [name]: Infinity } },
        TypeError,
        new RegExp(at.source + "Infinity$"),
      );
      refused({ ...base, limits: { [name]: 2 ** 53 } }, RangeError, at);
    }
    refused({ ...base, limits: { maxBody: 1 } }, TypeError, /"limits\.maxBody" is not an option$/);
  });

  await t.step("readiness.maxStaleMs must be >= 0 (or Infinity)", () => {
    refused(
      { ...base, readiness: { maxStaleMs: -1 } },
      RangeError,
      /"readiness\.maxStaleMs" must be a number >= 0, got -1$/,
    );
    refused(
      { ...base, readiness: { maxStaleMs: NaN } },
      TypeError,
      /"readiness\.maxStaleMs" .*got NaN$/,
    );
    refused(
      { ...base, readiness: { maxStaleMs: -Infinity } },
      TypeError,
      /"readiness\.maxStaleMs" .*got -Infinity$/,
    );
    refused({ ...base, readiness: { maxStaleMs: "1" } }, TypeError, /"readiness\.maxStaleMs"/);
  });

  await t.step("auth, cors, callbacks and signal have their types", () => {
    refused({ ...base, auth: { readTokens: "t" } }, TypeError, /"auth\.readTokens"/);
    refused({ ...base, auth: { writeTokens: [1] } }, TypeError, /"auth\.writeTokens\.0"/);
    refused({ ...base, auth: { anonymousWrites: 1 } }, TypeError, /"auth\.anonymousWrites"/);
    refused({ ...base, cors: { origins: "*" } }, TypeError, /"cors\.origins"/);
    refused(
      { ...base, cors: { origins: ["*"], maxAgeSeconds: -1 } },
      RangeError,
      /"cors\.maxAgeSeconds"/,
    );
    refused({ ...base, onRequest: "log" }, TypeError, /"onRequest" must be a function/);
    refused({ ...base, onStreamEnd: 1 }, TypeError, /"onStreamEnd" must be a function/);
    refused({ ...base, signal: {} }, TypeError, /"signal" must be an AbortSignal/);
    refused({ ...base, limit: {} }, TypeError, /^Cannot create app: "limit" is not an option$/);
  });

  await t.step("createApp() throws the same errors", () => {
    assert.throws(
      () => createApp({ ...base, limits: { maxBodyBytes: 0 } }),
      (err: unknown) =>
        err instanceof RangeError &&
        err.message ===
          'Cannot create app: "limits.maxBodyBytes" must be a positive integer, got 0',
    );
  });
});
