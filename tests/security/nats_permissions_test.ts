/**
 * The least-privilege identities of docs/nats-edge.conf against a real
 * nats-server: what each identity may and may not do, that every subject
 * granted to an edge is needed, and why `$JS.FC` is granted.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import { openCache } from "../../mod.ts";
import { createApp } from "../../http.ts";
import { connectTo, type ServerHandle, startServer, waitFor } from "../_setup.ts";
import {
  assertNoSecret,
  assertPermission,
  assertRawDenied,
  docConfig,
  openAs,
  PASSWORDS,
} from "../_security.ts";

Deno.test("least-privilege identities of docs/nats-edge.conf", async (t) => {
  await using srv = await startServer({ config: docConfig() });
  const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
  const kvm = new Kvm(admin);
  const cfg = await kvm.create("cfg", { history: 5 });
  const secret = await kvm.create("secret", { history: 5 });
  for (let i = 0; i < 5; i++) await cfg.put(`app.k${i}`, JSON.stringify(i));
  await secret.put("db.password", JSON.stringify(42));
  const allSecrets = [...Object.values(PASSWORDS)];

  try {
    for (const mode of ["lazy", "replica"] as const) {
      await t.step(`a read-only edge (${mode}) serves and stays fresh`, async () => {
        const k = (i: number) => `${mode}.k${i}`;
        for (let i = 0; i < 20; i++) await cfg.put(k(i), JSON.stringify(i));
        await using edge = await openAs(srv, "edge", { mode });
        await edge.ready({ timeoutMs: 10_000 });
        assert.equal(await edge.get(k(3)), 3);
        const rev = await cfg.put(k(3), JSON.stringify(33));
        await waitFor(() => edge.peek(k(3)) === 33, {
          message: "the admin's update reached the edge",
        });
        assert.equal((await edge.getEntry(k(3)))?.revision, rev);
        assert.equal(await edge.get(k(4)), 4);
        await cfg.delete(k(4));
        await waitFor(async () => (await edge.get(k(4))) === undefined, {
          message: "the admin's delete reached the edge",
        });
        // The listing and history use ordered consumers of their own.
        const keys = await Array.fromAsync(edge.keys(`${mode}.>`));
        assert.equal(keys.length, 19);
        assert.ok(!keys.includes(k(4)));
        const history = await edge.history(k(3));
        assert.deepEqual(history.map((h) => h.value), [3, 33]);
        // A replay from a revision uses a second watcher with the same permissions.
        const replayed: string[] = [];
        const ac = new AbortController();
        for await (const ch of edge.changes({ fromRevision: rev, signal: ac.signal })) {
          replayed.push(`${ch.key}@${ch.revision}`);
          if (replayed.length === 2) ac.abort();
        }
        assert.equal(replayed[0], `${k(3)}@${rev}`);
        assert.equal(replayed[1]?.startsWith(`${k(4)}@`), true);
        assert.equal(edge.status().lastError, undefined);
        assert.equal(edge.status().state, "synced");
      });
    }

    await t.step("every write of a read-only edge fails at once with PermissionError", async () => {
      await using edge = await openAs(srv, "edge");
      await edge.ready({ timeoutMs: 10_000 });
      const before = (await jetstreamManager(admin).then((m) => m.streams.info("KV_cfg"))).state;
      const current = (await cfg.get("app.k1"))!.revision;
      await assertPermission(edge.set("app.k1", 100), "set");
      await assertPermission(edge.create("app.new", 1), "create");
      await assertPermission(edge.update("app.k1", 100, current), "update");
      await assertPermission(edge.delete("app.k1"), "delete");
      await assertPermission(edge.purge("app.k1"), "purge");
      const after = (await jetstreamManager(admin).then((m) => m.streams.info("KV_cfg"))).state;
      assert.equal(after.last_seq, before.last_seq, "a refused write reached the bucket");
      assert.equal(await edge.get("app.k1"), 1);
      // Refused writes do not break the edge: it still follows the bucket.
      await cfg.put("app.k1", JSON.stringify(11));
      await waitFor(() => edge.peek("app.k1") === 11, { message: "update after refusals" });
    });

    await t.step("the HTTP facade of a read-only edge answers 403 upstream_forbidden", async () => {
      await using edge = await openAs(srv, "edge");
      const app = createApp({ buckets: { cfg: { cache: edge } }, auth: { anonymousWrites: true } });
      for (const init of [{ method: "PUT", body: "1" }, { method: "DELETE" }]) {
        const res = await app.request("/v1/buckets/cfg/keys/app.k2", init);
        assert.equal(res.status, 403, `${init.method} answered ${res.status}`);
        assert.equal(res.headers.get("content-type"), "application/problem+json");
        const p = await res.json();
        assert.equal(p.code, "upstream_forbidden");
        assertNoSecret(p, allSecrets, "problem body");
      }
    });

    await t.step("the edge cannot read a bucket it was not granted", async () => {
      const err = await assertPermission(
        openCache({
          servers: srv.url,
          bucket: "secret",
          local: { maxItems: 10 },
          connectOptions: { user: "edge", pass: PASSWORDS.edge, inboxPrefix: "_INBOX_edge" },
        }),
        "open a cache on an ungranted bucket",
      );
      assertNoSecret(err, allSecrets, "the open error");
      // Nor around the cache: raw JetStream reads, a consumer, or a plain subscription.
      const raw = await connectTo(srv, {
        user: "edge",
        pass: PASSWORDS.edge,
        inboxPrefix: "_INBOX_edge",
      });
      try {
        const jsm = await jetstreamManager(raw, { checkAPI: false, timeout: 30_000 });
        await assertRawDenied(
          jsm.streams.getMessage("KV_secret", { last_by_subj: "$KV.secret.db.password" }),
          "a leader get on KV_secret",
        );
        await assertRawDenied(
          jsm.direct.getMessage("KV_secret", { last_by_subj: "$KV.secret.db.password" }),
          "a direct get on KV_secret",
        );
        await assertRawDenied(
          jsm.consumers.add("KV_secret", {
            name: "peek",
            ack_policy: AckPolicy.None,
            deliver_subject: "_INBOX_edge.peek",
            filter_subject: "$KV.secret.>",
          }),
          "a consumer on KV_secret",
        );
        // An unfiltered consumer on its own bucket is refused too (its subject has no filter).
        await assertRawDenied(
          jsm.consumers.add("KV_cfg", {
            name: "wide",
            ack_policy: AckPolicy.None,
            deliver_subject: "_INBOX_edge.wide",
          }),
          "an unfiltered consumer on KV_cfg",
        );
        const sub = raw.subscribe("$KV.secret.>");
        const closed = await sub.closed;
        assert.ok(closed instanceof Error && /permissions violation/i.test(closed.message));
      } finally {
        await raw.close();
      }
    });

    await t.step("an edge connecting without its inbox prefix is refused at open", async () => {
      await assertPermission(
        openCache({
          servers: srv.url,
          bucket: "cfg",
          local: { maxItems: 10 },
          connectOptions: { user: "edge", pass: PASSWORDS.edge },
        }),
        "open without inboxPrefix",
      );
    });

    await t.step("the writer identity writes its bucket and nothing else", async () => {
      await using w = await openAs(srv, "writer");
      await w.ready({ timeoutMs: 10_000 });
      const r1 = await w.set("app.w", 1);
      const r2 = await w.update("app.w", 2, r1);
      const r3 = await w.create("app.w2", 3);
      const r4 = await w.delete("app.w2");
      const r5 = await w.purge("app.w");
      assert.ok(r1 < r2 && r2 < r3 && r3 < r4 && r4 < r5);
      assert.equal((await cfg.get("app.w"))?.operation, "PURGE");
      await assertPermission(
        openCache({
          servers: srv.url,
          bucket: "secret",
          local: { maxItems: 10 },
          connectOptions: { user: "writer", pass: PASSWORDS.writer, inboxPrefix: "_INBOX_writer" },
        }),
        "writer opens an ungranted bucket",
      );
      // Creating buckets is the admin's job.
      await assertPermission(
        openCache({
          servers: srv.url,
          bucket: "cfg2",
          create: true,
          local: { maxItems: 10 },
          connectOptions: { user: "writer", pass: PASSWORDS.writer, inboxPrefix: "_INBOX_writer" },
        }),
        "writer creates a bucket",
      );
    });
  } finally {
    await admin.close();
  }
});

Deno.test("each subject docs/nats-edge.conf grants an edge is needed", async (t) => {
  /** A server with the doc config minus `drop`, a seeded bucket "cfg", and the edge's failure. */
  const without = async (
    drop: string,
    failure: (srv: ServerHandle) => Promise<void>,
  ): Promise<void> => {
    await using srv = await startServer({ config: docConfig([drop]) });
    const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
    try {
      const cfg = await new Kvm(admin).create("cfg", { history: 5 });
      await cfg.put("a", "1");
      await failure(srv);
    } finally {
      await admin.close();
    }
  };

  await t.step("STREAM.INFO: the cache cannot open", async () => {
    await without("$JS.API.STREAM.INFO.KV_cfg", async (srv) => {
      await assertPermission(openAs(srv, "edge"), "open without STREAM.INFO");
    });
  });

  await t.step("STREAM.MSG.GET: a miss fails with PermissionError", async () => {
    await without("$JS.API.STREAM.MSG.GET.KV_cfg", async (srv) => {
      await using edge = await openAs(srv, "edge");
      await assertPermission(edge.get("a"), "a miss without STREAM.MSG.GET");
    });
  });

  await t.step(
    "CONSUMER.CREATE: the cache cannot open (its watcher needs a consumer)",
    async () => {
      await without("$JS.API.CONSUMER.CREATE.KV_cfg.*.$KV.cfg.>", async (srv) => {
        await assertPermission(openAs(srv, "edge"), "open without CONSUMER.CREATE");
      });
    },
  );

  await t.step("CONSUMER.INFO: keys() fails with PermissionError", async () => {
    await without("$JS.API.CONSUMER.INFO.KV_cfg.*", async (srv) => {
      await using edge = await openAs(srv, "edge");
      assert.equal(await edge.get("a"), 1);
      await assertPermission(Array.fromAsync(edge.keys()), "keys() without CONSUMER.INFO");
    });
  });

  await t.step("CONSUMER.DELETE: closing leaves the watcher's consumer behind", async () => {
    await without("$JS.API.CONSUMER.DELETE.KV_cfg.*", async (srv) => {
      const edge = await openAs(srv, "edge");
      assert.equal(await edge.get("a"), 1);
      await edge.close();
      const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
      try {
        const jsm = await jetstreamManager(admin);
        const left = await jsm.consumers.list("KV_cfg").next();
        assert.equal(left.length, 1, "the consumer should linger until its inactivity threshold");
      } finally {
        await admin.close();
      }
    });
  });
});

Deno.test("without $JS.FC permission an edge's replica bootstrap stalls (why the config grants it)", async () => {
  // Flow control starts once a consumer has a few MB in flight.
  await using srv = await startServer({ config: docConfig(["$JS.FC.KV_cfg.>"]) });
  const admin = await connectTo(srv, { user: "admin", pass: PASSWORDS.admin });
  try {
    const cfg = await new Kvm(admin).create("cfg", { history: 1 });
    const value = JSON.stringify("x".repeat(2_000));
    for (let i = 0; i < 6_000; i += 500) {
      await Promise.all(Array.from({ length: 500 }, (_, j) => cfg.put(`k${i + j}`, value)));
    }
    await using edge = await openAs<string>(srv, "edge", {
      mode: "replica",
      local: { maxItems: 10_000 },
    });
    await waitFor(
      async () => (await Deno.readTextFile(srv.logFile)).includes('Subject "$JS.FC.KV_cfg.'),
      { timeoutMs: 20_000, message: "the server refused the edge's flow-control reply" },
    );
    const s = edge.status();
    console.log(
      `  flow control denied: bootstrap stuck at ${edge.stats().entries} of 6000 entries, state ${s.state}`,
    );
    assert.notEqual(s.state, "synced");
    assert.ok(edge.stats().entries < 6_000);
  } finally {
    await admin.close();
  }
});
