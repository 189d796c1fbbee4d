/**
 * Credentials made on the spot for the security tests: an operator-mode JWT
 * setup (what `nsc` would produce, made with nkeys) and a throw-away PKI made
 * with openssl (CA, server and client certificates).
 *
 * @module
 */
import { nkeys } from "@nats-io/nats-core";

// ---- operator mode (JWT) without nsc ----------------------------------------------

export type KeyPair = ReturnType<typeof nkeys.createUser>;

export function b64url(input: Uint8Array | string): string {
  const bytes = typeof input === "string" ? new TextEncoder().encode(input) : input;
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** A NATS v2 JWT (`ed25519-nkey`) for `subject`, signed by `issuer`. */
export function signJwt(
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
export function operatorSetup(): {
  config: string;
  creds: string;
  userSeed: string;
  userJwt: string;
} {
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

export interface Pki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function openssl(dir: string, ...args: string[]): Promise<void> {
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
export async function makePki(): Promise<Pki> {
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
