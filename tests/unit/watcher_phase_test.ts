/**
 * The watcher's lifecycle (src/watcher_phase.ts) on its own: restarts
 * coalesce, caught-up waits for a queued restart, a re-read is taken once and
 * survives a restart that ends while disconnected, closed is final. The
 * restart loop is a promise the test settles; starts no server.
 */
import assert from "node:assert/strict";
import { type Ask, askIn, caughtUpIn, NO_ASK, WatcherLifecycle } from "../../src/watcher_phase.ts";

const reread = (reason: string): Ask => ({ kind: "reread", reason });
const rebuild = (reason: string): Ask => ({ kind: "rebuild", reason });

/** A lifecycle whose restart loops the test ends one by one. */
function lifecycle() {
  const told: string[] = [];
  const loops: PromiseWithResolvers<void>[] = [];
  const life = new WatcherLifecycle({
    restarting: (reason) => told.push(reason),
    loop: () => {
      const loop = Promise.withResolvers<void>();
      loops.push(loop);
      return loop.promise;
    },
  });
  /** Ends loop `i` and lets its follow-up run. */
  const end = async (i: number, done: Promise<void>) => {
    loops[i]!.resolve();
    await done;
  };
  return { life, told, loops, end };
}

Deno.test("WatcherLifecycle", async (t) => {
  await t.step(
    "a restart asked for while one runs waits behind it, the last reason wins",
    async () => {
      const { life, told, loops, end } = lifecycle();
      life.on({ on: "start" });
      const first = life.restart("gap");
      assert.equal(life.restart("heartbeat"), first);
      assert.equal(life.restart("reconnected"), first);
      assert.deepEqual(told, ["gap"]);
      assert.equal(loops.length, 1);
      await end(0, first);
      assert.deepEqual(told, ["gap", "reconnected"]);
      assert.equal(loops.length, 2);
      assert.equal(life.now.kind, "restarting");
      const second = life.now.kind === "restarting" ? life.now.done : first;
      await end(1, second);
      assert.deepEqual(life.now, { kind: "live", caughtUp: false });
    },
  );

  await t.step("no caught-up while a restart is queued behind the consumer", async () => {
    const { life, loops, end } = lifecycle();
    life.on({ on: "start" });
    assert.ok(life.on({ on: "caught_up" }));
    const done = life.restart("gap");
    assert.ok(!caughtUpIn(life.now), "a restart begins not caught up");
    life.on({ on: "opening" });
    assert.ok(life.on({ on: "caught_up" }), "the new consumer catches up");
    assert.ok(life.on({ on: "opening" }));
    life.restart("re-read", reread("re-read"));
    assert.ok(!life.on({ on: "caught_up" }), "refused: a restart waits");
    assert.ok(!caughtUpIn(life.now));
    await end(0, done);
    assert.equal(loops.length, 2);
    assert.ok(life.on({ on: "caught_up" }), "the queued restart's consumer catches up");
  });

  await t.step(
    "a re-read is taken once, and survives a restart that ends disconnected",
    async () => {
      const { life, end } = lifecycle();
      life.on({ on: "start" });
      life.connected("down");
      const done = life.restart("mirror", reread("mirror"));
      assert.deepEqual(askIn(life.now), reread("mirror"));
      await end(0, done);
      assert.deepEqual(life.now, { kind: "parked", ask: reread("mirror"), caughtUp: false });
      life.connected("up");
      const next = life.restart("reconnected");
      assert.deepEqual(askIn(life.now), reread("mirror"), "the reconnect's restart re-reads");
      assert.ok(life.on({ on: "ask_taken" }));
      assert.deepEqual(askIn(life.now), NO_ASK);
      assert.ok(!life.on({ on: "ask_taken" }), "taken once");
      await end(1, next);
      assert.deepEqual(life.now, { kind: "live", caughtUp: false });
    },
  );

  await t.step(
    "close is final and idempotent; a loop ending after it changes nothing",
    async () => {
      const { life, told, loops, end } = lifecycle();
      life.on({ on: "start" });
      life.on({ on: "caught_up" });
      const done = life.restart("gap");
      life.restart("again");
      assert.ok(life.on({ on: "close" }));
      assert.ok(!life.on({ on: "close" }));
      await end(0, done);
      assert.deepEqual(life.now, { kind: "closed", caughtUp: false });
      await life.restart("late", reread("late"));
      assert.deepEqual(told, ["gap"]);
      assert.equal(loops.length, 1);
      for (const on of ["start", "opening", "caught_up", "ask_taken"] as const) {
        assert.ok(!life.on({ on }), on);
      }
    },
  );

  await t.step(
    "a failed start leaves it idle (placeable); a start while restarting does not",
    () => {
      const { life } = lifecycle();
      life.on({ on: "start" });
      life.on({ on: "start_failed" });
      assert.deepEqual(life.now, { kind: "idle" });
      life.restart("reconnected");
      assert.ok(!life.on({ on: "start" }));
      assert.ok(!life.on({ on: "start_failed" }));
      assert.equal(life.now.kind, "restarting");
    },
  );

  await t.step(
    "a rebuild asked for covers a re-read asked for before or after it, until taken",
    async () => {
      const { life, end } = lifecycle();
      life.on({ on: "start" });
      const done = life.restart("gap");
      life.restart("mirror", reread("mirror"));
      life.restart("revision check", rebuild("replicas disagree"));
      life.restart("mirror again", reread("mirror again"));
      life.restart("reconnected");
      assert.deepEqual(askIn(life.now), rebuild("replicas disagree"));
      assert.ok(life.on({ on: "ask_taken" }), "the running start takes it");
      life.restart("revision check", rebuild("replicas disagree, later"));
      await end(0, done);
      assert.deepEqual(askIn(life.now), rebuild("replicas disagree, later"), "asked after: next");
    },
  );
});
