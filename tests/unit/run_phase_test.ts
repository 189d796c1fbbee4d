/**
 * The owners of a projection run's changing state, without a server:
 * `RunStatus` (the state, a failure carrying its error, a run that ended
 * staying ended) and `PullPhase` (the pull request, the event in flight, a
 * set-up due and its reason).
 */
import assert from "node:assert/strict";
import type { ConsumerMessages } from "@nats-io/jetstream";
import { defineProjection, type Projection } from "../../projection.ts";
import { RunStatus } from "../../src/projection/run_status.ts";
import { PullPhase } from "../../src/projection/pull_phase.ts";
import { initialStatus, resolveSource } from "../../src/projection/source.ts";

const projection = defineProjection({
  name: "unit",
  source: { stream: "EVENTS" },
  target: "unit-target",
  map: (event) => ({ key: event.subject, value: null }),
}) as Projection<unknown>;

function newStatus(): RunStatus {
  return new RunStatus(initialStatus(projection, resolveSource(projection)));
}

/** A pull request that only counts its stops. */
function fakeBatch(): ConsumerMessages & { stops: number } {
  const batch = { stops: 0, stop: () => void batch.stops++ };
  return batch as unknown as ConsumerMessages & { stops: number };
}

Deno.test("RunStatus: each change of state is one method, and an ended run stays ended", async (t) => {
  await t.step("status() shows the fields in the order it always did", () => {
    const initial = initialStatus(projection, resolveSource(projection));
    const shown = new RunStatus(initial).snapshot();
    assert.deepEqual(Object.keys(shown), Object.keys(initial));
    assert.deepEqual(shown, initial);
    assert.notEqual(shown, initial);
  });
  await t.step("starting, running, retrying, running", () => {
    const s = newStatus();
    s.recovered();
    assert.equal(s.state, "starting", "recovered() only leaves retrying");
    s.started();
    assert.equal(s.state, "running");
    s.retrying("NatsError: timeout");
    assert.equal(s.state, "retrying");
    s.started();
    assert.equal(s.state, "retrying", "started() only leaves starting");
    s.recovered();
    assert.equal(s.state, "running");
    assert.equal(s.snapshot().retries, 1);
    assert.equal(s.failure, undefined);
  });
  await t.step("a failure carries its error, and nothing moves the run out of failed", () => {
    const s = newStatus();
    s.started();
    const err = new Error("map exploded");
    s.fail(err);
    assert.equal(s.state, "failed");
    assert.equal(s.failure, err);
    assert.equal(s.lastError, "Error: map exploded");
    const since = s.snapshot().since;
    s.retrying("NatsError: consumer deleted");
    s.stopping();
    s.recovered();
    s.ended();
    assert.equal(s.state, "failed");
    assert.equal(s.failure, err);
    assert.equal(s.snapshot().since, since);
    assert.equal(s.snapshot().retries, 1, "the retried failure is still counted");
  });
  await t.step("a failure of nothing is still a failure", () => {
    const s = newStatus();
    s.fail(undefined);
    assert.ok(s.failure instanceof Error);
  });
  await t.step("stopping, stopped, and stopped stays stopped", () => {
    const s = newStatus();
    s.started();
    s.stopping();
    assert.equal(s.state, "stopping");
    s.retrying("NatsError: closed");
    assert.equal(s.state, "stopping", "a stopping run does not retry");
    s.ended();
    assert.equal(s.state, "stopped");
    s.stopping();
    s.retrying("NatsError: closed");
    assert.equal(s.state, "stopped");
  });
  await t.step("every change of state wakes the waiters", async () => {
    const s = newStatus();
    const stop = new AbortController();
    const woken = s.nextProgress(60_000, stop.signal).then(() => stop.signal.aborted);
    s.started();
    assert.equal(await woken, false, "woken by the change, not by the abort");
    stop.abort();
  });
});

Deno.test("PullPhase: a set-up due carries its reason, an event in flight its request", async (t) => {
  await t.step("ready, pulling, handling, handled, pulled", () => {
    const p = new PullPhase();
    assert.equal(p.takeReset(), undefined);
    const batch = fakeBatch();
    p.pulling(batch);
    assert.equal(p.batch, batch);
    assert.equal(p.inFlight, false);
    p.handling(7);
    assert.equal(p.inFlight, true);
    assert.deepEqual(p.state, { step: "pulling", batch, handling: 7, reset: undefined });
    p.handled();
    assert.equal(p.inFlight, false);
    p.pulled();
    assert.deepEqual(p.state, { step: "ready" });
    assert.equal(p.batch, undefined);
  });
  await t.step("no event is in flight without a pull request", () => {
    const p = new PullPhase();
    p.handling(3);
    assert.equal(p.inFlight, false);
    assert.deepEqual(p.state, { step: "ready" });
  });
  await t.step("the first reason wins, and a reset asked mid-request waits for its end", () => {
    const p = new PullPhase();
    p.pulling(fakeBatch());
    assert.equal(p.reset("consumer lost (consumer_deleted)"), true);
    assert.equal(p.reset("the source stream was recreated"), false);
    assert.equal(p.takeReset(), undefined, "not while the request runs");
    p.pulled();
    assert.equal(p.reset("again"), false);
    assert.equal(p.takeReset(), "consumer lost (consumer_deleted)");
    assert.equal(p.takeReset(), undefined);
    assert.equal(p.reset("later"), true);
  });
  await t.step("a reset asked during a set-up is carried through the next request", () => {
    const p = new PullPhase();
    p.reset("NatsError: timeout");
    assert.equal(p.takeReset(), "NatsError: timeout");
    assert.equal(p.reset("the source stream was recreated"), true);
    p.pulling(fakeBatch());
    assert.equal(p.state.step === "pulling" && p.state.reset, "the source stream was recreated");
    p.pulled();
    assert.equal(p.takeReset(), "the source stream was recreated");
  });
});
