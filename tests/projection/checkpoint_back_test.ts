/**
 * Events delivered again although they were applied and acked: a checkpoint
 * that goes back (nats-server killed with `kill -9` loses the consumer acks
 * it confirmed in its last few milliseconds), and a replay into the same
 * target. Such an event must change nothing, even when its fold would read
 * a key that a later event wrote. Found by the projection checker
 * (`deno task torture --projection --seed 91351`): an item event for an order
 * that did not exist yet was ignored in order, came back after the server's
 * kill -9, found the order that the next event had created and added its
 * amount to the customer's total.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectTo, dumpBucket, startServer, uniqueBucket } from "../_setup.ts";
import { defineProjection } from "../../src/projection/define.ts";
import { runProjection } from "../../src/projection/runner.ts";
import type { Projection, ProjectionEvent } from "../../src/projection/types.ts";
import { ProjectionTarget } from "../../src/projection/target.ts";
import { applyEvent } from "../../src/projection/apply_event.ts";

type Event = { t: "created"; o: string } | { t: "item"; o: string; amount: number };
type V = { total: number };

/**
 * `created` writes only the order; `item` adds to the order and to
 * `customer`, and is ignored while its order does not exist. So an item
 * event folded after the `created` that followed it writes `customer`,
 * a key no later event has fenced.
 */
function ledger(name: string, stream: string, bucket: string, seen?: number[]): Projection<V> {
  return defineProjection<V>({
    name,
    source: { stream },
    target: bucket,
    async map(e, ctx) {
      seen?.push(e.seq);
      const body = e.json<Event>();
      const key = `order.${body.o}`;
      const order = (await ctx.get(key))?.value;
      if (body.t === "created") return order ? null : { key, value: { total: 0 } };
      if (!order) return null;
      const customer = (await ctx.get("customer"))?.value ?? { total: 0 };
      return [
        { key, value: { total: order.total + body.amount } },
        { key: "customer", value: { total: customer.total + body.amount } },
      ];
    },
  });
}

/** An item for order `a` (ignored: `a` does not exist yet), then `a` created. */
const EVENTS: Event[] = [{ t: "item", o: "a", amount: 12 }, { t: "created", o: "a" }];
/** What an uninterrupted run leaves. */
const EXPECTED = new Map([["order.a", JSON.stringify({ total: 0 })]]);

async function publishEvents(nc: NatsConnection, stream: string): Promise<void> {
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
  const js = jetstream(nc);
  for (const e of EVENTS) await js.publish(`${stream}.ev`, JSON.stringify(e));
}

function event(seq: number, body: Event): ProjectionEvent {
  const data = new TextEncoder().encode(JSON.stringify(body));
  return {
    seq,
    subject: "L.ev",
    key: undefined,
    operation: "PUT",
    data,
    timestampMs: 1_700_000_000_000 + seq,
    redelivered: true,
    header: () => undefined,
    json: <T>() => JSON.parse(new TextDecoder().decode(data)) as T,
    string: () => new TextDecoder().decode(data),
  };
}

Deno.test("an event delivered again after a later event's write is skipped whole", async () => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const bucket = uniqueBucket("back");
    const jsm = await jetstreamManager(nc);
    await new Kvm(nc).create(bucket, { history: 10 });
    const projection = ledger("back", "L", bucket);
    const epoch = "L@one";
    const target = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
    const run = { target, projection, epoch };
    assert.equal((await applyEvent(run, event(1, EVENTS[0]!))).ignored, true);
    await applyEvent(run, event(2, EVENTS[1]!));
    // Event 1 again, as after a checkpoint lost by the server, in a new process.
    const fresh = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
    const out = await applyEvent({ ...run, target: fresh }, event(1, EVENTS[0]!));
    assert.deepEqual(out, {
      applied: 0,
      skipped: 2,
      ignored: false,
      conflicts: 0,
      superseded: true,
    });
    assert.deepEqual(await dumpBucket(nc, bucket), EXPECTED);
    // And in the process that wrote event 2 (its state remembered, no read).
    assert.equal((await applyEvent(run, event(1, EVENTS[0]!))).superseded, true);
    assert.deepEqual(await dumpBucket(nc, bucket), EXPECTED);
  } finally {
    await nc.close();
  }
});

Deno.test("a replay into the same target writes nothing", async () => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const stream = uniqueBucket("L").toUpperCase();
    const bucket = uniqueBucket("replay");
    await publishEvents(nc, stream);
    const p = ledger(uniqueBucket("p"), stream, bucket);
    {
      await using run = await runProjection(nc, p, { statusIntervalMs: 0 });
      await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
    }
    assert.deepEqual(await dumpBucket(nc, bucket), EXPECTED);
    await using again = await runProjection(nc, p, { fromStart: true, statusIntervalMs: 0 });
    await again.caughtUp({ signal: AbortSignal.timeout(30_000) });
    assert.equal(again.status().applied, 0, "the replay wrote nothing");
    assert.deepEqual(await dumpBucket(nc, bucket), EXPECTED);
  } finally {
    await nc.close();
  }
});

Deno.test({
  name: "acks lost by a kill -9 of the server: the events that come back change nothing",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    await using server = await startServer();
    const nc = await connectTo(server);
    const watcher = await connectTo(server);
    try {
      // The server confirms an ack before it writes the consumer's state
      // (about 10 ms later, sync_interval or not), so a kill -9 right after
      // event 2's write loses event 1's ack. Each try needs that kill to land
      // in time; a try where event 1 did not come back proves nothing.
      const redelivered: number[] = [];
      for (let attempt = 1; attempt <= 5 && redelivered.length === 0; attempt++) {
        const stream = uniqueBucket("L").toUpperCase();
        const bucket = uniqueBucket("killed");
        await publishEvents(nc, stream);
        const seen: number[] = [];
        // Event 1 writes nothing: the first write to the target is event 2's.
        const firstWrite = watcher.subscribe(`$KV.${bucket}.>`, { max: 1 });
        await watcher.flush();
        await using run = await runProjection(nc, ledger(uniqueBucket("p"), stream, bucket, seen), {
          statusIntervalMs: 0,
          ackWaitMs: 1_000,
        });
        for await (const _ of firstWrite) await server.kill();
        await server.restart();
        await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
        if (seen.filter((s) => s === 1).length < 2) continue;
        redelivered.push(attempt);
        assert.deepEqual(
          await dumpBucket(nc, bucket),
          EXPECTED,
          `event 1 came back after event 2 was applied (map saw ${seen.join(", ")})`,
        );
      }
      assert.ok(redelivered.length > 0, "in 5 tries no kill -9 lost event 1's ack");
    } finally {
      await watcher.close();
      await nc.close();
    }
  },
});
