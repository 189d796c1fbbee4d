/**
 * The lifecycle's transition table (src/cache/lifecycle.ts), without a
 * server: the phase each event leads to, the facts it derives, what it emits
 * and tells `onFresh`, readiness and closing.
 */
import assert from "node:assert/strict";
import { ClosedError } from "../../src/errors.ts";
import { Lifecycle } from "../../src/cache/lifecycle.ts";
import type { CacheEvent } from "../../src/types.ts";
import { waitFor } from "../../testing/wait_for.ts";

function lifecycle(): { life: Lifecycle; events: CacheEvent[]; fresh: boolean[] } {
  const events: CacheEvent[] = [];
  const fresh: boolean[] = [];
  const life = new Lifecycle({
    emit: (e) => events.push(e),
    revision: () => 7,
    onFresh: (f) => fresh.push(f),
  });
  return { life, events, fresh };
}

const caughtUp = { on: "caught_up", revision: 7, hubInSync: true } as const;

Deno.test("Lifecycle follows its table", async (t) => {
  await t.step("caught up: synced, fresh, ready once, one synced event", async () => {
    const { life, events, fresh } = lifecycle();
    assert.equal(life.state, "starting");
    assert.equal(life.isReady, false);
    life.transition(caughtUp);
    assert.equal(life.state, "synced");
    assert.ok(life.fresh && life.isReady && life.connected);
    await life.ready;
    life.transition(caughtUp);
    assert.deepEqual(events.map((e) => e.type), ["synced"]);
    assert.deepEqual(fresh, [true]);
    assert.equal((events[0] as { revision: number }).revision, 7);
  });
  await t.step("a disconnect: stale, down since then, once; a reconnect does not resync", () => {
    const { life, events } = lifecycle();
    life.transition(caughtUp);
    assert.equal(life.transition({ on: "disconnected" }), true);
    assert.equal(life.state, "stale");
    assert.equal(life.connected, false);
    const at = life.disconnectedAt;
    assert.ok(at > 0);
    assert.equal(life.transition({ on: "disconnected" }), false, "already down");
    assert.equal(life.disconnectedAt, at);
    life.transition({ on: "connection_closed" });
    assert.equal(life.disconnectedAt, at, "a close while down keeps the time it went down");
    life.transition({ on: "reconnected" });
    assert.ok(life.connected);
    assert.equal(life.state, "stale", "stale until the watcher catches up");
    assert.deepEqual(events.map((e) => e.type), ["synced", "stale"]);
  });
  await t.step(
    "a close while up counts from the close, not from an earlier disconnect",
    async () => {
      const { life, events } = lifecycle();
      life.transition(caughtUp);
      life.transition({ on: "disconnected" });
      const earlier = life.disconnectedAt;
      life.transition({ on: "reconnected" });
      life.transition(caughtUp);
      assert.equal(life.disconnectedAt, 0, "up");
      // Time passes (a poll, not a sleep) so that the two moments differ.
      await waitFor(() => Date.now() > earlier, { intervalMs: 1 });
      const before = Date.now();
      life.transition({ on: "connection_closed" });
      assert.ok(!life.connected);
      assert.ok(
        life.disconnectedAt >= before,
        `down since ${life.disconnectedAt}, closed at ${before}, the earlier disconnect ${earlier}`,
      );
      assert.deepEqual(events.map((e) => e.type), ["synced", "stale", "synced", "stale"]);
    },
  );
  await t.step("a resync outlives its phase across a disconnect, until caught up", () => {
    const { life } = lifecycle();
    life.transition(caughtUp);
    life.transition({ on: "resync", reason: "recreated", epochChanged: true });
    assert.equal(life.state, "resyncing");
    assert.ok(life.resyncing && life.resyncEpoch);
    life.transition({ on: "disconnected" });
    assert.equal(life.state, "stale");
    assert.ok(life.resyncing && life.resyncEpoch, "still rebuilding");
    life.transition(caughtUp);
    assert.equal(life.state, "stale", "caught up while down stays stale");
    assert.ok(!life.resyncing && !life.resyncEpoch);
  });
  await t.step("a cache opened from its snapshot: down since open until attached", () => {
    const { life } = lifecycle();
    life.transition({ on: "open_unreachable" });
    const at = life.disconnectedAt;
    life.transition({ on: "snapshot_served", reason: "NATS unreachable at open" });
    assert.equal(life.state, "stale");
    life.transition({ on: "attaching" });
    assert.ok(life.connected);
    life.transition({ on: "attach_failed" });
    assert.equal(life.connected, false);
    assert.equal(life.disconnectedAt, at, "a failed attach keeps the time it went down");
    life.transition({ on: "attaching" });
    life.transition({ on: "attached" });
    life.transition(caughtUp);
    assert.equal(life.state, "synced");
    assert.equal(life.disconnectedAt, 0, "up");
  });
  await t.step("the hub: lost makes synced stale, regained only with a live watcher", () => {
    const { life } = lifecycle();
    life.transition(caughtUp);
    life.transition({ on: "hub", inSync: false, watcherLive: true });
    assert.equal(life.state, "stale");
    life.transition({ on: "hub", inSync: true, watcherLive: false });
    assert.equal(life.state, "stale");
    life.transition({ on: "hub", inSync: true, watcherLive: true });
    assert.equal(life.state, "synced");
    life.transition({ on: "caught_up", revision: 8, hubInSync: false });
    assert.equal(life.state, "stale");
  });
  await t.step("closing refuses and rejects ready; closed is final and not fresh", async () => {
    const { life, fresh } = lifecycle();
    let runs = 0;
    const close = () => {
      runs++;
      life.transition({ on: "closing" });
      life.transition({ on: "closed" });
      return Promise.resolve();
    };
    const first = life.close(close);
    assert.equal(life.close(close), first, "one close");
    await first;
    assert.equal(runs, 1);
    assert.ok(life.closed);
    assert.equal(life.state, "closed");
    await assert.rejects(life.ready, ClosedError);
    life.transition(caughtUp);
    life.transition({ on: "resync", reason: "late", epochChanged: false });
    assert.equal(life.state, "closed");
    assert.equal(fresh.at(-1), false);
  });
  await t.step("lastError and a failed start", async () => {
    const { life } = lifecycle();
    assert.equal(life.lastError, undefined);
    life.recordError("boom");
    assert.equal(life.lastError, "boom");
    life.startFailed(new Error("no bucket"));
    await assert.rejects(life.ready, /no bucket/);
    assert.equal(life.closed, false);
  });
});
