/**
 * `MirrorShortfall`: a regional mirror with no lag that stays behind the
 * hub's last sequence. The real servers' case (a message over the mirror's
 * `max_msg_size`) is tests/regions/mirror_limits_test.ts; the cases here are
 * the ones a server cannot be made to show on cue: a mirror catching up, a
 * hub whose newest messages are gone (nothing to copy), a WAN cut.
 */
import assert from "node:assert/strict";
import { MirrorShortfall } from "../../src/mirror_shortfall.ts";

const GRACE = 6_000;

Deno.test("a mirror standing behind a message the hub holds past the grace is found short", () => {
  const s = new MirrorShortfall(GRACE);
  s.mirror(1, true);
  assert.equal(s.hub({ mirrorLast: 1, hubLast: 3, now: 1_000 }), undefined, "a suspicion starts");
  assert.equal(s.pending, true);
  assert.equal(
    s.hub({ mirrorLast: 1, hubLast: 3, now: 1_000 + GRACE }),
    undefined,
    "not past the grace yet",
  );
  const from = s.hub({ mirrorLast: 1, hubLast: 3, now: 1_001 + GRACE });
  assert.equal(from, 2, "the hub is asked for its first message above 1");
  s.probed(from!, 2);
  assert.deepEqual(s.found, { mirrorLast: 1, hubSeq: 2, since: 1_000 });
  assert.equal(s.stalledMs(9_000), 8_000);
  // Not hearing the hub changes nothing known; storing does.
  s.mirror(1, false);
  assert.ok(s.found);
  s.mirror(4, true);
  assert.equal(s.found, undefined);
  assert.equal(s.pending, false);
});

Deno.test("a mirror that stores, or catches the hub up, is not suspected", () => {
  const s = new MirrorShortfall(GRACE);
  s.hub({ mirrorLast: 1, hubLast: 3, now: 0 });
  s.mirror(2, true); // it stored
  assert.equal(s.pending, false);
  s.hub({ mirrorLast: 2, hubLast: 3, now: 1_000 });
  assert.equal(
    s.hub({ mirrorLast: 2, hubLast: 2, now: 2_000 + GRACE }),
    undefined,
    "the hub is no further",
  );
  assert.equal(s.pending, false);
});

Deno.test("a hub whose messages above the mirror are gone is not a loss, until it writes again", () => {
  const s = new MirrorShortfall(GRACE);
  s.hub({ mirrorLast: 5, hubLast: 7, now: 0 });
  const from = s.hub({ mirrorLast: 5, hubLast: 7, now: GRACE + 1 })!;
  s.probed(from, 0); // 6 and 7 expired at the hub before the mirror copied them
  assert.equal(s.found, undefined);
  assert.equal(
    s.hub({ mirrorLast: 5, hubLast: 7, now: 3 * GRACE }),
    undefined,
    "asked once per hub sequence",
  );
  // The hub writes 8; the mirror stays at 5: a new suspicion, from now.
  assert.equal(s.hub({ mirrorLast: 5, hubLast: 8, now: 3 * GRACE + 1 }), undefined);
  assert.equal(s.hub({ mirrorLast: 5, hubLast: 8, now: 4 * GRACE + 1 }), undefined);
  assert.equal(s.hub({ mirrorLast: 5, hubLast: 8, now: 4 * GRACE + 2 }), 6);
});

Deno.test("a WAN cut ends a suspicion: the hub is ahead until the mirror hears of it", () => {
  const s = new MirrorShortfall(GRACE);
  s.hub({ mirrorLast: 5, hubLast: 7, now: 0 });
  s.mirror(5, false);
  assert.equal(s.pending, false);
  assert.equal(
    s.hub({ mirrorLast: 5, hubLast: 9, now: 2 * GRACE }),
    undefined,
    "the wait starts again",
  );
});

Deno.test("an answer for another sequence than the suspicion's is ignored", () => {
  const s = new MirrorShortfall(GRACE);
  s.hub({ mirrorLast: 5, hubLast: 7, now: 0 });
  const from = s.hub({ mirrorLast: 5, hubLast: 7, now: GRACE + 1 })!;
  s.mirror(6, true); // it stored while the hub was asked
  s.probed(from, 6);
  assert.equal(s.found, undefined);
});
