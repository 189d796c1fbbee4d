/**
 * Every NATS authentication form `openCache()` accepts (user and password,
 * token, NKey seed, `.creds` with operator JWTs) against a real nats-server,
 * with wrong credentials refused and no secret in any error, status, stat,
 * event or HTTP answer. Mutual TLS is in tls_test.ts.
 *
 * @module
 */
import assert from "node:assert/strict";
import { credsAuthenticator, nkeyAuthenticator, nkeys } from "@nats-io/nats-core";
import { KvedgeError, openCache } from "../../mod.ts";
import { startServer } from "../_setup.ts";
import { assertNoSecret, assertPermission, rejection, useAndCheck } from "../_security.ts";
import { operatorSetup } from "../_pki.ts";

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
});
