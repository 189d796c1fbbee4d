/**
 * Mutual TLS with a throw-away PKI (tests/_pki.ts): a cache with a client
 * certificate connects and leaks no secret; a client without one is refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import { KvedgeError, openCache } from "../../mod.ts";
import { startServer } from "../_setup.ts";
import { errorText, rejection, useAndCheck } from "../_security.ts";
import { makePki } from "../_pki.ts";

// Under Deno, a TLS alert from the server (a client without a certificate) can
// escape @nats-io/transport-node as an uncaught error after the client already
// failed the connection through its promise; it is noise for these tests.
globalThis.addEventListener("error", (event) => {
  if (/fatal alert|BadCertificate|CertificateRequired/i.test(String(event.error))) {
    event.preventDefault();
  }
});

const BUCKET_OPTS = { bucket: "auth", create: { history: 2 }, local: { maxItems: 100 } } as const;

Deno.test("openCache over mutual TLS: a client certificate connects, none is refused", async () => {
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
