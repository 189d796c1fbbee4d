/**
 * How the operator scripts reach NATS: the global connection flags, the
 * choice of server (`--server`, `$NATS_URL`, the embedded server of
 * `deno task serve`, the default) and the connection itself, whose failures
 * become one-line {@link CliError}s.
 *
 * @module
 */
import { connectNats } from "../../src/connect.ts";
import type { NatsConnection } from "@nats-io/nats-core";
import { findEmbedded } from "../../host/embedded.ts";
import { natsConnectionOptions, parseNatsEnv, redactSecrets } from "../../host/nats_env.ts";
import type { FlagSpec, FlagValues } from "./args.ts";
import { CliError, oneLine } from "./errors.ts";
import { eprintln } from "./output.ts";

/**
 * Where the embedded server of `deno task serve` keeps its data (and its address file).
 *
 * @example
 * ```ts
 * import { EMBEDDED_DATA_DIR } from "./connect.ts";
 * console.log(`${EMBEDDED_DATA_DIR}/nats/embedded.json`);
 * ```
 */
export const EMBEDDED_DATA_DIR = ".data";

/**
 * The address used when nothing else names a server.
 *
 * @example
 * ```ts
 * import { DEFAULT_SERVER } from "./connect.ts";
 * console.log(DEFAULT_SERVER); // "nats://127.0.0.1:4222"
 * ```
 */
export const DEFAULT_SERVER = "nats://127.0.0.1:4222";

/**
 * Flags every script accepts for reaching NATS, plus `--json`.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * import { GLOBAL_FLAGS } from "./connect.ts";
 * console.log(parseArgs(["-s", "nats://127.0.0.1:4333"], [GLOBAL_FLAGS]).flags.server);
 * ```
 */
export const GLOBAL_FLAGS: Record<string, FlagSpec> = {
  server: {
    type: "string",
    short: "s",
    placeholder: "URL",
    help:
      "NATS server URL(s), comma-separated (default $NATS_URL, else the embedded server of `deno task serve`, else nats://127.0.0.1:4222)",
  },
  creds: {
    type: "string",
    placeholder: "FILE",
    help: "user credentials file (default $NATS_CREDS)",
  },
  user: { type: "string", placeholder: "USER", help: "user name (default $NATS_USER)" },
  password: { type: "string", placeholder: "PASSWORD", help: "password (default $NATS_PASSWORD)" },
  token: { type: "string", placeholder: "TOKEN", help: "auth token (default $NATS_TOKEN)" },
  timeout: {
    type: "duration",
    default: 5000,
    placeholder: "DURATION",
    help: "how long to wait for NATS on connect and on each request",
  },
  json: { type: "boolean", help: "machine-readable JSON output" },
};

/** Connection settings taken from the global flags and the environment. */
export interface ConnectFlags {
  /** `--server`, if given. */
  server?: string;
  /** `--creds`, if given. */
  creds?: string;
  /** `--user`, if given. */
  user?: string;
  /** `--password`, if given. */
  password?: string;
  /** `--token`, if given. */
  token?: string;
  /** Connect and request timeout in milliseconds. Default 5 000. */
  timeoutMs?: number;
  /** Program name prefixed to the notice naming a server chosen by default (`kv`, `seed`). */
  program?: string;
}

/**
 * Reads {@link ConnectFlags} out of parsed flags.
 *
 * @example
 * ```ts
 * import { parseArgs } from "./args.ts";
 * import { connectFlags, GLOBAL_FLAGS } from "./connect.ts";
 * const { flags } = parseArgs(["--user", "ops"], [GLOBAL_FLAGS]);
 * console.log(connectFlags(flags).user); // "ops"
 * ```
 */
export function connectFlags(flags: FlagValues): ConnectFlags {
  const str = (v: unknown) => (typeof v === "string" ? v : undefined);
  return {
    server: str(flags.server),
    creds: str(flags.creds),
    user: str(flags.user),
    password: str(flags.password),
    token: str(flags.token),
    timeoutMs: typeof flags.timeout === "number" ? flags.timeout : 5000,
  };
}

function env(name: string): string | undefined {
  try {
    const v = Deno.env.get(name);
    return v === "" ? undefined : v;
  } catch {
    return undefined;
  }
}

/**
 * Decides which server to talk to: `--server`, else `$NATS_URL`, else the
 * embedded server of a running `deno task serve` (found under `.data/`), else
 * {@link DEFAULT_SERVER}.
 *
 * @example
 * ```ts
 * import { resolveServer } from "./connect.ts";
 * console.log(await resolveServer("nats://127.0.0.1:4333")); // "nats://127.0.0.1:4333"
 * ```
 */
export async function resolveServer(flag?: string): Promise<string> {
  return (await chooseServer(flag)).server;
}

/** Where {@link chooseServer} found the server. */
export type ServerSource = "flag" | "env" | "embedded" | "default";

/**
 * {@link resolveServer}, and where the answer came from: `--server`,
 * `$NATS_URL`, the embedded server of `deno task serve`, or the default.
 *
 * @example
 * ```ts
 * import { chooseServer } from "./connect.ts";
 * console.log(await chooseServer("nats://127.0.0.1:4333")); // { server: "nats://127.0.0.1:4333", from: "flag" }
 * ```
 */
export async function chooseServer(flag?: string): Promise<{ server: string; from: ServerSource }> {
  if (flag) return { server: redactSecrets(flag), from: "flag" };
  const fromEnv = env("NATS_URL");
  if (fromEnv) return { server: redactSecrets(fromEnv), from: "env" };
  try {
    const embedded = await findEmbedded(EMBEDDED_DATA_DIR);
    if (embedded) return { server: embedded, from: "embedded" };
  } catch {
    // An unreadable .data/ just means there is no embedded server to use.
  }
  return { server: DEFAULT_SERVER, from: "default" };
}

/**
 * Connects as the flags say. Connection failures become a one-line
 * {@link CliError} naming the server.
 *
 * @example
 * ```ts ignore
 * import { connectFromFlags } from "./connect.ts";
 * const nc = await connectFromFlags({ server: "nats://127.0.0.1:4222" });
 * await nc.close();
 * ```
 */
export async function connectFromFlags(f: ConnectFlags): Promise<NatsConnection> {
  let environment: Record<string, string>;
  try {
    environment = Deno.env.toObject();
  } catch {
    environment = {}; // no --allow-env: flags only
  }
  let opts;
  let servers: string[];
  try {
    // One parser for the worker, the projector and the CLI; flags win.
    const nats = parseNatsEnv(environment, {
      action: "connect",
      overrides: {
        ...(f.server ? { server: f.server } : {}),
        ...(f.user !== undefined ? { user: f.user } : {}),
        ...(f.password !== undefined ? { password: f.password } : {}),
        ...(f.token !== undefined ? { token: f.token } : {}),
        ...(f.creds !== undefined ? { creds: f.creds } : {}),
      },
    });
    opts = await natsConnectionOptions(nats, { action: "connect" });
    if (nats.servers !== undefined) servers = nats.servers;
    else {
      const { server, from } = await chooseServer();
      // A server nobody named is a guess: say which one, so a wrong guess is visible.
      const who = f.program ? `${f.program}: ` : "";
      if (from === "embedded") {
        eprintln(`${who}using the embedded nats-server of \`deno task serve\` at ${server}`);
      } else if (from === "default") {
        eprintln(
          `${who}using ${server}: no --server, no NATS_URL, no running \`deno task serve\` under ` +
            `${EMBEDDED_DATA_DIR}/`,
        );
      }
      servers = [server];
    }
  } catch (err) {
    throw new CliError(oneLine(err).replace(/^Cannot connect: /, ""), { cause: err });
  }
  try {
    return await connectNats({
      ...opts,
      servers,
      name: "kvedge-cli",
      timeout: f.timeoutMs ?? 5000,
    });
  } catch (err) {
    throw new CliError(`cannot connect to ${servers.join(",")}: ${oneLine(err)}`, { cause: err });
  }
}
