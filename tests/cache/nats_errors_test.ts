/**
 * `src/nats_errors.ts` against the errors a real nats-server gives: each
 * failure is classified by nats.js's classes and JetStream's codes, and
 * nothing else is mistaken for it.
 */
import assert from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { headers } from "@nats-io/nats-core";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import {
  isConsumerNotFound,
  isMaxConsumers,
  isMessageTooLarge,
  isPermissionDenied,
  isStreamNotFound,
  isUnanswered,
  isWrongLastSequence,
  jsApiCode,
  JsCodes,
} from "../../src/nats_errors.ts";
import { startServer, uniqueBucket } from "../_setup.ts";

/** The rejection of `p` (fails the test if it fulfils). */
async function rejection(p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail(`${what} should have failed`);
}

/** Every classifier's answer for `err`, to check that exactly one says yes. */
function verdicts(err: unknown): Record<string, boolean> {
  return {
    streamNotFound: isStreamNotFound(err),
    consumerNotFound: isConsumerNotFound(err),
    wrongLastSequence: isWrongLastSequence(err),
    maxConsumers: isMaxConsumers(err),
    permissionDenied: isPermissionDenied(err),
    messageTooLarge: isMessageTooLarge(err),
    unanswered: isUnanswered(err),
  };
}

/** `verdicts` with only `which` true. */
function only(which: string): Record<string, boolean> {
  const all = verdicts(undefined);
  for (const k of Object.keys(all)) all[k] = k === which;
  return all;
}

Deno.test("nats_errors classifies the real server's JetStream errors by code", async (t) => {
  await using srv = await startServer();
  const nc = await connect({ servers: srv.tcpUrl });
  try {
    const jsm = await jetstreamManager(nc);
    const js = jetstream(nc);
    const name = uniqueBucket("nerr");
    await jsm.streams.add({ name, subjects: [`${name}.>`], max_msg_size: 64, max_consumers: 1 });

    await t.step("stream not found (10059)", async () => {
      const err = await rejection(jsm.streams.info(`${name}_missing`), "info of a missing stream");
      assert.equal(jsApiCode(err), JsCodes.StreamNotFound);
      assert.deepEqual(verdicts(err), only("streamNotFound"));
    });

    await t.step("a KV bucket that does not exist is a missing stream too", async () => {
      const err = await rejection(
        new Kvm(nc).open(`${name}_nokv`).then((kv) => kv.status()),
        "status of a missing bucket",
      );
      assert.deepEqual(verdicts(err), only("streamNotFound"));
    });

    await t.step("consumer not found (10014)", async () => {
      const err = await rejection(jsm.consumers.info(name, "nobody"), "info of a missing consumer");
      assert.equal(jsApiCode(err), JsCodes.ConsumerNotFound);
      assert.deepEqual(verdicts(err), only("consumerNotFound"));
    });

    await t.step(
      "wrong last sequence (10071): a publish that expected another revision",
      async () => {
        await js.publish(`${name}.k`, "v1");
        const h = headers();
        h.set("Nats-Expected-Last-Subject-Sequence", "99");
        const err = await rejection(js.publish(`${name}.k`, "v2", { headers: h }), "a stale CAS");
        assert.equal(jsApiCode(err), JsCodes.StreamWrongLastSequence);
        assert.deepEqual(verdicts(err), only("wrongLastSequence"));
      },
    );

    await t.step("wrong last sequence: a KV update and a create that lost", async () => {
      const kv = await new Kvm(nc).create(uniqueBucket("nerrkv"));
      await kv.put("a", "1");
      const update = await rejection(kv.update("a", "2", 99), "kv.update at a stale revision");
      assert.deepEqual(verdicts(update), only("wrongLastSequence"));
      const create = await rejection(kv.create("a", "3"), "kv.create of an existing key");
      assert.deepEqual(verdicts(create), only("wrongLastSequence"));
    });

    await t.step("message too large: the stream's max_msg_size (10054)", async () => {
      const err = await rejection(
        js.publish(`${name}.big`, "x".repeat(1000)),
        "an oversized message",
      );
      assert.equal(jsApiCode(err), JsCodes.MessageExceedsMaximum);
      assert.deepEqual(verdicts(err), only("messageTooLarge"));
    });

    await t.step(
      "message too large: the server's max_payload, refused by nats.js before sending",
      async () => {
        const big = new Uint8Array(nc.info!.max_payload + 1);
        const err = await rejection(js.publish(`${name}.huge`, big), "a message over max_payload");
        assert.equal(jsApiCode(err), undefined);
        assert.deepEqual(verdicts(err), only("messageTooLarge"));
      },
    );

    await t.step("maximum consumers limit (10026)", async () => {
      await jsm.consumers.add(name, { durable_name: "first" });
      const err = await rejection(
        jsm.consumers.add(name, { durable_name: "second" }),
        "a second consumer",
      );
      assert.equal(jsApiCode(err), JsCodes.MaximumConsumersLimit);
      assert.deepEqual(verdicts(err), only("maxConsumers"));
    });

    await t.step("a request nobody answers: no responders", async () => {
      const err = await rejection(nc.request(`nobody.${name}`, "?"), "a request to no one");
      assert.deepEqual(verdicts(err), only("unanswered"));
    });

    await t.step("a request that times out", async () => {
      // Not under the stream's subjects: nobody but this listener, which never answers.
      const sub = nc.subscribe(`silent.${name}`);
      try {
        const err = await rejection(
          nc.request(`silent.${name}`, "?", { timeout: 50 }),
          "a request to a silent listener",
        );
        assert.deepEqual(verdicts(err), only("unanswered"));
      } finally {
        sub.unsubscribe();
      }
    });
  } finally {
    await nc.close();
  }
});

Deno.test("nats_errors classifies a permission violation however nats.js wraps it", async () => {
  await using srv = await startServer({
    config: `authorization { users: [
      { user: ro, password: ro, permissions: { publish: { deny: ["$JS.API.>"] } } }
    ] }`,
  });
  const nc = await connect({ servers: srv.tcpUrl, user: "ro", pass: "ro" });
  try {
    const jsm = await jetstreamManager(nc, { checkAPI: false });
    const err = await rejection(
      jsm.streams.info("ANY"),
      "a JetStream request the user may not make",
    );
    assert.deepEqual(verdicts(err), only("permissionDenied"));
  } finally {
    await nc.close();
  }
});
