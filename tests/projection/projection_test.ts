/**
 * Projections against a real nats-server: the orders example end to end,
 * an abrupt in-process stop and a SIGKILLed projector process that both
 * converge to a fresh replay, fencing by source sequence (redelivery, older
 * events, deletes, a recreated source, a concurrent writer), two runners on
 * one projection, a KV bucket as source, map errors and the worker's usage
 * errors.
 */
import assert from "node:assert/strict";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/nats-core";
import { connectTo, dumpBucket, startServer, uniqueBucket, waitFor } from "../_setup.ts";
import { defineProjection } from "../../src/projection/define.ts";
import { runProjection } from "../../src/projection/runner.ts";
import type { Projection, ProjectionEvent, ProjectionStatus } from "../../src/projection/types.ts";
import {
  type Fence,
  ProjectionTarget,
  SOURCE_EPOCH_HEADER,
  SOURCE_SEQ_HEADER,
} from "../../src/projection/target.ts";
import { applyEvent } from "../../src/projection/apply_event.ts";
import orderSummary, { type OrderSummary } from "../../examples/orders/projection.ts";
import { orderEvents, publishOrders } from "../../examples/orders/publish_orders.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const WORKER = `${ROOT}workers/projector.ts`;
const CONFIG = `${ROOT}deno.json`;
const ORDERS = 420; // about 2 000 events with the default seed

/** The example projection, renamed and pointed at its own target bucket. */
function ordersInto(target: string, name = uniqueBucket("p")): Projection<OrderSummary> {
  return defineProjection<OrderSummary>({ ...orderSummary, name, target });
}

/** The summaries the events should produce, folded here independently of the projection. */
function expectedSummaries(): Map<string, Omit<OrderSummary, "updatedAt">> {
  const m = new Map<string, Omit<OrderSummary, "updatedAt">>();
  for (const e of orderEvents({ orders: ORDERS })) {
    const key = `order.${e.orderId}`;
    const cur = m.get(key);
    if (e.type === "created") {
      m.set(key, { status: "open", customer: e.customer, items: 0, total: 0 });
    } else if (e.type === "cancelled") m.delete(key);
    else if (cur && e.type === "shipped") cur.status = "shipped";
    else if (cur && e.type === "item_added") {
      cur.items += e.qty;
      cur.total = (Math.round(cur.total * 100) + e.qty * Math.round(e.price * 100)) / 100;
    }
  }
  return m;
}

function assertMatchesModel(actual: Map<string, string>): void {
  const expected = expectedSummaries();
  assert.deepEqual([...actual.keys()].sort(), [...expected.keys()].sort());
  for (const [key, text] of actual) {
    const { updatedAt, ...rest } = JSON.parse(text) as OrderSummary;
    assert.ok(!Number.isNaN(Date.parse(updatedAt)), `${key} has a timestamp`);
    assert.deepEqual(rest, expected.get(key), key);
  }
}

/** Replays the orders into a fresh bucket and returns its contents. */
async function freshReplay(nc: NatsConnection): Promise<Map<string, string>> {
  const bucket = uniqueBucket("replay");
  await using run = await runProjection(nc, ordersInto(bucket), {
    fromStart: true,
    statusIntervalMs: 0,
  });
  await run.caughtUp({ signal: AbortSignal.timeout(60_000) });
  return dumpBucket(nc, bucket);
}

/** The consumer's ack floor (the checkpoint) and what it still holds. */
async function consumerState(nc: NatsConnection, stream: string, name: string) {
  const jsm = await jetstreamManager(nc);
  const ci = await jsm.consumers.info(stream, `projection_${name}`);
  return { floor: ci.ack_floor.stream_seq, held: ci.num_ack_pending, pending: ci.num_pending };
}

Deno.test("defineProjection() refuses bad definitions before any I/O", () => {
  const map = () => null;
  const bad: [string, unknown][] = [
    ["name", { name: "a b", source: { stream: "S" }, target: "t", map }],
    ["exactly one", { name: "n", source: { stream: "S", bucket: "b" }, target: "t", map }],
    ["exactly one", { name: "n", source: {}, target: "t", map }],
    ["source.subject", { name: "n", source: { stream: "S", subject: "a.>.b" }, target: "t", map }],
    ["source.keys", { name: "n", source: { bucket: "b", keys: "a..b" }, target: "t", map }],
    ["target.bucket", { name: "n", source: { stream: "S" }, target: "x.y", map }],
    ["feed itself", { name: "n", source: { bucket: "b" }, target: "b", map }],
    ["map", { name: "n", source: { stream: "S" }, target: "t", map: 1 }],
  ];
  for (const [what, options] of bad) {
    assert.throws(
      () => defineProjection(options as never),
      (err: unknown) =>
        err instanceof TypeError && err.message.startsWith("Cannot define projection:") &&
        err.message.includes(what),
      what,
    );
  }
  const p = defineProjection({ name: "n", source: { bucket: "b" }, target: "t", map });
  assert.deepEqual(p.source, { bucket: "b", keys: ">" });
  assert.deepEqual(p.target, { bucket: "t", create: true });
  assert.ok(Object.isFrozen(p));
});

Deno.test("orders projection: crash, restart and replay converge", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const published = await publishOrders(nc, jetstream(nc), { orders: ORDERS });
    assert.ok(published.events >= 1_900, `about 2000 events, got ${published.events}`);
    const replay = await freshReplay(nc);
    await t.step("a full replay equals the summaries folded independently", () => {
      assertMatchesModel(replay);
    });

    await t.step(
      "an abrupt in-process stop mid-stream, then a restart, equals a replay",
      async () => {
        const bucket = uniqueBucket("summary");
        const projection = ordersInto(bucket);
        const nc1 = await connectTo(server);
        const run1 = await runProjection(nc1, projection, {
          ackWaitMs: 1_000,
          statusIntervalMs: 0,
        });
        await waitFor(() => run1.status().events >= 400, {
          timeoutMs: 30_000,
          message: "400 events",
        });
        // No stop(): the connection goes away under the runner, mid-event.
        await nc1.close();
        const ended = await run1.closed();
        assert.equal(ended.state, "failed");
        const cut = await consumerState(nc, "ORDERS", projection.name);
        assert.ok(cut.floor < published.lastSeq, `stopped mid-stream (floor ${cut.floor})`);

        await using run2 = await runProjection(nc, projection, {
          ackWaitMs: 1_000,
          statusIntervalMs: 0,
        });
        const done = await run2.caughtUp({ signal: AbortSignal.timeout(60_000) });
        assert.equal(done.lag, 0);
        assert.equal(done.checkpoint, published.lastSeq);
        assert.deepEqual(await dumpBucket(nc, bucket), replay);
      },
    );

    await t.step("a replay into the populated target writes nothing", async () => {
      const bucket = uniqueBucket("summary");
      const projection = ordersInto(bucket);
      const first = await runProjection(nc, projection, { statusIntervalMs: 0 });
      await first.caughtUp({ signal: AbortSignal.timeout(60_000) });
      await first.stop();
      const jsm = await jetstreamManager(nc);
      const before = (await jsm.streams.info(`KV_${bucket}`)).state.last_seq;

      await using again = await runProjection(nc, projection, {
        fromStart: true,
        statusIntervalMs: 0,
      });
      const s = await again.caughtUp({ signal: AbortSignal.timeout(60_000) });
      assert.equal(s.events, published.events, "every event was delivered again");
      assert.equal(s.applied, 0, "no write repeated");
      // Events of cancelled orders after their creation find no summary to fold into.
      assert.equal(s.skipped + s.ignored, published.events);
      assert.ok(s.skipped > 0);
      assert.equal((await jsm.streams.info(`KV_${bucket}`)).state.last_seq, before);
      assert.deepEqual(await dumpBucket(nc, bucket), replay);
    });

    await t.step("two runners of one projection apply each event once, in order", async () => {
      const bucket = uniqueBucket("summary");
      const projection = ordersInto(bucket);
      const ncs = [await connectTo(server), await connectTo(server)];
      try {
        const runs = await Promise.all(
          ncs.map((c) => runProjection(c, projection, { statusIntervalMs: 0 })),
        );
        await Promise.all(runs.map((r) => r.caughtUp({ signal: AbortSignal.timeout(60_000) })));
        const stats = await Promise.all(runs.map((r) => r.stop()));
        assert.equal(stats[0]!.events + stats[1]!.events, published.events);
        assert.ok(stats.every((s) => s.events > 0), "both runners took part");
        assert.deepEqual(await dumpBucket(nc, bucket), replay);
      } finally {
        for (const c of ncs) await c.close();
      }
    });

    await t.step("stop() finishes the event in flight and leaves none held", async () => {
      // With a 10-minute ack wait, an event left delivered to the stopped
      // runner would stall the next one far beyond the deadline below.
      const ackWaitMs = 600_000;
      const bucket = uniqueBucket("summary");
      const projection = ordersInto(bucket);
      for (let round = 0; round < 3; round++) {
        const run = await runProjection(nc, projection, { ackWaitMs, statusIntervalMs: 0 });
        const target = (round + 1) * 300;
        await waitFor(() => run.status().checkpoint >= target, {
          timeoutMs: 30_000,
          message: `checkpoint ${target}`,
        });
        const s = await run.stop();
        assert.equal(s.state, "stopped");
        const after = await consumerState(nc, "ORDERS", projection.name);
        assert.equal(after.floor, s.checkpoint, "the last event applied was acked");
        assert.ok(after.floor < published.lastSeq);
      }
      const before = (await consumerState(nc, "ORDERS", projection.name)).floor;
      await using resumed = await runProjection(nc, projection, { ackWaitMs, statusIntervalMs: 0 });
      const done = await resumed.caughtUp({ signal: AbortSignal.timeout(30_000) });
      assert.equal(done.events, published.lastSeq - before, "resumed after the checkpoint");
      assert.deepEqual(await dumpBucket(nc, bucket), replay);
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a nats-server killed and restarted mid-stream is ridden out", async () => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const published = await publishOrders(nc, jetstream(nc), { orders: ORDERS });
    const bucket = uniqueBucket("summary");
    await using run = await runProjection(nc, ordersInto(bucket), {
      ackWaitMs: 2_000,
      retryDelayMs: 50,
      maxRetryDelayMs: 500,
      statusIntervalMs: 0,
    });
    await waitFor(() => run.status().checkpoint >= 300, { timeoutMs: 30_000, message: "300" });
    await server.kill();
    await server.restart();
    const done = await run.caughtUp({ signal: AbortSignal.timeout(60_000) });
    assert.equal(done.checkpoint, published.lastSeq);
    assert.notEqual(done.state, "failed");
    // Counters cannot be exact here: a write whose ack the kill swallowed is
    // later skipped as already applied, and nats-server 2.9 may lose its last
    // acknowledged writes to a kill -9, which a redelivery then makes again.
    // What must hold is the state.
    assert.ok(done.events >= published.events);
    const replay = await freshReplay(nc);
    assertMatchesModel(replay);
    assert.deepEqual(await dumpBucket(nc, bucket), replay);
  } finally {
    await nc.close();
  }
});

Deno.test("deno task project: SIGKILL mid-stream, restart, same state as a replay", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  const dir = await Deno.makeTempDir({ prefix: "kvedge_projector_" });
  try {
    const published = await publishOrders(nc, jetstream(nc), { orders: ORDERS });
    const name = uniqueBucket("p");
    const bucket = uniqueBucket("summary");
    const module = `${dir}/projection.ts`;
    await Deno.writeTextFile(
      module,
      `import orders from ${JSON.stringify(`${ROOT}examples/orders/projection.ts`)};\n` +
        `import { defineProjection } from ${JSON.stringify(`${ROOT}src/projection/define.ts`)};\n` +
        `export default [defineProjection({ ...orders, name: ${JSON.stringify(name)}, ` +
        `target: ${JSON.stringify(bucket)} })];\n`,
    );
    const spawn = (extra: string[]) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "--config", CONFIG, WORKER, "--ack-wait-ms", "1000", ...extra, module],
        cwd: dir,
        env: { NATS_URL: server.url, NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).spawn();

    await t.step("the process is killed while it projects", async () => {
      const child = spawn(["--status-every", "0.2"]);
      // Drained, not closed: a closed pipe would kill the worker before we do.
      const drained = Promise.all([
        child.stdout.pipeTo(new WritableStream()),
        child.stderr.pipeTo(new WritableStream()),
      ]);
      try {
        await waitFor(async () => {
          try {
            return (await consumerState(nc, "ORDERS", name)).floor >= 300;
          } catch {
            return false;
          }
        }, { timeoutMs: 60_000, message: "the projector applied 300 events" });
      } finally {
        child.kill("SIGKILL");
      }
      const status = await child.status;
      await drained;
      assert.equal(status.signal, "SIGKILL");
      const cut = await consumerState(nc, "ORDERS", name);
      assert.ok(cut.floor < published.lastSeq, `killed mid-stream (floor ${cut.floor})`);
    });

    await t.step("a restart catches up and exits 0 with --until-caught-up", async () => {
      const out = await spawn(["--until-caught-up", "--status-every", "1"]).output();
      const stdout = new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const lines = stdout.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
      assert.ok(lines.some((l) => l.msg === "caught up"));
      const last = lines.findLast((l) => l.msg === "projection stopped") as unknown as
        | ProjectionStatus
        | undefined;
      assert.equal(last?.lag, 0);
      assert.equal(last?.checkpoint, published.lastSeq);
    });

    await t.step("the target equals a fresh replay into another bucket", async () => {
      const replay = await freshReplay(nc);
      assertMatchesModel(replay);
      assert.deepEqual(await dumpBucket(nc, bucket), replay);
    });

    await t.step("bad modules and flags exit 2 with one error line", async () => {
      const empty = `${dir}/empty.ts`;
      await Deno.writeTextFile(empty, "export default 42;\n");
      for (const args of [[empty], ["--on-map-error", "maybe", module], []]) {
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", "--config", CONFIG, WORKER, ...args],
          cwd: dir,
          env: { NATS_URL: server.url, NO_COLOR: "1" },
          stdin: "null",
        }).output();
        assert.equal(out.code, 2, args.join(" "));
        const err = new TextDecoder().decode(out.stderr);
        assert.match(err, /usage: deno task project/);
        assert.doesNotMatch(err, /^\s+at /m);
      }
    });
  } finally {
    await nc.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** A synthetic source event at `seq`. */
function event(seq: number, body: unknown): ProjectionEvent {
  const data = new TextEncoder().encode(JSON.stringify(body));
  return {
    seq,
    subject: "counts.x",
    key: undefined,
    operation: "PUT",
    data,
    timestampMs: 1_700_000_000_000 + seq,
    redelivered: false,
    header: () => undefined,
    json: <T>() => JSON.parse(new TextDecoder().decode(data)) as T,
    string: () => new TextDecoder().decode(data),
  };
}

Deno.test("fencing: repeated, older and cross-incarnation events", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const bucket = uniqueBucket("fence");
    const kv = await new Kvm(nc).create(bucket, { history: 10 });
    const jsm = await jetstreamManager(nc);
    let beforeWrite: (() => Promise<void>) | undefined;
    let mapCalls = 0;
    // A fold that double-counts if an event is applied twice.
    const counter = defineProjection<number>({
      name: "counter",
      source: { stream: "COUNTS" },
      target: bucket,
      async map(e, ctx) {
        mapCalls++;
        const body = e.json<{ op: "inc" | "del" }>();
        if (body.op === "del") return { key: "n", delete: true };
        const n = (await ctx.get("n"))?.value ?? 0;
        const hook = beforeWrite;
        beforeWrite = undefined;
        await hook?.();
        return { key: "n", value: n + 1 };
      },
    });
    const target = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
    const E1 = "COUNTS@one";
    const value = async () => {
      const e = await kv.get("n");
      return e?.operation === "PUT" ? e.json<number>() : e?.operation;
    };

    await t.step("an event is applied once, however often it comes", async () => {
      assert.deepEqual(
        await applyEvent({ target, projection: counter, epoch: E1 }, event(10, { op: "inc" })),
        { applied: 1, skipped: 0, ignored: false, conflicts: 0, superseded: false },
      );
      const again = await applyEvent(
        { target, projection: counter, epoch: E1 },
        event(10, { op: "inc" }),
      );
      assert.equal(again.skipped, 1);
      assert.equal(await value(), 1);
    });

    await t.step("an older event after a newer one is skipped", async () => {
      const old = await applyEvent(
        { target, projection: counter, epoch: E1 },
        event(5, { op: "inc" }),
      );
      assert.equal(old.skipped, 1);
      assert.equal(old.superseded, true, "its fold read a later event's value");
      assert.equal(await value(), 1);
      await applyEvent({ target, projection: counter, epoch: E1 }, event(11, { op: "inc" }));
      assert.equal(await value(), 2);
    });

    await t.step("the source sequence travels in headers; the value stays plain", async () => {
      const sm = await jsm.streams.getMessage(`KV_${bucket}`, { last_by_subj: `$KV.${bucket}.n` });
      assert.equal(sm?.header.get(SOURCE_SEQ_HEADER), "11");
      assert.equal(sm?.header.get(SOURCE_EPOCH_HEADER), E1);
      assert.equal(new TextDecoder().decode(sm!.data), "2");
    });

    await t.step("a delete is fenced too: an older put cannot bring the key back", async () => {
      assert.equal(
        (await applyEvent({ target, projection: counter, epoch: E1 }, event(12, { op: "del" })))
          .applied,
        1,
      );
      assert.equal(await value(), "DEL");
      const fresh = new ProjectionTarget({ jsm, js: jetstream(nc), bucket }); // nothing remembered
      assert.equal(
        (await applyEvent(
          { target: fresh, projection: counter, epoch: E1 },
          event(11, { op: "inc" }),
        )).skipped,
        1,
      );
      assert.equal(await value(), "DEL");
    });

    await t.step("a new incarnation of the source starts the fold afresh", async () => {
      await applyEvent({ target, projection: counter, epoch: E1 }, event(13, { op: "inc" }));
      assert.equal(await value(), 1);
      const E2 = "COUNTS@two";
      const out = await applyEvent(
        { target, projection: counter, epoch: E2 },
        event(1, { op: "inc" }),
      );
      assert.equal(out.applied, 1, "a lower sequence of another incarnation is not fenced");
      assert.equal(await value(), 1, "the old incarnation's value is not a fold input");
    });

    await t.step("a write that lands between read and write is not lost", async () => {
      const E3 = "COUNTS@three";
      await applyEvent({ target, projection: counter, epoch: E3 }, event(1, { op: "inc" }));
      assert.equal(await value(), 1);
      const hits = mapCalls;
      // Another writer of this projection applies event 2 while event 3 is being folded.
      beforeWrite = async () => {
        const other = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
        await applyEvent(
          { target: other, projection: counter, epoch: E3 },
          event(2, { op: "inc" }),
        );
      };
      const out = await applyEvent(
        { target, projection: counter, epoch: E3 },
        event(3, { op: "inc" }),
      );
      assert.equal(out.conflicts, 1);
      assert.equal(out.applied, 1);
      assert.equal(
        mapCalls - hits,
        3,
        "map re-ran on the new state (plus the other writer's call)",
      );
      assert.equal(await value(), 3);
    });

    await t.step("a key a fold only read is re-checked if it was remembered", async () => {
      const copier = defineProjection<number>({
        name: "copier",
        source: { stream: "COUNTS" },
        target: bucket,
        async map(e, ctx) {
          const body = e.json<{ set?: number }>();
          if (body.set !== undefined) return { key: "config", value: body.set };
          return { key: `copy.${e.seq}`, value: (await ctx.get("config"))?.value ?? -1 };
        },
      });
      const E4 = "COUNTS@four";
      const mine = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
      const theirs = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
      await applyEvent({ target: mine, projection: copier, epoch: E4 }, event(1, { set: 1 })); // remembered by `mine`
      await applyEvent({ target: theirs, projection: copier, epoch: E4 }, event(2, { set: 2 })); // another runner moves it
      const out = await applyEvent({ target: mine, projection: copier, epoch: E4 }, event(3, {}));
      assert.equal(out.conflicts, 1);
      assert.equal((await kv.get("copy.3"))?.json<number>(), 2, "folded on the real value");
    });
  } finally {
    await nc.close();
  }
});

Deno.test("an event interrupted between its writes is refolded on the values from before it", async (t) => {
  // Found by the projection checker (deno task torture --projection, seed 1):
  // an event whose first write landed before a kill came back and saw that
  // write as its input, so its other keys were folded on its own result.
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const bucket = uniqueBucket("refold");
    const kv = await new Kvm(nc).create(bucket, { history: 10 });
    const jsm = await jetstreamManager(nc);
    type V = { total: number };
    // `order.<o>` first, then `customer`, whose total moves by the order's old total.
    const ledger = defineProjection<V>({
      name: "refold",
      source: { stream: "LEDGER" },
      target: bucket,
      async map(e, ctx) {
        const body = e.json<{ o: string; add?: number; cancel?: true }>();
        const key = `order.${body.o}`;
        const order = (await ctx.get(key))?.value;
        const customer = (await ctx.get("customer"))?.value ?? { total: 0 };
        if (body.cancel) {
          if (!order) return null;
          return [
            { key, delete: true },
            { key: "customer", value: { total: customer.total - order.total } },
          ];
        }
        const next = { total: (order?.total ?? 0) + body.add! };
        return [
          { key, value: next },
          { key: "customer", value: { total: customer.total - (order?.total ?? 0) + next.total } },
        ];
      },
    });
    /** A target whose next write of `customer` fails: the process dies between two writes. */
    class DiesBeforeCustomer extends ProjectionTarget {
      armed = true;
      override put(key: string, write: { data: Uint8Array; fence: Fence }) {
        if (this.armed && key === "customer") {
          this.armed = false;
          return Promise.reject(new Error("killed between two writes"));
        }
        return super.put(key, write);
      }
    }
    const E = "LEDGER@one";
    const total = async (key: string) => {
      const e = await kv.get(key);
      return e?.operation === "PUT" ? e.json<V>().total : e?.operation;
    };
    const target = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
    await applyEvent({ target, projection: ledger, epoch: E }, event(1, { o: "a", add: 5 }));
    await applyEvent({ target, projection: ledger, epoch: E }, event(2, { o: "b", add: 7 }));
    assert.equal(await total("customer"), 12);

    await t.step("redelivered to a new process", async () => {
      const dying = new DiesBeforeCustomer({ jsm, js: jetstream(nc), bucket });
      await assert.rejects(
        applyEvent(
          { target: dying, projection: ledger, epoch: E },
          event(3, { o: "a", cancel: true }),
        ),
        /killed between two writes/,
      );
      assert.equal(await total("order.a"), "DEL", "the first write landed");
      const next = new ProjectionTarget({ jsm, js: jetstream(nc), bucket });
      const out = await applyEvent(
        { target: next, projection: ledger, epoch: E },
        event(3, { o: "a", cancel: true }),
      );
      assert.deepEqual(out, {
        applied: 1,
        skipped: 1,
        ignored: false,
        conflicts: 0,
        superseded: false,
      });
      assert.equal(await total("customer"), 7, "the cancelled order's 5 is taken off once");
    });

    await t.step("retried by the same process, which remembers its own write", async () => {
      const dying = new DiesBeforeCustomer({ jsm, js: jetstream(nc), bucket });
      const e4 = event(4, { o: "b", add: 3 });
      await assert.rejects(
        applyEvent({ target: dying, projection: ledger, epoch: E }, e4),
        /killed between two writes/,
      );
      assert.equal(await total("order.b"), 10);
      const out = await applyEvent({ target: dying, projection: ledger, epoch: E }, e4);
      assert.deepEqual(out, {
        applied: 1,
        skipped: 1,
        ignored: false,
        conflicts: 0,
        superseded: false,
      });
      assert.equal(await total("customer"), 10, "order b's 3 is added once");
      assert.equal(await total("order.b"), 10);
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a KV bucket as source: puts, updates and deletes follow live", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const sourceBucket = uniqueBucket("users");
    const targetBucket = uniqueBucket("public");
    const users = await new Kvm(nc).create(sourceBucket, { history: 5 });
    for (let i = 1; i <= 50; i++) {
      await users.put(`user.${i}`, JSON.stringify({ name: `U${i}`, email: `u${i}@x.test` }));
    }
    await users.put("user.7", JSON.stringify({ name: "Seven", email: "7@x.test" }));
    await users.delete("user.3");
    await users.purge("user.4");
    await users.put("other.1", JSON.stringify({ name: "not a user" }));
    // A public view: the name only, same key; gone when the user is.
    const publicUsers = defineProjection<{ name: string }>({
      name: uniqueBucket("pub"),
      source: { bucket: sourceBucket, keys: "user.>" },
      target: targetBucket,
      map(e) {
        if (e.operation !== "PUT") return { key: e.key!, delete: true };
        return { key: e.key!, value: { name: e.json<{ name: string }>().name } };
      },
    });
    await using run = await runProjection(nc, publicUsers, { statusIntervalMs: 0 });
    const target = await new Kvm(nc).open(targetBucket);

    await t.step("the target holds the view of the source's latest state", async () => {
      await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
      const got = await dumpBucket(nc, targetBucket);
      assert.equal(got.size, 48);
      assert.equal(got.get("user.7"), JSON.stringify({ name: "Seven" }));
      assert.equal(got.has("user.3"), false);
      assert.equal(got.has("user.4"), false);
      assert.equal(got.has("other.1"), false);
      assert.ok(![...got.values()].some((v) => v.includes("@")), "no email leaks");
    });

    await t.step("each target entry records the source revision it came from", async () => {
      const rev = (await users.get("user.7"))!.revision;
      const jsm = await jetstreamManager(nc);
      const sm = await jsm.streams.getMessage(`KV_${targetBucket}`, {
        last_by_subj: `$KV.${targetBucket}.user.7`,
      });
      assert.equal(sm?.header.get(SOURCE_SEQ_HEADER), String(rev));
    });

    await t.step("later changes of the source reach the target", async () => {
      await users.put("user.1", JSON.stringify({ name: "One", email: "1@x.test" }));
      await users.delete("user.2");
      await waitFor(async () => (await target.get("user.1"))?.string() === '{"name":"One"}', {
        message: "user.1 renamed in the target",
      });
      await waitFor(async () => (await target.get("user.2"))?.operation === "DEL", {
        message: "user.2 deleted in the target",
      });
      const s = run.status();
      assert.equal(s.state, "running");
      assert.equal(s.source, `bucket ${sourceBucket} user.>`);
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a failing map stops the projection, or is skipped when asked", async (t) => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = uniqueBucket("EV");
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    for (const body of ['{"n":1}', "not json", '{"n":3}']) await js.publish(`${stream}.e`, body);
    const define = (name: string, target: string) =>
      defineProjection<number>({
        name,
        source: { stream },
        target,
        map: (e) => ({ key: `n.${e.seq}`, value: e.json<{ n: number }>().n }),
      });

    await t.step("stop: the run fails at the bad event and does not ack it", async () => {
      const target = uniqueBucket("t");
      const p = define(uniqueBucket("p"), target);
      const run = await runProjection(nc, p, { statusIntervalMs: 0 });
      const end = await run.closed();
      assert.equal(end.state, "failed");
      assert.equal(end.mapErrors, 1);
      assert.match(end.lastError ?? "", /event 2 .*map threw/);
      assert.equal(end.checkpoint, 1);
      await assert.rejects(() => run.caughtUp(), /failed/);
      assert.equal((await consumerState(nc, stream, p.name)).floor, 1);
      assert.deepEqual([...(await dumpBucket(nc, target)).keys()], ["n.1"]);
    });

    await t.step("skip: the bad event is passed over and the rest applied", async () => {
      const target = uniqueBucket("t");
      await using run = await runProjection(nc, define(uniqueBucket("p"), target), {
        onMapError: "skip",
        statusIntervalMs: 0,
      });
      const s = await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
      assert.equal(s.mapErrors, 1);
      assert.equal(s.checkpoint, 3);
      assert.deepEqual([...(await dumpBucket(nc, target)).keys()], ["n.1", "n.3"]);
    });

    await t.step("a consumer made for another target is refused, unless replaying", async () => {
      const name = uniqueBucket("p");
      const first = await runProjection(nc, define(name, uniqueBucket("t")), {
        onMapError: "skip",
        statusIntervalMs: 0,
      });
      await first.stop();
      await assert.rejects(
        () => runProjection(nc, define(name, uniqueBucket("t")), { statusIntervalMs: 0 }),
        (err: unknown) => (err as { code?: string }).code === "CONFLICT",
      );
      const replay = await runProjection(nc, define(name, uniqueBucket("t")), {
        fromStart: true,
        onMapError: "skip",
        statusIntervalMs: 0,
      });
      await replay.caughtUp({ signal: AbortSignal.timeout(30_000) });
      await replay.stop();
    });

    await t.step("a map that gives up on ctx.signal during stop() is no map error", async () => {
      const slow = uniqueBucket("SLOW");
      await jsm.streams.add({ name: slow, subjects: [`${slow}.>`] });
      await js.publish(`${slow}.e`, '{"n":1}');
      await js.publish(`${slow}.e`, '{"wait":true}');
      let waiting = false;
      const p = defineProjection<number>({
        name: uniqueBucket("p"),
        source: { stream: slow },
        target: uniqueBucket("t"),
        map: (e, ctx) => {
          if (!e.json<{ wait?: boolean }>().wait) return { key: `n.${e.seq}`, value: 1 };
          waiting = true;
          return new Promise((_, reject) => {
            ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
          });
        },
      });
      const run = await runProjection(nc, p, { statusIntervalMs: 0 });
      await waitFor(() => waiting, { message: "map waiting on event 2" });
      const s = await run.stop();
      assert.equal(s.state, "stopped");
      assert.equal(s.mapErrors, 0);
      assert.equal(s.checkpoint, 1, "event 2 was given back, not acked");
      assert.equal((await consumerState(nc, slow, p.name)).floor, 1);
    });

    await t.step("a missing source stream is reported, not waited for", async () => {
      const p = defineProjection({
        name: "nosource",
        source: { stream: "NO_SUCH_STREAM" },
        target: uniqueBucket("t"),
        map: () => null,
      });
      await assert.rejects(
        () => runProjection(nc, p),
        (err: unknown) => (err as { code?: string }).code === "BUCKET_NOT_FOUND",
      );
    });
  } finally {
    await nc.close();
  }
});

Deno.test("a deleted and recreated source stream is followed from its new first event", async () => {
  await using server = await startServer();
  const nc = await connectTo(server);
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const stream = uniqueBucket("SRC");
    const target = uniqueBucket("t");
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    await js.publish(`${stream}.e`, JSON.stringify({ k: 1, v: "old-1" }));
    await js.publish(`${stream}.e`, JSON.stringify({ k: 2, v: "old-2" }));
    const latest = defineProjection<string>({
      name: uniqueBucket("p"),
      source: { stream },
      target,
      map: (e) => {
        const { k, v } = e.json<{ k: number; v: string }>();
        return { key: `k.${k}`, value: v };
      },
    });
    await using run = await runProjection(nc, latest, {
      retryDelayMs: 50,
      maxRetryDelayMs: 200,
      statusIntervalMs: 200,
    });
    await run.caughtUp({ signal: AbortSignal.timeout(30_000) });
    const before = run.status().epoch;

    await jsm.streams.delete(stream);
    await jsm.streams.add({ name: stream, subjects: [`${stream}.>`] });
    // Sequence 1 again: fenced by sequence alone, it would be taken for the old event 1.
    const ack = await js.publish(`${stream}.e`, JSON.stringify({ k: 1, v: "new-1" }));
    assert.equal(ack.seq, 1);
    const kv = await new Kvm(nc).open(target);
    await waitFor(async () => (await kv.get("k.1"))?.json<string>() === "new-1", {
      timeoutMs: 30_000,
      message: "the new incarnation's event 1 reached the target",
    });
    assert.notEqual(run.status().epoch, before);
    assert.equal((await kv.get("k.2"))?.json<string>(), "old-2", "untouched keys keep their value");
  } finally {
    await nc.close();
  }
});
