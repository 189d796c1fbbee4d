/**
 * `src/async.ts`, the one place the tree waits: deadlines, pauses, aborts and
 * backoff. Real timers; nothing asserts how long anything took (Deno's
 * sanitizers fail a test that leaves a timer behind).
 */
import assert from "node:assert/strict";
import {
  abortable,
  Backoff,
  deadline,
  DeadlineError,
  delay,
  retry,
  settleWithin,
} from "../../src/async.ts";

const never = () => new Promise<never>(() => {});

/**
 * Runs `fn` and returns how many of the timers it started are still pending
 * (neither fired nor cleared) once it resolved: Deno's sanitizers do not
 * catch a timer left behind, so the tests count them.
 */
async function pendingTimersAfter(fn: () => Promise<unknown>): Promise<number> {
  const pending = new Set<unknown>();
  const realSet = globalThis.setTimeout;
  const realClear = globalThis.clearTimeout;
  globalThis.setTimeout = ((cb: () => void, ms?: number) => {
    const id = realSet(() => {
      pending.delete(id);
      cb();
    }, ms);
    pending.add(id);
    return id;
  }) as typeof setTimeout;
  globalThis.clearTimeout = ((id?: Parameters<typeof clearTimeout>[0]) => {
    if (id !== undefined) pending.delete(id);
    realClear(id);
  }) as typeof clearTimeout;
  try {
    await fn();
  } finally {
    globalThis.setTimeout = realSet;
    globalThis.clearTimeout = realClear;
  }
  const left = pending.size;
  for (const id of pending) realClear(id as Parameters<typeof clearTimeout>[0]);
  return left;
}

Deno.test("deadline() settles with the promise, or rejects with DeadlineError, or with the abort reason", async (t) => {
  await t.step("a promise that settles in time gives its value or its error", async () => {
    assert.equal(await deadline(Promise.resolve(42), 60_000), 42);
    const boom = new Error("boom");
    await assert.rejects(deadline(Promise.reject(boom), 60_000), (err) => err === boom);
  });
  await t.step(
    "a promise that never settles rejects with the typed error carrying the deadline",
    async () => {
      const err = await deadline(never(), 5).catch((e) => e);
      assert.ok(err instanceof DeadlineError, String(err));
      assert.equal(err.ms, 5);
      assert.equal(err.name, "DeadlineError");
    },
  );
  await t.step("an abort rejects at once with the signal's reason", async () => {
    const ac = new AbortController();
    const why = new Error("stop");
    const left = await pendingTimersAfter(async () => {
      const waiting = deadline(never(), 60_000, { signal: ac.signal });
      ac.abort(why);
      await assert.rejects(waiting, (err) => err === why);
    });
    assert.equal(left, 0, "the deadline's timer is cleared");
    await assert.rejects(deadline(never(), 60_000, { signal: ac.signal }), (err) => err === why);
  });
  await t.step("a promise that settles in time leaves no timer behind", async () => {
    assert.equal(await pendingTimersAfter(() => deadline(Promise.resolve(1), 60_000)), 0);
  });
});

Deno.test("settleWithin() says whether the promise settled, either way, before the deadline", async () => {
  assert.equal(await settleWithin(Promise.resolve(1), 60_000), true);
  assert.equal(await settleWithin(Promise.reject(new Error("x")), 60_000), true);
  assert.equal(await settleWithin(never(), 5), false);
});

Deno.test("delay() ends at its time, on abort or when `until` settles, and never rejects", async (t) => {
  await t.step("after ms", async () => {
    assert.equal(await delay(1), undefined);
  });
  await t.step("an abort ends a long pause (its timer is cleared)", async () => {
    const ac = new AbortController();
    const left = await pendingTimersAfter(async () => {
      const paused = delay(60_000, { signal: ac.signal });
      ac.abort(new Error("stop"));
      assert.equal(await paused, undefined);
    });
    assert.equal(left, 0);
    assert.equal(await delay(60_000, { signal: ac.signal }), undefined);
  });
  await t.step("`until` settling, even by rejecting, ends a long pause", async () => {
    const end = Promise.withResolvers<void>();
    const left = await pendingTimersAfter(async () => {
      const paused = delay(60_000, { until: end.promise });
      end.reject(new Error("gone"));
      assert.equal(await paused, undefined);
    });
    assert.equal(left, 0);
  });
});

Deno.test("abortable() gives the value, or the abort reason once the signal aborts", async () => {
  const ac = new AbortController();
  assert.equal(await abortable(Promise.resolve("v"), ac.signal), "v");
  const waiting = abortable(never(), ac.signal);
  const why = new Error("no longer wanted");
  ac.abort(why);
  await assert.rejects(waiting, (err) => err === why);
  await assert.rejects(abortable(Promise.resolve("v"), ac.signal), (err) => err === why);
});

Deno.test("Backoff doubles up to its cap, starts over on reset, and jitters within [p/2, p)", () => {
  const b = new Backoff({ firstMs: 100, maxMs: 500 });
  assert.deepEqual([b.next(), b.next(), b.next(), b.next(), b.next()], [100, 200, 400, 500, 500]);
  b.reset();
  assert.equal(b.next(), 100);
  const j = new Backoff({ firstMs: 100, maxMs: 5_000, jitter: "half" });
  for (const p of [100, 200, 400, 800, 1600, 3200, 5000, 5000]) {
    const ms = j.next();
    assert.ok(ms >= p / 2 && ms < p, `${ms} within [${p / 2}, ${p})`);
  }
});

Deno.test("retry() calls until success with backoff, pauses first after a known failure, and stops when told", async (t) => {
  await t.step("failures are reported with the pause before the next attempt", async () => {
    let calls = 0;
    const seen: [string, number][] = [];
    const v = await retry(() => {
      if (++calls < 4) return Promise.reject(new Error(`fail ${calls}`));
      return Promise.resolve(calls);
    }, {
      firstMs: 1,
      maxMs: 3,
      onRetry: (err, ms) => seen.push([(err as Error).message, ms]),
    });
    assert.equal(v, 4);
    assert.deepEqual(seen, [["fail 1", 1], ["fail 2", 2], ["fail 3", 3]]);
  });
  await t.step("`after`: the first report and pause come before the first call", async () => {
    const order: string[] = [];
    const first = new Error("already failed");
    const v = await retry(() => {
      order.push("call");
      return Promise.resolve("up");
    }, {
      firstMs: 1,
      maxMs: 1,
      after: first,
      onRetry: (err) => order.push(err === first ? "retry(first)" : "retry"),
    });
    assert.equal(v, "up");
    assert.deepEqual(order, ["retry(first)", "call"]);
  });
  await t.step("`stopped` ends the loop with undefined and no further call", async () => {
    let calls = 0;
    const v = await retry(() => {
      calls++;
      return Promise.reject(new Error("down"));
    }, { firstMs: 1, maxMs: 1, stopped: () => calls >= 2 });
    assert.equal(v, undefined);
    assert.equal(calls, 2);
  });
});
