import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { AckPolicy, jetstreamManager } from "@nats-io/jetstream";
import { credsAuthenticator, nkeyAuthenticator, nkeys } from "@nats-io/nats-core";
import {
  type Cache,
  type CacheEvent,
  type CacheOptions,
  createApp,
  KvedgeError,
  openCache,
  PermissionError,
} from "../../mod.ts";
import { connectTo, type ServerHandle, startServer, waitFor } from "../_setup.ts";

// ---- helpers ------------------------------------------------------------------

// Under Deno, a TLS alert from the server (a client without a certificate) can
// escape @nats-io/transport-node as an uncaught error after the client already
// failed the connection through its promise; it is noise for these tests.
globalThis.addEventListener("error", (event) => {
  if (/fatal alert|BadCertificate|CertificateRequired/i.test(String(event.error))) {
    event.preventDefault();
  }
});

const DOC_CONFIG = new URL("../../docs/nats-edge.conf", import.meta.url);
/** The test-only passwords whose bcrypt hashes are in docs/nats-edge.conf. */
const PASSWORDS = {
  admin: "kvedge-admin-test-only",
  writer: "kvedge-writer-test-only",
  edge: "kvedge-edge-test-only",
} as const;

/**
 * docs/nats-edge.conf verbatim, minus its host-specific section (listen
 * address, monitoring port, store dir), which the test server generates.
 */
function docConfig(drop: string[] = []): string {
  const text = Deno.readTextFileSync(DOC_CONFIG);
  const host = /# >>> host-specific[\s\S]*?# <<< host-specific\n/;
  assert.match(text, host, "docs/nats-edge.conf lost its host-specific markers");
  let config = text.replace(host, "");
  for (const subject of drop) {
    const line = `      "${subject}",\n`;
    assert.ok(config.includes(line), `docs/nats-edge.conf does not allow ${subject}`);
    config = config.replaceAll(line, "");
  }
  return config;
}

/** Everything an error says about itself: name, message, stack, and the same for its causes. */
function errorText(err: unknown): string {
  const parts: string[] = [];
  for (let e = err, depth = 0; e !== undefined && e !== null && depth < 10; depth++) {
    if (e instanceof Error) {
      parts.push(e.name, e.message, e.stack ?? "");
      e = e.cause;
    } else {
      parts.push(String(e));
      break;
    }
  }
  return parts.join("\n");
}

/** Fails if any of `secrets` appears in `where` (a string, an error, or anything JSON-able). */
function assertNoSecret(where: unknown, secrets: readonly string[], what: string): void {
  const text = typeof where === "string"
    ? where
    : where instanceof Error
    ? errorText(where)
    : JSON.stringify(where);
  for (const s of secrets) {
    assert.ok(!text.includes(s), `${what} contains a secret: ${text.slice(0, 300)}`);
  }
}

/** Rejection of `p`, or a failure if it resolves. */
async function rejection(p: Promise<unknown>, what: string): Promise<unknown> {
  try {
    await p;
  } catch (err) {
    return err;
  }
  assert.fail(`${what} succeeded but should have been refused`);
}

/** Exercises a cache opened with some credentials and checks no secret leaks from it. */
async function useAndCheck(c: Cache<number>, secrets: readonly string[]): Promise<void> {
  const events: CacheEvent[] = [];
  const ac = new AbortController();
  const collecting = (async () => {
    for await (const e of c.events({ signal: ac.signal })) events.push(e);
  })().catch(() => {});
  await c.ready({ timeoutMs: 10_000 });
  const rev = await c.set("k", 1);
  assert.equal(await c.get("k"), 1);
  assert.equal((await c.getEntry("k"))?.revision, rev);
  assert.deepEqual(await Array.fromAsync(c.keys()), ["k"]);
  assert.equal((await c.history("k")).length, 1);
  const app = createApp({ buckets: { b: { cache: c } }, auth: { anonymousWrites: true } });
  for (const path of ["/metrics", "/v1/stats", "/readyz", "/v1/buckets/b/keys/k"]) {
    const res = await app.request(path);
    assertNoSecret(await res.text(), secrets, `GET ${path}`);
  }
  assertNoSecret(c.status(), secrets, "status()");
  assertNoSecret(c.stats(), secrets, "stats()");
  ac.abort();
  await collecting;
  assertNoSecret(events, secrets, "events()");
}

/** An edge or writer cache on bucket `cfg` of a server running docs/nats-edge.conf. */
function openAs<T = number>(
  srv: ServerHandle,
  who: "edge" | "writer",
  extra: Partial<CacheOptions<T>> = {},
): Promise<Cache<T>> {
  return openCache<T>({
    servers: srv.url,
    bucket: "cfg",
    local: { maxItems: 1000 },
    connectOptions: { user: who, pass: PASSWORDS[who], inboxPrefix: `_INBOX_${who}` },
    // A permission failure must come from NATS' answer, not from a timeout:
    // with deadlines this long, a timeout would fail the test's time budget first.
    writeTimeoutMs: 60_000,
    ...extra,
  } as CacheOptions<T>);
}

async function assertPermission(p: Promise<unknown>, what: string): Promise<PermissionError> {
  const err = await rejection(p, what);
  assert.ok(
    err instanceof PermissionError,
    `${what}: expected PermissionError, got ${errorText(err).slice(0, 300)}`,
  );
  assert.equal(err.code, "PERMISSION");
  return err;
}

// ---- least privilege ------------------------------------------------------------

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

/** A raw nats.js call that must fail with a permissions violation (nats.js wraps it in RequestError). */
async function assertRawDenied(p: Promise<unknown>, what: string): Promise<void> {
  const err = await rejection(p, what);
  assert.match(errorText(err), /permissions violation/i, `${what}: ${errorText(err)}`);
}

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

// ---- authentication forms ---------------------------------------------------------

const BUCKET_OPTS = { bucket: "auth", create: { history: 2 }, local: { maxItems: 100 } } as const;

Deno.test("openCache accepts every NATS auth form and leaks no secret", async (t) => {
  await t.step("user and password", async () => {
    const pass = "pw-" + crypto.randomUUID();
    await using srv = await startServer({
      config: `authorization { users: [ { user: alice, password: "${pass}" } ] }`,
    });
    await using c = await openCache<number>({
      ...BUCKET_OPTS,
      servers: srv.url,
      connectOptions: { user: "alice", pass },
    });
    await useAndCheck(c, [pass]);
    const wrong = "pw-" + crypto.randomUUID();
    const err = await assertPermission(
      openCache({
        ...BUCKET_OPTS,
        servers: srv.url,
        connectOptions: { user: "alice", pass: wrong },
      }),
      "a wrong password",
    );
    assertNoSecret(err, [pass, wrong], "the auth error");
    // nats.js v3 ignores credentials in the URL: they are refused, and not echoed either.
    const inUrl = await rejection(
      openCache({ ...BUCKET_OPTS, servers: `nats://alice:${pass}@127.0.0.1:${srv.port}` }),
      "credentials in the URL",
    );
    assert.ok(inUrl instanceof KvedgeError);
    assertNoSecret(inUrl, [pass], "the URL-credentials error");
    const dead = await rejection(
      openCache({ ...BUCKET_OPTS, servers: `nats://alice:${pass}@127.0.0.1:1` }),
      "a dead server",
    );
    assertNoSecret(dead, [pass], "the unreachable-server error");
  });

  await t.step("token", async () => {
    const token = "tok" + crypto.randomUUID().replaceAll("-", "");
    await using srv = await startServer({ config: `authorization { token: "${token}" }` });
    await using c = await openCache<number>({
      ...BUCKET_OPTS,
      servers: srv.url,
      connectOptions: { token },
    });
    await useAndCheck(c, [token]);
    const wrong = "tok" + crypto.randomUUID().replaceAll("-", "");
    const err = await assertPermission(
      openCache({ ...BUCKET_OPTS, servers: srv.url, connectOptions: { token: wrong } }),
      "a wrong token",
    );
    assertNoSecret(err, [token, wrong], "the auth error");
  });

  await t.step("NKey seed", async () => {
    const user = nkeys.createUser();
    const seed = user.getSeed();
    const seedText = new TextDecoder().decode(seed);
    await using srv = await startServer({
      config: `authorization { users: [ { nkey: ${user.getPublicKey()} } ] }`,
    });
    await using c = await openCache<number>({
      ...BUCKET_OPTS,
      servers: srv.url,
      connectOptions: { authenticator: nkeyAuthenticator(seed) },
    });
    await useAndCheck(c, [seedText]);
    const other = nkeys.createUser().getSeed();
    const err = await assertPermission(
      openCache({
        ...BUCKET_OPTS,
        servers: srv.url,
        connectOptions: { authenticator: nkeyAuthenticator(other) },
      }),
      "an unknown NKey",
    );
    assertNoSecret(err, [seedText, new TextDecoder().decode(other)], "the auth error");
  });

  await t.step(".creds file (operator, account and user JWTs made offline)", async () => {
    const op = operatorSetup();
    await using srv = await startServer({ config: op.config });
    const dir = await Deno.makeTempDir({ prefix: "kvedge_creds_" });
    try {
      const path = `${dir}/edge.creds`;
      await Deno.writeTextFile(path, op.creds, { mode: 0o600 });
      await using c = await openCache<number>({
        ...BUCKET_OPTS,
        servers: srv.url,
        connectOptions: { authenticator: credsAuthenticator(await Deno.readFile(path)) },
      });
      await useAndCheck(c, [op.userSeed, op.userJwt]);
      // A user signed by an account the server does not trust is refused.
      const stranger = operatorSetup();
      const err = await assertPermission(
        openCache({
          ...BUCKET_OPTS,
          servers: srv.url,
          connectOptions: {
            authenticator: credsAuthenticator(new TextEncoder().encode(stranger.creds)),
          },
        }),
        "creds of an untrusted account",
      );
      assertNoSecret(err, [stranger.userSeed, stranger.userJwt], "the auth error");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  await t.step("TLS with a client certificate (mutual TLS)", async () => {
    const pki = await makePki();
    try {
      await using srv = await startServer({
        config: [
          "tls {",
          `  cert_file: ${JSON.stringify(pki.serverCert)}`,
          `  key_file: ${JSON.stringify(pki.serverKey)}`,
          `  ca_file: ${JSON.stringify(pki.ca)}`,
          "  verify: true",
          "  timeout: 2",
          "}",
        ].join("\n"),
      });
      await using c = await openCache<number>({
        ...BUCKET_OPTS,
        servers: srv.url,
        connectOptions: {
          tls: { caFile: pki.ca, certFile: pki.clientCert, keyFile: pki.clientKey },
        },
      });
      await useAndCheck(c, [await Deno.readTextFile(pki.clientKey)]);
      assert.equal(c.status().connected, true);
      // Without a client certificate the server ends the handshake. nats.js does not
      // report the TLS alert itself: the open fails on its connect timeout instead.
      const noCert = await rejection(
        openCache({
          ...BUCKET_OPTS,
          servers: srv.url,
          connectOptions: { timeout: 3_000, tls: { caFile: pki.ca } },
        }),
        "a client without a certificate",
      );
      assert.ok(noCert instanceof KvedgeError, errorText(noCert));
    } finally {
      await Deno.remove(pki.dir, { recursive: true });
    }
  });
});

// ---- operator mode (JWT) without nsc ----------------------------------------------

type KeyPair = ReturnType<typeof nkeys.createUser>;

function b64url(input: Uint8Array | string): string {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A NATS v2 JWT (`ed25519-nkey`) for `subject`, signed by `issuer`. */
function signJwt(
  issuer: KeyPair,
  subject: string,
  name: string,
  nats: Record<string, unknown>,
): string {
  const header = b64url(JSON.stringify({ typ: "JWT", alg: "ed25519-nkey" }));
  const claims = b64url(JSON.stringify({
    jti: crypto.randomUUID().replaceAll("-", "").toUpperCase(),
    iat: Math.floor(Date.now() / 1000),
    iss: issuer.getPublicKey(),
    name,
    sub: subject,
    nats: { ...nats, version: 2 },
  }));
  const signature = b64url(issuer.sign(new TextEncoder().encode(`${header}.${claims}`)));
  return `${header}.${claims}.${signature}`;
}

/**
 * An operator, a system account, an application account with JetStream, and
 * one user with a `.creds` file: what `nsc` would produce, made with nkeys.
 */
function operatorSetup(): { config: string; creds: string; userSeed: string; userJwt: string } {
  const operator = nkeys.createOperator();
  const sys = nkeys.createAccount();
  const app = nkeys.createAccount();
  const user = nkeys.createUser();
  const unlimited = {
    subs: -1,
    data: -1,
    payload: -1,
    imports: -1,
    exports: -1,
    wildcards: true,
    conn: -1,
    leaf: -1,
  };
  const operatorJwt = signJwt(operator, operator.getPublicKey(), "kvedge-test", {
    type: "operator",
    system_account: sys.getPublicKey(),
  });
  const sysJwt = signJwt(operator, sys.getPublicKey(), "SYS", {
    type: "account",
    limits: unlimited,
  });
  const appJwt = signJwt(operator, app.getPublicKey(), "APP", {
    type: "account",
    limits: { ...unlimited, mem_storage: -1, disk_storage: -1, streams: -1, consumer: -1 },
  });
  const userJwt = signJwt(app, user.getPublicKey(), "edge", {
    type: "user",
    pub: {},
    sub: {},
    subs: -1,
    data: -1,
    payload: -1,
  });
  const userSeed = new TextDecoder().decode(user.getSeed());
  const creds = [
    "-----BEGIN NATS USER JWT-----",
    userJwt,
    "------END NATS USER JWT------",
    "",
    "-----BEGIN USER NKEY SEED-----",
    userSeed,
    "------END USER NKEY SEED------",
    "",
  ].join("\n");
  const config = [
    `operator: ${operatorJwt}`,
    `system_account: ${sys.getPublicKey()}`,
    "resolver: MEMORY",
    "resolver_preload: {",
    `  ${sys.getPublicKey()}: ${sysJwt}`,
    `  ${app.getPublicKey()}: ${appJwt}`,
    "}",
  ].join("\n");
  return { config, creds, userSeed, userJwt };
}

// ---- a throw-away PKI with openssl ---------------------------------------------------

interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

async function openssl(dir: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/** A CA, a server certificate for 127.0.0.1 and a client certificate, valid for a day. */
async function makePki(): Promise<Pki> {
  const dir = await Deno.makeTempDir({ prefix: "kvedge_pki_" });
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
  await openssl(
    dir,
    "req",
    "-x509",
    ...ec,
    "-keyout",
    "ca.key",
    "-out",
    "ca.pem",
    "-days",
    "1",
    "-subj",
    "/CN=kvedge test CA",
  );
  const exts = {
    server: "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    client: "extendedKeyUsage=clientAuth\n",
  };
  for (const [name, ext] of Object.entries(exts)) {
    await openssl(
      dir,
      "req",
      ...ec,
      "-keyout",
      `${name}.key`,
      "-out",
      `${name}.csr`,
      "-subj",
      `/CN=kvedge ${name}`,
    );
    await Deno.writeTextFile(`${dir}/${name}.ext`, ext);
    await openssl(
      dir,
      "x509",
      "-req",
      "-in",
      `${name}.csr`,
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      `${name}.pem`,
      "-days",
      "1",
      "-extfile",
      `${name}.ext`,
    );
  }
  return {
    dir,
    ca: `${dir}/ca.pem`,
    serverCert: `${dir}/server.pem`,
    serverKey: `${dir}/server.key`,
    clientCert: `${dir}/client.pem`,
    clientKey: `${dir}/client.key`,
  };
}

// ---- HTTP ------------------------------------------------------------------------

Deno.test("HTTP facade: bounded input, constant-time tokens, nothing echoed", async (t) => {
  await using srv = await startServer();
  const readToken = "read-" + crypto.randomUUID();
  const writeToken = "write-" + crypto.randomUUID();
  await using cache = await openCache<unknown>({
    servers: srv.url,
    bucket: "http",
    create: { history: 2 },
    local: { maxItems: 100 },
  });
  await cache.ready({ timeoutMs: 10_000 });
  const logged: string[] = [];
  const app = createApp({
    buckets: { http: { cache } },
    auth: { readTokens: [readToken], writeTokens: [writeToken] },
    limits: { maxBodyBytes: 1024, maxSseStreams: 1 },
    onRequest: (info) => logged.push(JSON.stringify(info)),
  });
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });
  const responses: string[] = [];
  /** Every response is recorded (headers and body) to look for echoed secrets at the end. */
  const request = async (path: string, init: RequestInit = {}): Promise<Response> => {
    const res = await app.request(path, init);
    const body = path.endsWith("/watch") && res.ok ? "" : await res.clone().text();
    responses.push(JSON.stringify([...res.headers]) + body);
    return res;
  };
  const problem = async (res: Response, status: number, code: string) => {
    assert.equal(res.status, status);
    assert.equal(res.headers.get("content-type"), "application/problem+json");
    const p = await res.json();
    assert.equal(p.status, status);
    assert.equal(p.code, code);
    return p;
  };

  try {
    await t.step(
      "missing, malformed and unknown tokens are 401; a read token on a write is 403",
      async () => {
        await problem(await request("/v1/buckets/http/keys/a"), 401, "unauthorized");
        await problem(
          await request("/v1/buckets/http/keys/a", {
            headers: { authorization: `Basic ${btoa("u:" + readToken)}` },
          }),
          401,
          "unauthorized",
        );
        // Same length as the real token, differing in the last character only.
        const near = readToken.slice(0, -1) + (readToken.endsWith("0") ? "1" : "0");
        await problem(
          await request("/v1/buckets/http/keys/a", { headers: bearer(near) }),
          401,
          "unauthorized",
        );
        await problem(
          await request("/v1/buckets/http/keys/a", {
            method: "PUT",
            body: "1",
            headers: bearer(readToken),
          }),
          403,
          "forbidden",
        );
        const ok = await request("/v1/buckets/http/keys/a", {
          method: "PUT",
          body: "1",
          headers: bearer(writeToken),
        });
        assert.equal(ok.status, 201);
        const read = await request("/v1/buckets/http/keys/a", { headers: bearer(readToken) });
        assert.equal(read.status, 200);
        assert.equal(await read.text(), "1");
      },
    );

    await t.step("an oversized body is 413, with or without Content-Length", async () => {
      const big = "9".repeat(4096);
      await problem(
        await request("/v1/buckets/http/keys/big", {
          method: "PUT",
          body: big,
          headers: bearer(writeToken),
        }),
        413,
        "too_large",
      );
      // A streamed (chunked) body carries no Content-Length: it is counted as it arrives.
      let pulled = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          pulled++;
          if (pulled > 1_000) controller.close();
          else controller.enqueue(new TextEncoder().encode("9".repeat(512)));
        },
      });
      await problem(
        await request("/v1/buckets/http/keys/big", {
          method: "PUT",
          body: stream,
          headers: bearer(writeToken),
        }),
        413,
        "too_large",
      );
      assert.ok(pulled < 10, `the app read ${pulled} chunks of a body past its limit`);
      assert.equal(await cache.get("big"), undefined);
    });

    await t.step("over-long and malformed keys are 400 before any NATS I/O", async () => {
      const fetches = cache.stats().fetches;
      for (const key of ["k".repeat(5000), "a..b", "a%20b", "a*", "%24SYS", "a%00b"]) {
        const res = await request(`/v1/buckets/http/keys/${key}`, { headers: bearer(readToken) });
        await problem(res, 400, "bad_key");
      }
      assert.equal(cache.stats().fetches, fetches);
    });

    await t.step("SSE streams are capped (503 too_many_streams beyond the limit)", async () => {
      const ac = new AbortController();
      const first = await request("/v1/buckets/http/watch", {
        headers: bearer(readToken),
        signal: ac.signal,
      });
      assert.equal(first.status, 200);
      await problem(
        await request("/v1/buckets/http/watch", { headers: bearer(readToken) }),
        503,
        "too_many_streams",
      );
      ac.abort();
      await first.body?.cancel().catch(() => {});
    });

    await t.step("no response and no log line ever contains a token", async () => {
      // Requests that carry tokens in every place a naive server might echo them.
      await request(`/v1/buckets/nope/keys/a?token=${writeToken}`, { headers: bearer(writeToken) });
      await request("/nowhere", { headers: bearer(writeToken) });
      await request("/v1/buckets/http/keys/a", {
        method: "PUT",
        body: "{",
        headers: bearer(writeToken),
      });
      await request("/metrics", { headers: bearer(readToken) });
      await request("/v1/stats", { headers: bearer(readToken) });
      for (const r of responses) assertNoSecret(r, [readToken, writeToken], "a response");
      for (const line of logged) assertNoSecret(line, [readToken, writeToken], "a log record");
      assert.ok(responses.length >= 15 && logged.length >= 15);
    });
  } finally {
    // Nothing else to release: the cache and server are disposed by `await using`.
  }
});

// ---- the edge worker -----------------------------------------------------------------

const WORKER = new URL("../../workers/edge.ts", import.meta.url).pathname;

/** Runs `deno task serve`'s worker with `env`; collects its output for the secret checks. */
function spawnWorker(env: Record<string, string>) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER],
    env: { PORT: "0", KVEDGE_LOG_REQUESTS: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) output += chunk;
  };
  const exited = Promise.all([pump(child.stdout), pump(child.stderr)]).then(() => child.status);
  return {
    output: () => output,
    exited,
    /** The URL the worker listens on, once it says so. */
    listening: () =>
      waitFor(() => /"msg":"listening"[^\n]*"url":"(http:[^"]+)"/.exec(output)?.[1], {
        timeoutMs: 60_000,
        message: `the worker listens; output: ${output}`,
      }),
    async [Symbol.asyncDispose]() {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      await exited;
    },
  };
}

Deno.test("the edge worker authenticates to NATS from its environment and never prints a secret", async (t) => {
  const pass = "pw-" + crypto.randomUUID();
  const user = nkeys.createUser();
  const seed = new TextDecoder().decode(user.getSeed());
  await using srv = await startServer({
    config:
      `authorization { users: [ { user: alice, password: "${pass}" }, { nkey: ${user.getPublicKey()} } ] }`,
  });
  const readToken = "read-" + crypto.randomUUID();
  const writeToken = "write-" + crypto.randomUUID();
  const secrets = [pass, seed, readToken, writeToken];
  const base = {
    NATS_URL: srv.url,
    KVEDGE_BUCKETS: "wsec",
    KVEDGE_CREATE_BUCKETS: "1",
    KVEDGE_READ_TOKEN: readToken,
    KVEDGE_WRITE_TOKEN: writeToken,
  };
  for (
    const [what, env] of [
      ["user and password", { NATS_USER: "alice", NATS_PASS: pass }],
      ["NKey seed", { NATS_NKEY_SEED: seed }],
    ] as const
  ) {
    await t.step(`${what}: serves, and its output holds no secret`, async () => {
      await using worker = spawnWorker({ ...base, ...env });
      const url = await worker.listening();
      const put = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        method: "PUT",
        body: "1",
        headers: { authorization: `Bearer ${writeToken}` },
      });
      assert.ok(put.status === 200 || put.status === 201, `PUT answered ${put.status}`);
      await put.body?.cancel();
      const bad = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        headers: { authorization: `Bearer ${readToken}x` },
      });
      assert.equal(bad.status, 401);
      assertNoSecret(await bad.text(), secrets, "a 401 body");
      const get = await fetch(`${url}/v1/buckets/wsec/keys/a`, {
        headers: { authorization: `Bearer ${readToken}` },
      });
      assert.equal(await get.text(), "1");
      for (const path of ["/metrics", "/v1/stats"]) {
        const res = await fetch(`${url}${path}`, {
          headers: { authorization: `Bearer ${readToken}` },
        });
        assertNoSecret(await res.text(), secrets, `GET ${path}`);
      }
      await worker[Symbol.asyncDispose]();
      assert.match(worker.output(), /"msg":"request"/, "requests are logged");
      assertNoSecret(worker.output(), secrets, "the worker's output");
    });
  }

  await t.step(
    "a wrong password: the worker exits with an error that names no secret",
    async () => {
      const wrong = "pw-" + crypto.randomUUID();
      await using worker = spawnWorker({ ...base, NATS_USER: "alice", NATS_PASS: wrong });
      const status = await worker.exited;
      assert.notEqual(status.code, 0);
      assert.match(worker.output(), /"level":"error"/);
      assertNoSecret(worker.output(), [...secrets, wrong], "the worker's output");
    },
  );
});
