/**
 * Errors a user can catch are KvedgeErrors with a stable code, named for the
 * operation that failed. Pure: starts no server.
 */
import assert from "node:assert/strict";
import { BucketNotFoundError, KvedgeError, OverflowError, ProjectionMapError } from "../../mod.ts";
import { Broadcast } from "../../src/broadcast.ts";
import { mapNatsError } from "../../src/errors_map.ts";
import { JetStreamApiCodes, JetStreamApiError } from "@nats-io/jetstream";

Deno.test("a reader that falls behind its buffer fails with OverflowError naming the operation", async () => {
  const b = new Broadcast<number>();
  const it = b.iterate({ bufferSize: 2 });
  for (let i = 0; i < 3; i++) b.emit(i);
  assert.equal((await it.next()).value, 0);
  assert.equal((await it.next()).value, 1);
  await assert.rejects(
    it.next(),
    (err: unknown) =>
      err instanceof OverflowError && err instanceof KvedgeError && err.code === "OVERFLOW" &&
      err.message.startsWith("Cannot follow changes:"),
  );
  const events = b.iterate({ bufferSize: 1, action: "follow events" });
  b.emit(1);
  b.emit(2);
  await events.next();
  await assert.rejects(events.next(), /^OverflowError: Cannot follow events:/);
  b.close();
});

Deno.test("a missing bucket is reported for the operation attempted", () => {
  // What JetStream answers for a missing stream (nats.js's StreamNotFoundError.fromMessage):
  // kvedge decides by the code, not by the text.
  const notFound = new JetStreamApiError({
    err_code: JetStreamApiCodes.StreamNotFound,
    code: 404,
    description: "stream not found",
  });
  const onOpen = mapNatsError(notFound, {
    action: `open cache on bucket "users"`,
    bucket: "users",
  });
  assert.ok(onOpen instanceof BucketNotFoundError);
  assert.match(onOpen.message, /^Cannot open cache on bucket "users": .*pass "create"/);
  const onRun = mapNatsError(notFound, { action: `run projection "p"`, bucket: "src" });
  assert.ok(onRun instanceof BucketNotFoundError);
  assert.equal(onRun.code, "BUCKET_NOT_FOUND");
  assert.equal(onRun.message, `Cannot run projection "p": bucket "src" does not exist`);
});

Deno.test("ProjectionMapError is a KvedgeError exported from mod.ts", () => {
  const err = new ProjectionMapError("Cannot project event 3: map threw", 3);
  assert.ok(err instanceof KvedgeError);
  assert.equal(err.name, "ProjectionMapError");
  assert.equal(err.seq, 3);
});
