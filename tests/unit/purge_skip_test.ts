import assert from "node:assert/strict";
import type { ServerInfo } from "@nats-io/nats-core";
import { PURGE_SKIP_FIXED_VERSION, purgeMaySkip } from "../../src/purge_skip.ts";

const on = (version: string | undefined) => ({
  info: version === undefined ? undefined : { version } as ServerInfo,
});
/** A purge marker at 4 after revision 2, written after the consumer was created (at 0). */
const jump = { seq: 4, lastRev: 2, streamLastSeq: 0 };

Deno.test("a purge marker that jumps over revisions is suspect on a server before 2.9.12", () => {
  assert.equal(purgeMaySkip(jump, on("2.9.10")), true);
  assert.equal(purgeMaySkip(jump, on("2.9.11")), true);
  assert.equal(purgeMaySkip(jump, on(undefined)), true, "an unknown version may have the defect");
});

Deno.test("from 2.9.12 on a purge moves no other key's consumer: nothing is suspect", () => {
  assert.equal(PURGE_SKIP_FIXED_VERSION, "2.9.12");
  for (const v of ["2.9.12", "2.10.0", "2.15.2"]) assert.equal(purgeMaySkip(jump, on(v)), false);
});

Deno.test("a marker right after the applied revision skipped nothing", () => {
  assert.equal(purgeMaySkip({ ...jump, lastRev: 3 }, on("2.9.10")), false);
});

Deno.test("a marker the stream held before the consumer was created cannot have moved it", () => {
  // Its purge ran before the consumer existed: a jump to it is what the stream holds.
  assert.equal(purgeMaySkip({ ...jump, streamLastSeq: 4 }, on("2.9.10")), false);
  assert.equal(purgeMaySkip({ ...jump, streamLastSeq: 3 }, on("2.9.10")), true);
});
