/**
 * The one mapping from environment variables (and CLI flags) to NATS
 * connection options, used by the edge worker, the projector and the CLI.
 *
 * Variables: `NATS_URL` (comma-separated; `nats://user:pass@host` and
 * `nats://token@host` carry credentials, which are taken out of the URL and
 * used as such), `NATS_USER` + `NATS_PASSWORD`, `NATS_TOKEN`, `NATS_CREDS`
 * (a `.creds` file), `NATS_NKEY` (a user nkey seed), `NATS_TLS_CA`,
 * `NATS_TLS_CERT` + `NATS_TLS_KEY`, `NATS_INBOX_PREFIX`. The older names
 * `NATS_PASS` and `NATS_NKEY_SEED` still work and are reported as
 * deprecated. At most one authentication method may be set.
 *
 * Errors name the variable, never its value; {@link redactSecrets} removes
 * URL credentials from any text that is about to be printed.
 *
 * @module
 */
import type { ConnectionOptions } from "@nats-io/nats-core";
import { credsAuthenticator, nkeyAuthenticator } from "@nats-io/nats-core";
import { redactSecrets } from "../src/describe.ts";

/** Re-exported from `src/describe.ts`, the one place errors and URLs become safe text. */
export { redactSecrets };

/** How to authenticate to NATS (at most one method). */
export type NatsAuth =
  | { kind: "none" }
  | { kind: "creds"; file: string }
  | { kind: "user"; user: string; pass: string }
  | { kind: "token"; token: string }
  | { kind: "nkey"; seed: string };

/** TLS files for the NATS connection. */
export interface NatsTlsFiles {
  /** CA bundle to verify the server with (`NATS_TLS_CA`). */
  caFile?: string;
  /** Client certificate (`NATS_TLS_CERT`). */
  certFile?: string;
  /** Client key (`NATS_TLS_KEY`). */
  keyFile?: string;
}

/** The NATS settings read from the environment. */
export interface NatsEnv {
  /** Server URLs without credentials; `undefined` when none was given. */
  servers: string[] | undefined;
  /** The authentication method. */
  auth: NatsAuth;
  /** TLS files, if any. */
  tls: NatsTlsFiles | undefined;
  /** Prefix of reply and delivery subjects (`NATS_INBOX_PREFIX`). */
  inboxPrefix: string | undefined;
  /** Deprecated variable names that were used, e.g. `["NATS_PASS"]`. */
  deprecated: string[];
}

/** Values that take precedence over the environment (the CLI's flags). */
export interface NatsEnvOverrides {
  /** Instead of `NATS_URL`. */
  server?: string;
  /** Instead of `NATS_USER`. */
  user?: string;
  /** Instead of `NATS_PASSWORD`. */
  password?: string;
  /** Instead of `NATS_TOKEN`. */
  token?: string;
  /** Instead of `NATS_CREDS`. */
  creds?: string;
}

/** Options of {@link parseNatsEnv}. */
export interface ParseNatsEnvOptions {
  /** What the caller does, for error messages: `Cannot <action>: …`. Default `connect to NATS`. */
  action?: string;
  /** Flags that win over the variables. */
  overrides?: NatsEnvOverrides;
}

const SCHEME = /^(?:nats|tls|ws|wss):\/\//i;
const HOST_PORT = /^(?:[A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?\/?$/;
const INBOX = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/;
const NKEY_SEED = /^SU[A-Z2-7]+$/;
function pick(
  env: Record<string, string | undefined>,
  name: string,
  deprecatedName?: string,
  deprecated?: string[],
): string | undefined {
  const v = env[name];
  if (v !== undefined && v.trim() !== "") return v;
  if (deprecatedName !== undefined) {
    const old = env[deprecatedName];
    if (old !== undefined && old.trim() !== "") {
      deprecated?.push(deprecatedName);
      return old;
    }
  }
  return undefined;
}

function decodePart(part: string, fail: () => TypeError): string {
  try {
    return decodeURIComponent(part);
  } catch {
    throw fail();
  }
}

/**
 * Reads the NATS settings from `env` (and `overrides`). Throws a
 * `TypeError` `Cannot <action>: <VARIABLE>: <reason>` that never contains a
 * value.
 *
 * @example
 * ```ts
 * import { parseNatsEnv } from "./nats_env.ts";
 * const n = parseNatsEnv({ NATS_URL: "nats://ops:s3cret@127.0.0.1:4222" });
 * console.log(n.servers, n.auth.kind); // ["nats://127.0.0.1:4222"] "user"
 * ```
 */
export function parseNatsEnv(
  env: Record<string, string | undefined>,
  options: ParseNatsEnvOptions = {},
): NatsEnv {
  const action = options.action ?? "connect to NATS";
  const o = options.overrides ?? {};
  const bad = (what: string, why: string) => new TypeError(`Cannot ${action}: ${what}: ${why}`);
  const deprecated: string[] = [];
  const urlVar = o.server !== undefined && o.server !== "" ? "--server" : "NATS_URL";
  const urlText = urlVar === "--server" ? o.server : pick(env, "NATS_URL");
  const { servers, urlAuth } = parseServers(urlText, (why) => bad(urlVar, why));
  const methods = authMethods(env, { o, action, deprecated, bad });
  if (urlAuth !== undefined) methods.unshift([`credentials in ${urlVar}`, urlAuth]);
  if (methods.length > 1) {
    throw new TypeError(
      `Cannot ${action}: set only one way to authenticate, got ${
        methods.map(([n]) => n).join(" and ")
      }`,
    );
  }
  const tls = parseTls(env, action);
  const inboxPrefix = pick(env, "NATS_INBOX_PREFIX")?.trim();
  if (inboxPrefix !== undefined && !INBOX.test(inboxPrefix)) {
    throw bad("NATS_INBOX_PREFIX", "must be subject tokens without wildcards, e.g. _INBOX_edge");
  }
  return {
    servers,
    auth: methods[0]?.[1] ?? { kind: "none" },
    tls,
    inboxPrefix,
    deprecated,
  };
}

/** The server URLs of `urlText` with their credentials taken out; `bad` names the variable. */
function parseServers(
  urlText: string | undefined,
  bad: (why: string) => TypeError,
): { servers: string[] | undefined; urlAuth: NatsAuth | undefined } {
  if (urlText === undefined) return { servers: undefined, urlAuth: undefined };
  const servers: string[] = [];
  let urlAuth: NatsAuth | undefined;
  const seen = new Set<string>();
  for (const raw of urlText.split(",").map((s) => s.trim()).filter((s) => s !== "")) {
    const scheme = SCHEME.exec(raw)?.[0] ?? "";
    let rest = raw.slice(scheme.length);
    const at = rest.lastIndexOf("@");
    if (at >= 0) {
      const auth = urlCredentials(rest.slice(0, at), bad);
      rest = rest.slice(at + 1);
      seen.add(JSON.stringify(auth));
      if (seen.size > 1) throw bad("every URL must carry the same credentials");
      if ((auth.kind === "user" && auth.user === "") || (auth.kind === "token" && !auth.token)) {
        throw bad("the credentials in the URL are empty");
      }
      urlAuth = auth;
    }
    if (!HOST_PORT.test(rest)) {
      throw bad("every entry must be a nats://[user:password@]host:port URL");
    }
    servers.push(scheme + rest);
  }
  return { servers: servers.length === 0 ? undefined : servers, urlAuth };
}

/** The credentials of a URL's `user:password` or `token` part. */
function urlCredentials(info: string, bad: (why: string) => TypeError): NatsAuth {
  const colon = info.indexOf(":");
  const fail = () => bad("the credentials in the URL are not percent-encoded");
  return colon >= 0
    ? {
      kind: "user",
      user: decodePart(info.slice(0, colon), fail),
      pass: decodePart(info.slice(colon + 1), fail),
    }
    : { kind: "token", token: decodePart(info, fail) };
}

/** Every authentication method the variables (and flags) set, each with the names that set it. */
function authMethods(
  env: Record<string, string | undefined>,
  ctx: {
    o: NatsEnvOverrides;
    action: string;
    deprecated: string[];
    bad: (what: string, why: string) => TypeError;
  },
): [string, NatsAuth][] {
  const { o, action, deprecated, bad } = ctx;
  const methods: [string, NatsAuth][] = [];
  const creds = o.creds ?? pick(env, "NATS_CREDS");
  if (creds !== undefined) methods.push(["NATS_CREDS", { kind: "creds", file: creds.trim() }]);
  const user = o.user ?? pick(env, "NATS_USER");
  const pass = o.password ?? pick(env, "NATS_PASSWORD", "NATS_PASS", deprecated);
  if (user !== undefined || pass !== undefined) {
    if (user === undefined || pass === undefined) {
      throw new TypeError(`Cannot ${action}: NATS_USER and NATS_PASSWORD go together`);
    }
    methods.push(["NATS_USER/NATS_PASSWORD", { kind: "user", user, pass }]);
  }
  const token = o.token ?? pick(env, "NATS_TOKEN");
  if (token !== undefined) methods.push(["NATS_TOKEN", { kind: "token", token }]);
  const seed = pick(env, "NATS_NKEY", "NATS_NKEY_SEED", deprecated)?.trim();
  if (seed !== undefined) {
    if (!NKEY_SEED.test(seed)) throw bad("NATS_NKEY", "must be a user nkey seed (SU…)");
    methods.push(["NATS_NKEY", { kind: "nkey", seed }]);
  }
  return methods;
}

/** The TLS files of the variables, if any. */
function parseTls(
  env: Record<string, string | undefined>,
  action: string,
): NatsTlsFiles | undefined {
  const caFile = pick(env, "NATS_TLS_CA")?.trim();
  const certFile = pick(env, "NATS_TLS_CERT")?.trim();
  const keyFile = pick(env, "NATS_TLS_KEY")?.trim();
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw new TypeError(`Cannot ${action}: NATS_TLS_CERT and NATS_TLS_KEY go together`);
  }
  return caFile !== undefined || certFile !== undefined
    ? {
      ...(caFile !== undefined ? { caFile } : {}),
      ...(certFile !== undefined ? { certFile, keyFile } : {}),
    }
    : undefined;
}

/**
 * The nats.js connection options of `n`: servers, authenticator or
 * user/password/token, TLS and inbox prefix. Reads the creds and nkey files;
 * a missing or unreadable file is a `TypeError` naming the variable.
 *
 * @example
 * ```ts
 * import { natsConnectionOptions, parseNatsEnv } from "./nats_env.ts";
 * const opts = await natsConnectionOptions(parseNatsEnv({ NATS_URL: "nats://t0k@127.0.0.1:4222" }));
 * console.log(opts.servers, opts.token); // ["nats://127.0.0.1:4222"] "t0k"
 * ```
 */
export async function natsConnectionOptions(
  n: NatsEnv,
  options: { action?: string } = {},
): Promise<Partial<ConnectionOptions>> {
  const action = options.action ?? "connect to NATS";
  const opts: Partial<ConnectionOptions> = n.servers === undefined ? {} : { servers: n.servers };
  const a = n.auth;
  if (a.kind === "creds") {
    let bytes: Uint8Array;
    try {
      bytes = await Deno.readFile(a.file);
    } catch {
      throw new TypeError(`Cannot ${action}: NATS_CREDS: the creds file cannot be read`);
    }
    opts.authenticator = credsAuthenticator(bytes);
  } else if (a.kind === "user") {
    opts.user = a.user;
    opts.pass = a.pass;
  } else if (a.kind === "token") {
    opts.token = a.token;
  } else if (a.kind === "nkey") {
    opts.authenticator = nkeyAuthenticator(new TextEncoder().encode(a.seed));
  }
  if (n.inboxPrefix !== undefined) opts.inboxPrefix = n.inboxPrefix;
  if (n.tls !== undefined) {
    const names = { caFile: "NATS_TLS_CA", certFile: "NATS_TLS_CERT", keyFile: "NATS_TLS_KEY" };
    for (const [field, file] of Object.entries(n.tls)) {
      try {
        await Deno.stat(file as string);
      } catch {
        throw new TypeError(
          `Cannot ${action}: ${names[field as keyof typeof names]}: the file cannot be read`,
        );
      }
    }
    opts.tls = { ...n.tls };
  }
  return opts;
}

/**
 * `n` as it may be logged: servers (already without credentials), the kind
 * of authentication, whether TLS is on.
 *
 * @example
 * ```ts
 * import { describeNatsEnv, parseNatsEnv } from "./nats_env.ts";
 * console.log(describeNatsEnv(parseNatsEnv({ NATS_URL: "nats://u:p@h:4222" }))); // { servers: ["nats://h:4222"], auth: "user", tls: false }
 * ```
 */
export function describeNatsEnv(n: NatsEnv): { servers?: string[]; auth: string; tls: boolean } {
  return {
    ...(n.servers === undefined ? {} : { servers: n.servers }),
    auth: n.auth.kind,
    tls: n.tls !== undefined,
  };
}
